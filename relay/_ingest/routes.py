"""The four ingest endpoints: request -> bounded body -> envelope -> durable append -> 201.

    POST /api/v1/lineage                   one event (what every OpenLineage client sends)
    POST /api/v1/lineage/batch             a JSON array of events
    POST /api/v1/openlineage/lineage       one event (OpenMetadata-style URL)
    POST /api/v1/openlineage/lineage/batch {"events": [...]}

Trailing slashes and `/lineage` are tolerated; query strings are ignored. Every
answer other than 201 is `{"error": "..."}` naming the problem. 201 is sent only
after `Spool.append` returned, i.e. after the fsync that covers the events.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import orjson
from aiohttp import HttpVersion11, web
from prometheus_client import Counter

from .._clock import Clock, SystemClock
from .._config import IngestConfig
from .._events import EventKey
from .._exceptions import ConfigError, IngestError, SpoolError, SpoolFailure, SpoolFull
from .._observe.logging import register_secret
from .._observe.metrics import Metrics
from .._watched_file import WatchedFile
from .body import BadGzip, BodyLimits, IncompleteBody, read_body
from .envelope import MalformedJson, parse_event, split_batch
from .limits import BodyBudget, Hold, OverBudget

__all__ = ["Appender", "Ingest", "IngestToken", "Shape", "json_error"]

log = logging.getLogger(__name__)


class Shape(enum.Enum):
    SINGLE = "single"  # one event object
    ARRAY = "array"  # [event, ...]
    WRAPPED = "wrapped"  # {"events": [event, ...]}


# (path, shape); the first path of each shape family is the metric's `endpoint` label.
ROUTES: tuple[tuple[str, Shape, str], ...] = (
    ("/api/v1/lineage", Shape.SINGLE, "/api/v1/lineage"),
    ("/api/v1/lineage/", Shape.SINGLE, "/api/v1/lineage"),
    ("/lineage", Shape.SINGLE, "/api/v1/lineage"),
    ("/api/v1/lineage/batch", Shape.ARRAY, "/api/v1/lineage/batch"),
    ("/api/v1/lineage/batch/", Shape.ARRAY, "/api/v1/lineage/batch"),
    ("/lineage/batch", Shape.ARRAY, "/api/v1/lineage/batch"),
    ("/api/v1/openlineage/lineage", Shape.SINGLE, "/api/v1/openlineage/lineage"),
    ("/api/v1/openlineage/lineage/", Shape.SINGLE, "/api/v1/openlineage/lineage"),
    ("/api/v1/openlineage/lineage/batch", Shape.WRAPPED, "/api/v1/openlineage/lineage/batch"),
    ("/api/v1/openlineage/lineage/batch/", Shape.WRAPPED, "/api/v1/openlineage/lineage/batch"),
)

_PARSE_IN_THREAD_BYTES = 1024 * 1024
_STATUS_REASON = {401: "unauthorized", 408: "read_timeout", 413: "too_large", 415: "encoding"}


class Appender(Protocol):
    """What ingest needs of the spool."""

    async def append(self, items: Sequence[tuple[bytes, EventKey]]) -> list[int]: ...


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": message}),
        content_type="application/json",
        headers=headers,
    )


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` answered as aiohttp does; any other expectation gets a JSON 417.

    aiohttp's own 417 quotes the header in a text body, and a value holding bytes that are not
    UTF-8 made building that answer fail (a 500 with a traceback in the log)."""
    if request.version != HttpVersion11:
        return None
    if request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not part of the response
        return None
    return json_error(
        417,
        f"{request.method} {request.path}: unsupported Expect header "
        "(only 100-continue is understood); send the request without it",
    )


