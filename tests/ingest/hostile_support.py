"""Raw sockets to a relay, and what every answer must look like.

The hostile-input tests talk to the relay as a misbehaving client would: bytes over a
socket, no HTTP library in between. The relay runs on an event loop in a thread
(relay_support.ThreadedRelay) so the tests themselves (and hypothesis) can stay synchronous
and block on sockets.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"
COMPLETE = (EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_bytes()


@dataclass
class Tally:
    """Fuzz figures for the session summary (`RESULT fuzz_cases=` / `fuzz_crashes=`)."""

    cases: int = 0
    crashes: list[str] = field(default_factory=list)


TALLY = Tally()


class Records(logging.Handler):
    """Every log record of the relay and aiohttp while installed (thread-safe list)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_records:
            self.records.append(record)

    def tracebacks(self) -> list[str]:
        """Records an operator would read as a failure: error level or a traceback."""
        with self._lock_records:
            return [
                f"{r.name} {r.levelname} {r.getMessage()}"
                for r in self.records
                if r.levelno >= logging.ERROR or r.exc_info
            ]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _Replay:
    """What `http.client.HTTPResponse` reads from: the bytes a socket returned."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)


def parse_answer(raw: bytes) -> Answer:
    """The first HTTP response in `raw` (the stdlib's parser); raises if malformed."""
    response = http.client.HTTPResponse(_Replay(raw))  # type: ignore[arg-type]
    response.begin()
    return Answer(response.status, dict(response.getheaders()), response.read())


def exchange(port: int, data: bytes, *, shut: bool = True, timeout_s: float = 10.0) -> bytes:
    """Send `data` on a new connection and return all the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before taking everything
        chunks: list[bytes] = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def check_answer(raw: bytes, case: str) -> Answer | None:
    """The answer must be a well-formed 2xx/4xx/503 with a JSON body (an error names it).

    No bytes at all is allowed: the client shut down before its request was complete,
    and there is nobody to answer. Anything else is counted as a crash."""
    TALLY.cases += 1
    if not raw:
        return None
    try:
        answer = parse_answer(raw)
        ok = 200 <= answer.status < 300 or 400 <= answer.status < 500 or answer.status == 503
        body = answer.json
        ok = ok and answer.headers.get("Content-Type", "").startswith("application/json")
        ok = ok and (answer.status < 300 or isinstance(body.get("error"), str))
    except Exception as exc:
        ok = False
        body = f"unparsable answer: {exc!r}"
    if not ok:
        TALLY.crashes.append(f"{case}: {raw[:300]!r}")
        raise AssertionError(f"{case}: not a well-formed JSON answer: {raw[:300]!r} ({body})")
    return answer


def event(run_id: str | None = None) -> bytes:
    """A real Spark COMPLETE event with its own run id."""
    obj = json.loads(COMPLETE)
    obj["run"]["runId"] = run_id or str(uuid.uuid4())
    return json.dumps(obj).encode()


def post_request(body: bytes, path: str = "/api/v1/lineage", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: relay", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class WellBehavedClient:
    """Posts a fresh event every `interval_s` on its own thread and records each 201."""

    def __init__(self, port: int, interval_s: float = 0.05) -> None:
        self._port = port
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.acknowledged: list[str] = []
        self.refused: list[int] = []

    def __enter__(self) -> WellBehavedClient:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
        while not self._stop.is_set():
            run_id = str(uuid.uuid4())
            try:
                conn.request(
                    "POST", "/api/v1/lineage", event(run_id), {"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                conn.close()  # the idle timeout may close a kept-alive connection: reconnect
                conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
                continue
            if response.status == 201:
                self.acknowledged.append(run_id)
            else:
                self.refused.append(response.status)
            time.sleep(self._interval_s)
        conn.close()
