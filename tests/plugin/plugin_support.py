"""Plugin runtime test helpers: a real local HTTP receiver and the OpenLineage spec check."""

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


def closed_port_url() -> str:
    """A loopback URL nobody listens on (bound then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class SpecValidator:
    """Validates RunEvents against OpenLineage.json and every facet schema found for a facet key."""

    def __init__(self, spec_dir: Path) -> None:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
        from referencing import Registry, Resource

        core = json.loads((spec_dir / "OpenLineage.json").read_text())
        resources = [(core["$id"], Resource.from_contents(core))]
        self._facet_schemas: dict[str, dict[str, Any]] = {}
        for path in sorted((spec_dir / "facets").glob("*.json")):
            schema = json.loads(path.read_text())
            resources.append((schema["$id"], Resource.from_contents(schema)))
            for key in schema.get("properties", {}):
                self._facet_schemas[key] = schema
        registry: Registry[Any] = Registry().with_resources(resources)
        checker = Draft202012Validator.FORMAT_CHECKER
        self._event = Draft202012Validator(
            {"$ref": f"{core['$id']}#/$defs/RunEvent"}, registry=registry, format_checker=checker
        )
        self._facets = {
            key: Draft202012Validator(schema, registry=registry, format_checker=checker)
            for key, schema in self._facet_schemas.items()
        }

    def errors(self, event: dict[str, Any]) -> list[str]:
        found = [f"event: {e.message}" for e in self._event.iter_errors(event)]
        containers = [event["run"].get("facets", {}), event["job"].get("facets", {})]
        for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
            containers.append(dataset.get("facets", {}))
            containers.append(dataset.get("inputFacets", {}))
            containers.append(dataset.get("outputFacets", {}))
        for facets in containers:
            for key in facets:
                validator = self._facets.get(key)
                if validator is not None:
                    found += [
                        f"{key}: {e.message}" for e in validator.iter_errors({key: facets[key]})
                    ]
        return found

    def facet_keys_checked(self) -> set[str]:
        return set(self._facets)
