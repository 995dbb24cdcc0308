"""The `rest` sink's part of the drain benchmark (run by `benchmarks/drain.py`).

Drains a spool of Spark sample events (each round with new run ids, as new runs of the same
application) through the forwarder and the `rest` sink to the mock in its own process with
its per-call latency, after one warm-up round: the caches then know the pipeline, its task,
the tables and the edges, which is the steady state of a relay that has run a while. It
counts the OpenMetadata calls per COMPLETE event (goal: at most the edges it carries + 1)
and the events/s delivered.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from relay._clock import SystemClock
from relay._config import (
    BreakerConfig,
    ForwarderConfig,
    MappingRule,
    OpenMetadataConfig,
    SpoolConfig,
)
from relay._events import EventKey, SpooledEvent
from relay._forward.forwarder import Forwarder
from relay._observe.metrics import Metrics
from relay._secrets import make_token_provider
from relay._sinks.client import OpenMetadataClient
from relay._sinks.rest import RestSink
from relay._spool import Spool
from relay._translate import edge_pairs, parse_run_event

__all__ = ["RestResult", "rest_drain"]

HIVE = MappingRule(namespace="hive://*", service="hive_prod", database="warehouse")


class _Target(Protocol):
    url: str


@dataclass
class RestResult:
    events: int
    seconds: float
    calls: int
    completes: int
    edges: int  # edges the COMPLETE events carry

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def calls_per_complete(self) -> float:
        return self.calls / self.completes

    @property
    def goal(self) -> float:
        """Edges per COMPLETE + 1."""
        return self.edges / self.completes + 1


def _completes(items: list[tuple[bytes, EventKey]]) -> tuple[int, int]:
    completes = edges = 0
    for body, _ in items:
        event = parse_run_event(body)
        if event is not None and event.event_type == "COMPLETE":
            completes += 1
            edges += len(edge_pairs(event, action_ended=False))
    return completes, edges


async def rest_drain(
    directory: Path,
    warm_up: list[tuple[bytes, EventKey]],
    items: list[tuple[bytes, EventKey]],
    target: _Target,
    *,
    token: str,
    pool: int,
    batch: int,
) -> RestResult:
    metrics = Metrics()
    om = OpenMetadataConfig(
        host_port=target.url, connection_pool_size=pool,
        jwt_token_env="BENCH_OM_TOKEN",  # noqa: S106 -- a variable's name
        mapping=(HIVE,),
    )  # fmt: skip
    tokens = make_token_provider(om, clock=SystemClock(), environ={"BENCH_OM_TOKEN": token})
    client = OpenMetadataClient(om, metrics=metrics, tokens=tokens)
    sink = RestSink(client, om, state_path=directory / "rest-sink.db", metrics=metrics)
    spool = await Spool.open(SpoolConfig(dir=directory), metrics=metrics)
    forwarder = Forwarder(
        spool, sink, forwarder=ForwarderConfig(max_batch_events=batch), openmetadata=om,
        breaker=BreakerConfig(), metrics=metrics,
    )  # fmt: skip
    try:
        await sink.start()
        warm = [
            SpooledEvent(id=i, body=body, key=key, received_at=0.0)
            for i, (body, key) in enumerate(warm_up, start=1)
        ]
        await sink.send(warm)
        for start in range(0, len(items), 2000):
            await spool.append(items[start : start + 2000])
        calls_before = sink.api.calls
        started = time.perf_counter()
        await forwarder.start()
        while spool.stats().events:  # noqa: ASYNC110 -- polled like drain.py's drain
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - started
        calls = sink.api.calls - calls_before
    finally:
        await forwarder.aclose()
        await sink.aclose()
        await tokens.aclose()
        await spool.aclose()
    completes, edges = _completes(items)
    return RestResult(
        events=len(items), seconds=seconds, calls=calls, completes=completes, edges=edges
    )
