"""Plugin runtime test helpers: a real local HTTP receiver, the plugin enabled towards it on
the shared session, and the OpenLineage spec check."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from spark_plugin import _state, enable

Events = list[dict[str, Any]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    event: dict[str, Any]


class Receiver:
    """An OpenLineage HTTP receiver on 127.0.0.1:<ephemeral> recording what is posted.

    `status` is the answer; `hang=True` makes every request wait (bounded) without answering,
    like a stuck server; `released` ends the wait.
    """

    def __init__(self, *, status: int = 201, hang: bool = False) -> None:
        self.status = status
        self.hang = hang
        self.received: list[Received] = []
        self.requests = 0
        self.released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                with receiver._lock:
                    receiver.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if receiver.hang:
                    receiver.released.wait(30)
                    self.close_connection = True
                    return
                body = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), raw, json.loads(body))
                    )
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.event for r in self.received]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 20
    ) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.events()):
                return True
            time.sleep(0.02)
        return predicate(self.events())

    def close(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiving(**kwargs: Any) -> Iterator[Receiver]:
    receiver = Receiver(**kwargs)
    try:
        yield receiver
    finally:
        receiver.close()


def events_per_action(
    spark: Any, actions: dict[str, Callable[[], None]]
) -> tuple[Events, dict[str, Events]]:
    """Enable the plugin on `spark` towards a receiver, run each action and flush after it.

    Returns the events sent before the first action (the application's START) and, by name,
    the events each action caused. The handle is closed at the end."""
    _state.reset()  # no handle left open by another module on the shared session
    per_action: dict[str, Events] = {}
    with receiving() as receiver:
        handle = enable(spark, url=receiver.url)
        try:
            assert handle.flush(30)
            at_start = receiver.events()
            for name, action in actions.items():
                before = len(receiver.events())
                action()
                assert handle.flush(30), name
                per_action[name] = receiver.events()[before:]
        finally:
            assert handle.close(30)
    return at_start, per_action


def dataset_names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def closed_port_url() -> str:
    """A loopback URL nobody listens on (bound then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class SpecValidator:
    """Validates RunEvents against OpenLineage.json and each facet against the schema its
    `_schemaURL` names.

    A facet whose `_schemaURL` names no schema of the spec snapshot is an error, and so is a
    standard facet key (`parent`, `columnLineage`, ...) whose `_schemaURL` names another schema
    or another version than the one the spec defines that key in: so a facet that grows a
    field (say `dataset` in `columnLineage`) without its URL moving to the version that defines
    it fails here. Custom facets (`spark_properties`, ...) name the base `RunFacet`/`JobFacet`.
    """

    def __init__(self, spec_dir: Path) -> None:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
        from referencing import Registry, Resource

        core = json.loads((spec_dir / "OpenLineage.json").read_text())
        resources = [(core["$id"], Resource.from_contents(core))]
        self._core_id: str = core["$id"]
        self._ids: set[str] = {core["$id"]}
        self._key_ids: dict[str, str] = {}  # standard facet key -> $id of its schema
        for path in sorted((spec_dir / "facets").glob("*.json")):
            schema = json.loads(path.read_text())
            resources.append((schema["$id"], Resource.from_contents(schema)))
            self._ids.add(schema["$id"])
            for key in schema.get("properties", {}):
                self._key_ids[key] = schema["$id"]
        self._registry: Registry[Any] = Registry().with_resources(resources)
        self._validator_class = Draft202012Validator
        self._checker = Draft202012Validator.FORMAT_CHECKER
        self._event = self._validator(f"{core['$id']}#/$defs/RunEvent")
        self._by_url: dict[str, Any] = {}

    def _validator(self, url: str) -> Any:
        return self._validator_class(
            {"$ref": url}, registry=self._registry, format_checker=self._checker
        )

    def errors(self, event: dict[str, Any]) -> list[str]:
        found = [f"event: {e.message}" for e in self._event.iter_errors(event)]
        containers = [
            ("run", event["run"].get("facets", {})),
            ("job", event["job"].get("facets", {})),
        ]
        for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
            name = dataset.get("name")
            containers.append((f"dataset {name}", dataset.get("facets", {})))
            containers.append((f"dataset {name} inputFacets", dataset.get("inputFacets", {})))
            containers.append((f"dataset {name} outputFacets", dataset.get("outputFacets", {})))
        for where, facets in containers:
            for key, facet in facets.items():
                found += self._facet_errors(f"{where}.{key}", key, facet)
        return found

    def _facet_errors(self, where: str, key: str, facet: Any) -> list[str]:
        url = facet.get("_schemaURL") if isinstance(facet, dict) else None
        if not isinstance(url, str):
            return [f"{where}: no _schemaURL"]
        base = url.partition("#")[0]
        if base not in self._ids:
            return [f"{where}: _schemaURL {url} names no schema of the spec"]
        errors = []
        expected = self._key_ids.get(key)
        if expected is not None and base != expected:
            errors.append(f"{where}: _schemaURL {url}, but the spec defines {key!r} in {expected}")
        if expected is None and base != self._core_id:
            errors.append(f"{where}: custom facet {key!r} must name the core RunFacet/JobFacet")
        validator = self._by_url.get(url)
        if validator is None:
            validator = self._by_url[url] = self._validator(url)
        errors += [f"{where}: {e.message}" for e in validator.iter_errors(facet)]
        return errors

    def facet_keys_checked(self) -> set[str]:
        return set(self._key_ids)