class IngestToken:
    """The bearer token clients must send, from `ingest.token` or `ingest.token_file`.

    The file is re-read when it changes (`WatchedFile`; checked at most once a second), so a
    rotated Kubernetes secret takes effect without a restart.
    """

    _RECHECK_S = 1.0

    def __init__(self, config: IngestConfig, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._inline = config.token.reveal()
        self._file = WatchedFile(Path(config.token_file)) if config.token_file else None
        self._checked = self._clock.monotonic()
        self._value = self._inline.encode()
        if self._file is not None:
            self._value = self._read(self._file)
        if self._value:
            register_secret(self._value.decode())

    @property
    def enabled(self) -> bool:
        return bool(self._inline) or self._file is not None

    @staticmethod
    def _read(file: WatchedFile) -> bytes:
        where = f"ingest.token_file = {str(file.path)!r}"
        try:
            value = file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read it ({exc})") from exc
        if not value:
            raise ConfigError(f"{where}: the file is empty")
        return value

    def _refresh(self) -> None:
        now = self._clock.monotonic()
        if self._file is None or now - self._checked < self._RECHECK_S:
            return
        self._checked = now
        try:
            if self._file.changed():
                self._value = self._read(self._file)
                register_secret(self._value.decode())
                path = str(self._file.path)
                log.info("ingest token file changed; reloaded", extra={"path": path})
        except (OSError, ConfigError) as exc:
            # Keep the last good token rather than locking every client out.
            log.warning("ingest token file unreadable; keeping the previous token: %s", exc)

    def check(self, headers: list[str]) -> bool:
        """True when one of the `Authorization` headers carries the token (constant time)."""
        self._refresh()
        ok = False
        for header in headers:  # the Java client may send two Authorization headers
            scheme, _, presented = header.strip().partition(" ")
            if scheme.lower() == "bearer":
                ok |= hmac.compare_digest(presented.strip().encode(), self._value)
        return ok


class _Gate:
    """Admission: a concurrency cap, the draining switch, and in-flight tracking."""

    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        self.in_flight = 0
        self.processing = 0  # requests whose body arrived: being checked and stored
        self.draining = False
        self.failure: str | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1  # every admitted request, its body arrived or not (drain waits)
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


class Ingest:
    """The ingest endpoints of one relay."""

    def __init__(
        self,
        config: IngestConfig,
        *,
        metrics: Metrics,
        on_spool_failure: Callable[[SpoolFailure], None] = lambda exc: None,
        clock: Clock | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._limits = BodyLimits(
            max_body_bytes=config.max_body_bytes,
            max_compressed_bytes=config.max_compressed_bytes,
            read_timeout_s=config.read_timeout_s,
            min_bytes_per_s=config.min_body_bytes_per_s,
            grace_s=config.body_grace_s,
        )
        self._budget = BodyBudget(config.max_body_bytes_in_flight)
        self._token = IngestToken(config, clock=clock)
        self._gate = _Gate(config.max_concurrent_requests)
        self._on_spool_failure = on_spool_failure
        self.spool: Appender | None = None  # attached once the spool is open

    @property
    def token(self) -> IngestToken:
        return self._token

    @property
    def in_flight(self) -> int:
        return self._gate.in_flight

    @property
    def processing(self) -> int:
        """Requests whose body arrived and is being checked and stored."""
        return self._gate.processing

    @property
    def body_bytes_in_flight(self) -> int:
        return self._budget.held_bytes

    @property
    def draining(self) -> bool:
        return self._gate.draining

    @property
    def failure(self) -> str | None:
        """Why ingest stopped acknowledging for good (a spool failure), if it did."""
        return self._gate.failure

    def add_routes(self, app: web.Application) -> None:
        for path, shape, endpoint in ROUTES:
            app.router.add_post(path, self._handler(shape, endpoint), expect_handler=expect_handler)

    def start_draining(self) -> None:
        """From now on, new requests get 503; in-flight ones finish."""
        self._gate.draining = True

    async def drain(self, timeout_s: float) -> bool:
        """Stop admitting and wait for in-flight requests; False if they outlived `timeout_s`."""
        self.start_draining()
        try:
            async with asyncio.timeout(timeout_s):
                await self._gate.wait_idle()
        except TimeoutError:
            return False
        return True

    def _handler(
        self, shape: Shape, endpoint: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        # The labelled child, looked up once: a lookup per request costs a lock and a dict.
        received = self._metrics.events_received.labels(endpoint=endpoint)

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, shape, endpoint, received)

        return handle

    async def _handle(
        self, request: web.Request, shape: Shape, endpoint: str, received: Counter
    ) -> web.StreamResponse:
        started = time.perf_counter()
        gate = self._gate
        events = 0
        wire = 0
        reason: str | None
        refusal = self._refusal()
        if refusal is not None:
            reason, response = refusal
        else:
            gate.enter()
            try:
                reason, response, events, wire = await self._admitted(request, shape)
            finally:
                gate.leave()
        elapsed = time.perf_counter() - started
        if reason is None:
            self._metrics.ingest_duration.observe(elapsed)
            received.inc(events)
        else:
            self._metrics.events_rejected.labels(reason=reason).inc()
        self._log(request, response, endpoint, events, wire, elapsed, reason)
        return response

    def _refusal(self, *, admitted: bool = False) -> tuple[str, web.Response] | None:
        gate = self._gate
        retry = {"Retry-After": "1"}
        if gate.failure is not None:
            return "spool_failure", json_error(
                503, f"the spool failed and the relay is stopping: {gate.failure}", headers=retry
            )
        if gate.draining and not admitted:
            response = json_error(503, "the relay is shutting down; retry shortly", headers=retry)
            response.force_close()  # the client reconnects, to the next relay process
            return "shutting_down", response
        if self.spool is None:
            return "starting", json_error(
                503, "the relay is starting; retry shortly", headers=retry
            )
        if gate.processing >= gate.max_concurrent:
            return "overloaded", json_error(
                503,
                f"too many concurrent requests (ingest.max_concurrent_requests = "
                f"{gate.max_concurrent}); retry shortly",
                headers=retry,
            )
        return None

    async def _admitted(self, request: web.Request, shape: Shape) -> _Outcome:
        if self._token.enabled and not self._token.check(
            request.headers.getall("Authorization", [])
        ):
            return _refused(
                "unauthorized",
                json_error(
                    401,
                    "missing or wrong bearer token: send 'Authorization: Bearer <ingest token>'",
                    headers={"WWW-Authenticate": 'Bearer realm="lineage-relay"'},
                ),
            )
        hold = self._budget.hold()
        try:
            return await self._received(request, shape, hold)
        finally:
            hold.release()

    async def _received(self, request: web.Request, shape: Shape, hold: Hold) -> _Outcome:
        try:
            body = await read_body(request, self._limits, hold)
        except IngestError as exc:
            return _refused(_reason(exc), _error_response(exc))
        wire = body.wire_bytes
        # Only now does the request take a processing slot: a client whose bodies stall
        # cannot fill max_concurrent_requests and lock the others out. (Admitted before a
        # shutdown began, it still finishes its append: draining waits for it.)
        refusal = self._refusal(admitted=True)
        if refusal is not None:
            return _refused(*refusal, wire)
        gate = self._gate
        gate.processing += 1
        try:
            return await self._store(body.data, shape, wire)
        finally:
            gate.processing -= 1

    async def _store(self, data: bytes, shape: Shape, wire: int) -> _Outcome:
        try:
            if len(data) > _PARSE_IN_THREAD_BYTES:
                # Parsing megabytes takes long enough to stall every other client.
                items = await asyncio.to_thread(_envelopes, data, shape)
            else:
                items = _envelopes(data, shape)
        except IngestError as exc:
            return _refused(_reason(exc), _error_response(exc), wire)
        if items:
            spool = self.spool
            assert spool is not None  # noqa: S101 -- checked by _refusal before admission
            try:
                await spool.append(items)
            except SpoolFull as exc:
                retry = {"Retry-After": str(exc.retry_after_s)}
                return _refused(
                    "spool_full", json_error(503, f"the spool is full: {exc}", headers=retry), wire
                )
            except SpoolFailure as exc:
                self._gate.failure = str(exc)
                log.critical(
                    "spool failure: the relay stops acknowledging events and exits",
                    extra={"error": str(exc)},
                )
                self._on_spool_failure(exc)
                retry = {"Retry-After": "1"}
                return _refused(
                    "spool_failure",
                    json_error(503, f"the spool failed: {exc}", headers=retry),
                    wire,
                )
            except SpoolError as exc:  # closing under this request, say: never a 500
                return _refused(
                    "spool_unavailable",
                    json_error(
                        503, f"the spool cannot take events: {exc}", headers={"Retry-After": "1"}
                    ),
                    wire,
                )
        return _Outcome(None, _created(len(items)), len(items), wire)

    def _log(
        self,
        request: web.Request,
        response: web.Response,
        endpoint: str,
        events: int,
        wire: int,
        elapsed_s: float,
        reason: str | None,
    ) -> None:
        # An accepted request is routine: at thousands per second an INFO line each would
        # cost more than the request itself (the metrics count them). Refusals stay visible.
        level = logging.DEBUG if reason is None else logging.INFO
        if not log.isEnabledFor(level):
            return
        fields: dict[str, object] = {
            "method": request.method,
            "path": request.path,
            "endpoint": endpoint,
            "status": response.status,
            "events": events,
            "bytes": wire,
            "duration_ms": round(elapsed_s * 1000, 3),
            "remote": request.remote,
            "user_agent": request.headers.get("User-Agent", ""),
        }
        if reason is not None:
            fields["reason"] = reason
            body = response.body
            if isinstance(body, bytes):
                fields["error"] = orjson.loads(body).get("error", "")
        log.log(level, "ingest", extra=fields)


class _Outcome(NamedTuple):
    reason: str | None  # why the request was refused; None when accepted
    response: web.Response
    events: int
    wire_bytes: int


def _refused(reason: str, response: web.Response, wire_bytes: int = 0) -> _Outcome:
    return _Outcome(reason, response, 0, wire_bytes)


def _error_response(exc: IngestError) -> web.Response:
    if exc.status == 503:
        return json_error(503, exc.message, headers={"Retry-After": "1"})
    response = json_error(exc.status, exc.message)
    if exc.status == 408:
        response.force_close()  # a slow client does not get to keep the connection
    return response


def _reason(exc: IngestError) -> str:
    """The `reason` label of lineage_relay_events_rejected_total for a refused request."""
    if isinstance(exc, MalformedJson):
        return "malformed_json"
    if isinstance(exc, BadGzip):
        return "bad_gzip"
    if isinstance(exc, IncompleteBody):
        return "incomplete_body"
    if isinstance(exc, OverBudget):
        return "body_budget"
    return _STATUS_REASON.get(exc.status, "invalid_event")


def _envelopes(data: bytes, shape: Shape) -> list[tuple[bytes, EventKey]]:
    if shape is Shape.SINGLE:
        return [(data, parse_event(data))]
    return split_batch(data, wrapped=shape is Shape.WRAPPED)


_RECEIVED_ONE = orjson.dumps({"received": 1})  # the answer to nearly every request


def _created(events: int) -> web.Response:
    body = _RECEIVED_ONE if events == 1 else orjson.dumps({"received": events})
    return web.Response(status=201, body=body, content_type="application/json")
