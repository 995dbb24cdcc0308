"""The relay's parts' shared keys, and delivery: the part that assembles token provider, TLS,
HTTP client, sink and forwarder.

A part is an aiohttp cleanup context (set up before `yield`, torn down after); `Relay`
(`_app.py`) registers them in order and sets the keys below on its `web.Application`, so a part
(built in, or an embedder's) finds the spool, metrics, config, health, clock and the relay's
stop switch there without importing `_app`.

`delivery_part` is registered after the spool, so it starts once the spool is open and stops
before the spool closes: the forwarder hands its leases back, then the sink's connections and
the token provider are closed. It adds three `/health` components:

    openmetadata  sink, last success, last error, server version (rest sink); degraded on a
                  setup problem (403, 401 after a token re-fetch, the native endpoint
                  missing, an untrusted certificate)
    breaker       closed / half-open / open; degraded unless closed
    forwarding    age of the oldest spooled event; degraded beyond `forwarder.max_lag_s`
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from ._clock import Clock, SystemClock
from ._config import Config
from ._forward.forwarder import Forwarder
from ._observe.audit import AuditLog
from ._observe.health import ComponentHealth, Health
from ._observe.metrics import Metrics
from ._secrets import make_token_provider
from ._sinks.client import OpenMetadataClient
from ._sinks.openlineage import OpenLineageSink
from ._sinks.rest import RestSink
from ._sinks.tls import make_ssl_context
from ._spool import Spool

__all__ = [
    "CLOCK",
    "CONFIG",
    "FAIL",
    "FORWARDER",
    "HEALTH",
    "METRICS",
    "REST_STATE_FILE",
    "SPOOL",
    "Part",
    "delivery_part",
]

log = logging.getLogger(__name__)

# A part of the relay: an aiohttp cleanup context (set up, yield, tear down).
Part = Callable[[web.Application], AsyncIterator[None]]

SPOOL = web.AppKey("spool", Spool)
METRICS = web.AppKey("metrics", Metrics)
CONFIG = web.AppKey("config", Config)
HEALTH = web.AppKey("health", Health)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
# A part that failed for good (the spool under the forwarder) stops the relay through it.
FAIL: web.AppKey[Callable[[BaseException], None]] = web.AppKey("fail")
FORWARDER = web.AppKey("forwarder", Forwarder)
REST_STATE_FILE = "rest-sink.db"  # the rest sink's run states and parked edges


async def delivery_part(app: web.Application) -> AsyncIterator[None]:
    """Start the forwarder and its sink; on the way out stop them, leases returned."""
    config: Config = app[CONFIG]
    metrics: Metrics = app[METRICS]
    health: Health = app[HEALTH]
    spool: Spool = app[SPOOL]
    clock: Clock = app.get(CLOCK) or SystemClock()
    om = config.openmetadata

    if not config.forwarder.enabled:
        log.warning("forwarder.enabled = false: events are spooled, not delivered")
        yield
        return
    tokens = make_token_provider(om, clock=clock, metrics=metrics)
    audit = AuditLog(config.audit, metrics=metrics, clock=clock) if config.audit.enabled else None
    client = OpenMetadataClient(
        om, metrics=metrics, tokens=tokens, ssl_context=make_ssl_context(om), clock=clock,
        audit=audit,
    )  # fmt: skip
    sink: OpenLineageSink | RestSink
    if om.sink == "rest":
        sink = RestSink(
            client, om, state_path=config.spool.dir / REST_STATE_FILE, metrics=metrics,
            clock=clock, dead_letter=spool.bury,
        )  # fmt: skip
        try:
            await sink.start()
        except BaseException:
            await _close_quietly(sink.aclose(), tokens.aclose())
            raise
    else:
        sink = OpenLineageSink(client, om, clock=clock)
    forwarder = Forwarder(
        spool, sink,
        forwarder=config.forwarder, openmetadata=om, breaker=config.breaker,
        metrics=metrics, clock=clock,
        # A failed spool stops the relay (it exits non-zero; recovery runs on restart).
        on_spool_failure=app.get(FAIL),
    )  # fmt: skip
    app[FORWARDER] = forwarder
    max_lag_s = config.forwarder.max_lag_s

    def openmetadata_health() -> ComponentHealth:
        healthy, details = forwarder.health_openmetadata()
        if isinstance(sink, RestSink):
            details["version"] = sink.server_version or None
            details["unresolved"] = sink.unresolved
        return ComponentHealth(healthy, {"url": om.api_base, **details})

    def breaker_health() -> ComponentHealth:
        healthy, details = forwarder.health_breaker()
        return ComponentHealth(healthy, details)

    def lag_health() -> ComponentHealth:
        oldest = spool.stats().oldest_received_at
        age = 0.0 if oldest is None else max(0.0, clock.time() - oldest)
        details: dict[str, Any] = {"oldest_event_age_s": round(age, 3), "max_lag_s": max_lag_s}
        if age > max_lag_s:
            details["error"] = (
                f"the oldest spooled event waits for {age:.0f} s (> forwarder.max_lag_s): "
                "OpenMetadata is not taking events fast enough or at all"
            )
        return ComponentHealth(age <= max_lag_s, details)

    health.add("openmetadata", openmetadata_health)
    health.add("breaker", breaker_health)
    health.add("forwarding", lag_health)
    await forwarder.start()
    log.info("forwarding to %s with sink %s", om.api_base, sink.name)
    try:
        yield
    finally:
        for name in ("openmetadata", "breaker", "forwarding"):
            health.remove(name)
        timeout_s = config.relay.shutdown_timeout_s
        try:
            await asyncio.shield(forwarder.aclose(wait_s=timeout_s / 2))
        finally:
            closes = [sink.aclose(), tokens.aclose()]
            if audit is not None:  # after the sink: its last calls are audited too
                closes.append(audit.aclose())
            await asyncio.shield(_close_quietly(*closes))


async def _close_quietly(*closes: Any) -> None:
    for close in closes:
        try:
            await close
        except Exception:  # closing must go on: the spool closes after us
            log.exception("closing a delivery part failed")
