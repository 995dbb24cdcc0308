"""The `Relay`: builds its parts from a `Config`, starts them in order, stops them in reverse.

Parts are aiohttp `cleanup_ctx` generators (set up before `yield`, torn down
after), registered in start order:

    1. spool        open + recover the on-disk queue             (closed last)
    2. spill        spill files taken up (ingest.spill_dir)      (when configured)
    3. delivery     forwarder and sink (relay/_parts.py)         (stopped before the spool)
    4. `parts`      anything added by the embedder or a test

and the HTTP site starts listening only after every part started. Shutdown
(`aclose`, style rule 12), each step bounded by `relay.shutdown_timeout_s`:

    stop admitting (new requests get 503) -> finish in-flight appends ->
    [drain: keep forwarding up to relay.drain_timeout_s, until the spool is empty] ->
    stop listening, close connections -> stop the forwarder (leases return) ->
    close the sink -> stop taking spill files ->
    [offload: what is left goes to S3, when offload.s3_uri is set] -> close the spool

The bracketed steps run for `aclose(drain=True)`, which is what SIGTERM/SIGINT do under
`lineage-relay serve`.

A `Relay` works in-process (tests: listen on port 0, read `url`, `aclose()`) and
under `lineage-relay serve`, which adds signal handling around it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ._aws import aws_keys_in_use, require_aws
from ._clock import Clock, SystemClock, first_of
from ._config import Config, parse_host_port
from ._ingest.connection import Connection, ListenSite
from ._ingest.routes import ROUTES as INGEST_ROUTES
from ._ingest.routes import Ingest, expect_handler, json_error
from ._ingest.spill import MAX_FILE_BYTES, SpillReader
from ._observe.health import ComponentHealth, Health
from ._observe.metrics import CONTENT_TYPE_LATEST, Metrics
from ._offload.upload import OffloadReport, offload_spool
from ._parts import CLOCK, CONFIG, FAIL, HEALTH, METRICS, SPOOL, Part, delivery_part
from ._spool import Spool
from ._spool.ledger import Ledger

__all__ = ["Relay"]

log = logging.getLogger(__name__)
# How often a shutdown drain looks whether the spool is empty yet.
_DRAIN_POLL_S = 0.05


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class Relay:
    """One relay: ingest, spool, health, metrics (and, plugged in below, delivery).

    `parts` adds cleanup contexts after the built-in ones (tests, embedding); each
    receives the `web.Application` whose keys (`relay._parts`: `SPOOL`, `METRICS`, `CONFIG`,
    `HEALTH`, `CLOCK`, `FAIL`) give it what it needs. `delivery=False` leaves the
    forwarder out: events stay in the spool (ingest-only tests and benchmarks).
    `spool_scan_gate` (tests) holds the background integrity scan of a big spool while clear.
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        parts: Sequence[Part] = (),
        delivery: bool = True,
        spool_scan_gate: threading.Event | None = None,
    ) -> None:
        require_aws(*aws_keys_in_use(config))  # a missing `aws` extra stops us before any ack
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.metrics = metrics if metrics is not None else Metrics()
        self.health = Health()
        self.ingest = Ingest(
            config.ingest, metrics=self.metrics, on_spool_failure=self.fail, clock=self.clock
        )
        self.spool: Spool | None = None
        self._extra_parts = tuple(parts)
        self._delivery = delivery
        self._spool_scan_gate = spool_scan_gate
        self._state = _State.NEW
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._failed = asyncio.Event()
        self.failure: BaseException | None = None
        self._offload_at_close = False
        self.offload_report: OffloadReport | None = None  # set when an offload ran

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def url(self) -> str:
        """`http://host:port` the relay listens on (the real port when configured as 0)."""
        if not self._url:
            raise RuntimeError("the relay is not started")
        return self._url

    async def start(self) -> None:
        """Start every part in order, then listen. Raises if a part cannot start."""
        if self._state is not _State.NEW:
            raise RuntimeError("a Relay starts once; build a new one to start again")
        self._state = _State.STARTED
        app = self.build_app()
        ingest = self.config.ingest
        handler_args: dict[str, Any] = {
            "access_log": None,  # ingest writes one canonical line per request instead
            "auto_decompress": False,  # body.py decompresses, with a size cap
            "keepalive_timeout": ingest.idle_timeout_s,  # also before a first request
            # After an early answer (413, 408) aiohttp reads and drops the rest of the body
            # for this long so the client sees the answer, not a reset; aiohttp's 10 s let
            # a stalled client keep its connection long after its 408.
            "lingering_time": 2.0,
        }
        runner = web.AppRunner(
            app,
            handle_signals=False,
            shutdown_timeout=self.config.relay.shutdown_timeout_s,
            **handler_args,
        )
        self._runner = runner
        try:
            await runner.setup()  # runs the parts' set-up, in order
            host, port = parse_host_port(self.config.relay.listen, key="relay.listen")
            loop = asyncio.get_running_loop()
            rejected = self.metrics.events_rejected
            site = ListenSite(
                runner,
                host,
                port,
                backlog=1024,
                connection=lambda server: Connection(
                    server,
                    loop=loop,
                    header_timeout_s=ingest.header_timeout_s,
                    on_refused=lambda reason: rejected.labels(reason=reason).inc(),
                    **handler_args,
                ),
            )
            await site.start()
        except BaseException:
            await self._cleanup_runner()
            self._state = _State.CLOSED
            raise
        bound = runner.addresses[0]
        bound_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self._url = f"http://{bound_host}:{bound[1]}"
        log.info(
            "relay listening",
            extra={"url": self._url, "spool_dir": str(self.config.spool.dir)},
        )

    async def aclose(self, *, drain: bool = False) -> None:
        """Stop gracefully (see the module docstring). Idempotent.

        `drain=True` (SIGTERM): keep forwarding up to `relay.drain_timeout_s` after admission
        stopped, then offload what is left to S3 when `offload.s3_uri` is set."""
        if self._state is not _State.STARTED:
            self._state = _State.CLOSED
            return
        self._state = _State.CLOSED
        timeout_s = self.config.relay.shutdown_timeout_s
        in_flight = self.ingest.in_flight
        if not await self.ingest.drain(timeout_s):
            log.warning(
                "in-flight requests still running after relay.shutdown_timeout_s; closing anyway",
                extra={"in_flight": self.ingest.in_flight},
            )
        if drain and self.failure is None:
            await self._drain(self.config.relay.drain_timeout_s)
            self._offload_at_close = self.config.offload.enabled
        await self._cleanup_runner()
        log.info("relay stopped", extra={"in_flight_at_stop": in_flight})

    async def _drain(self, timeout_s: float) -> None:
        """Let the forwarder work until the spool is empty or `timeout_s` has passed."""
        spool = self.spool
        if spool is None or not self._delivery or not self.config.forwarder.enabled:
            return
        left = spool.stats().events
        if left:
            log.info("draining: forwarding for up to %.0f s", timeout_s, extra={"events": left})

        async def emptied() -> None:
            # Polled in real time: the spool publishes its counts with each commit from its
            # own thread, and no event signals "empty".
            while spool.stats().events and not spool.failed:  # noqa: ASYNC110
                await asyncio.sleep(_DRAIN_POLL_S)

        # The deadline passes on the relay's clock (a test's fake one too).
        await first_of(self.clock, timeout_s, emptied())
        if left:
            log.info("drain over", extra={"events_left": spool.stats().events})

    async def _cleanup_runner(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            # Shielded: an interrupted cleanup would leave the spool open mid-write.
            await asyncio.shield(runner.cleanup())

    def fail(self, exc: BaseException) -> None:
        """A part failed for good (e.g. the spool raised `SpoolFailure`): the relay must stop.

        Ingest calls this itself; the forwarder calls it when the spool fails under it.
        `lineage-relay serve` then shuts down and exits non-zero.
        """
        if self.failure is None:
            self.failure = exc
        self._failed.set()

    async def wait_failed(self) -> BaseException:
        """Return once a part failed for good (e.g. `SpoolFailure`); the caller stops."""
        await self._failed.wait()
        assert self.failure is not None  # noqa: S101 -- set before the event
        return self.failure

    # -- assembly -----------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors])
        app.on_response_prepare.append(_json_error_body)
        app[CONFIG] = self.config
        app[METRICS] = self.metrics
        app[HEALTH] = self.health
        app[CLOCK] = self.clock
        app[FAIL] = self.fail
        self.ingest.add_routes(app)
        app.router.add_get("/health", self.health.handle, expect_handler=expect_handler)
        app.router.add_get("/metrics", self._metrics, expect_handler=expect_handler)
        # Last: every other path and method, so the Expect header of a request no route takes
        # is answered by `expect_handler` too (aiohttp's own 417 failed on non-UTF-8 values).
        app.router.add_route("*", "/{tail:.*}", _no_route, expect_handler=expect_handler)
        self.health.add("ingest", self._ingest_health)

        # Parts start in this order and stop in reverse.
        app.cleanup_ctx.append(self._spool_part)
        if self.config.ingest.spill_dir:
            app.cleanup_ctx.append(self._spill_part)
        # Delivery (relay/_parts.py: forwarder + sink) comes after the spool, so it
        # stops before the spool closes and its leases go back. It reads app[SPOOL],
        # app[METRICS], app[CONFIG], app[CLOCK], app[FAIL] and adds its checks to app[HEALTH].
        if self._delivery:
            app.cleanup_ctx.append(delivery_part)
        for part in self._extra_parts:
            app.cleanup_ctx.append(part)
        return app

    async def _spool_part(self, app: web.Application) -> AsyncIterator[None]:
        spool = await Spool.open(
            self.config.spool, metrics=self.metrics, clock=self.clock,
            scan_gate=self._spool_scan_gate,
        )  # fmt: skip
        app[SPOOL] = spool
        self.spool = spool
        self.ingest.spool = spool
        self.health.add("spool", self._spool_health)
        try:
            yield
        finally:
            self.ingest.spool = None
            self.health.remove("spool")
            if self._offload_at_close and spool.stats().events and not spool.failed:
                self.offload_report = await asyncio.shield(
                    offload_spool(spool, self.config.offload)
                )
            try:
                async with asyncio.timeout(self.config.relay.shutdown_timeout_s):
                    await asyncio.shield(spool.aclose())
            except TimeoutError:
                log.error("the spool did not close within relay.shutdown_timeout_s")

    async def _spill_part(self, app: web.Application) -> AsyncIterator[None]:
        spool = app[SPOOL]
        ingest = self.config.ingest
        ledger = await asyncio.to_thread(Ledger.open, self.config.spool.dir)
        reader = SpillReader(
            Path(ingest.spill_dir), spool=spool, ledger=ledger, metrics=self.metrics,
            max_file_bytes=MAX_FILE_BYTES, batch_bytes=ingest.max_body_bytes,
            on_spool_failure=self.fail,
        )  # fmt: skip
        task = asyncio.create_task(reader.run(ingest.spill_interval_s))
        try:
            yield
        finally:
            reader.stop()  # the file in hand is finished: its events and ledger entries agree
            try:
                async with asyncio.timeout(self.config.relay.shutdown_timeout_s):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                log.error("taking up a spill file did not end within relay.shutdown_timeout_s")
            await asyncio.to_thread(ledger.close)

    def _spool_health(self) -> ComponentHealth:
        spool = self.spool
        if spool is None:
            return ComponentHealth(False, {"error": "the spool is not open"})
        stats = spool.stats()
        max_bytes = self.config.spool.max_bytes
        details: dict[str, Any] = {
            "events": stats.events,
            "bytes": stats.bytes,
            "max_bytes": max_bytes,
            "used_ratio": round(stats.bytes / max_bytes, 6),
            "oldest_event_age_s": (
                None
                if stats.oldest_received_at is None
                else round(max(0.0, self.clock.time() - stats.oldest_received_at), 3)
            ),
            "dead_letters": stats.dead_letters,
            "when_full": self.config.spool.when_full,
        }
        scan = spool.integrity
        if scan is not None:  # a big spool, checked record by record in the background
            details["integrity_scan"] = scan.state.value
            details["integrity_checked_bytes"] = scan.checked_bytes
        failure = self.ingest.failure
        if failure is not None:
            return ComponentHealth(False, {**details, "error": f"spool failure: {failure}"})
        if self.config.spool.when_full == "reject" and stats.bytes >= max_bytes:
            return ComponentHealth(
                False, {**details, "error": "the spool is full: new events are refused (503)"}
            )
        return ComponentHealth(True, details)

    def _ingest_health(self) -> ComponentHealth:
        details: dict[str, Any] = {
            "in_flight": self.ingest.in_flight,
            "processing": self.ingest.processing,
            "max_concurrent_requests": self.config.ingest.max_concurrent_requests,
            "body_bytes_in_flight": self.ingest.body_bytes_in_flight,
            "max_body_bytes_in_flight": self.config.ingest.max_body_bytes_in_flight,
            "draining": self.ingest.draining,
        }
        if self.ingest.draining:
            return ComponentHealth(False, {**details, "error": "shutting down"})
        return ComponentHealth(True, details)

    async def _metrics(self, request: web.Request) -> web.Response:
        # The spool's gauges read its stats themselves, at this scrape (Spool._register_gauges).
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


async def _json_error_body(request: web.Request, response: web.StreamResponse) -> None:
    """An error aiohttp answers before any middleware runs (417 for an unknown `Expect`),
    as `{"error": ...}` like every other error."""
    if (
        response.status < 400
        or not isinstance(response, web.Response)
        or response.content_type == "application/json"
        or not isinstance(response.body, bytes)
    ):
        return
    text = response.body.decode("utf-8", "replace").strip() or str(response.reason)
    body = orjson.dumps({"error": f"{request.method} {request.path}: {text}"})
    response.body = body
    response.content_type = "application/json"
    response.headers["Content-Length"] = str(len(body))


_ALLOWED = {path: ("POST",) for path, _, _ in INGEST_ROUTES} | {
    "/health": ("GET", "HEAD"),
    "/metrics": ("GET", "HEAD"),
}


async def _no_route(request: web.Request) -> web.StreamResponse:
    """aiohttp's 404 or 405 for what no route takes (`_json_errors` turns it into JSON)."""
    allowed = _ALLOWED.get(request.path)
    if allowed is not None:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own 404/405 answers, as `{"error": ...}` like every other error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = f"{request.method} {request.path}: {exc.reason}"
        if exc.status == 405:
            message += "; ingest endpoints take POST, /health and /metrics take GET"
        elif exc.status == 404:
            message += "; post events to /api/v1/lineage"
        allow = exc.headers.get("Allow")
        return json_error(exc.status, message, headers={"Allow": allow} if allow else None)
