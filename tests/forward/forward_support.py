"""Helpers for the forwarder's tests: the sample events, a forwarder on the fake clock, and when
it is idle (polling with a bound: wait_support.wait_until)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from relay._clock import Clock
from relay._config import BreakerConfig, ForwarderConfig, OpenMetadataConfig
from relay._events import EventKey
from relay._forward.forwarder import Forwarder
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay.testing.fakes import FakeClock, MemorySink

SPARK_EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events" / "spark"


def spark_samples() -> list[bytes]:
    """The project's Spark sample events, in emission order (two runs, parent and child)."""
    return [p.read_bytes() for p in sorted(SPARK_EVENTS.glob("*.json"))]


def _run_ids(samples: list[bytes]) -> list[str]:
    ids: list[str] = []
    for body in samples:
        run_id = parse_event(body).run_id
        if run_id is not None and run_id not in ids:
            ids.append(run_id)
    return ids


def fresh_copies(copies: int) -> list[tuple[bytes, EventKey]]:
    """`copies` rounds of the samples, each round with new run ids (as new Spark runs)."""
    samples = spark_samples()
    originals = _run_ids(samples)
    items: list[tuple[bytes, EventKey]] = []
    for _ in range(copies):
        mapping = {old: str(uuid.uuid4()) for old in originals}
        for body in samples:
            for old, new in mapping.items():
                body = body.replace(old.encode(), new.encode())
            items.append((body, parse_event(body)))
    return items


def dataset_items(count: int) -> list[tuple[bytes, EventKey]]:
    """`count` small dataset events: no run, so no per-run order holds any of them back."""
    return [
        (f'{{"dataset":{i}}}'.encode(),
         EventKey(kind="dataset", event_time=f"2026-11-20T02:00:{i % 60:02d}Z", producer="p",
                  body_hash=str(i)))
        for i in range(count)
    ]  # fmt: skip


def idle(forwarder: Forwarder, clock: FakeClock) -> bool:
    """Nothing left to do until the clock moves: no call in flight or being recorded, no
    wake-up pending, and the dispatcher asleep on the clock. (Reads the forwarder's insides:
    only the forwarder knows it is waiting; nothing appended meanwhile is assumed.)"""
    return not forwarder._tasks and not forwarder._wakeup.is_set() and bool(clock.sleeps())


def batches(metrics: Metrics, result: str) -> float:
    """How many calls ended with `result` (delivered, retry, partial, dead_letter): each is
    counted once its events were settled in the spool."""
    return float(metrics.forward_batches.labels(result)._value.get())


# Retries after exact binary fractions of a second (without jitter): 0.25 s, 0.5 s, 1 s, 2 s.
RETRY = OpenMetadataConfig(retry_delay_ms=250, retry_max_delay_ms=2000)


def no_jitter() -> float:
    """The backoff's random source for tests: always the full delay, so times are exact."""
    return 1.0


def make_forwarder(
    spool: Spool,
    sink: MemorySink,
    metrics: Metrics,
    clock: Clock,
    *,
    forwarder: ForwarderConfig | None = None,
    openmetadata: OpenMetadataConfig = RETRY,
    breaker: BreakerConfig | None = None,
    rand: Callable[[], float] = no_jitter,
) -> Forwarder:
    return Forwarder(
        spool,
        sink,
        forwarder=forwarder or ForwarderConfig(linger_ms=0),
        openmetadata=openmetadata,
        breaker=breaker or BreakerConfig(),
        metrics=metrics,
        clock=clock,
        rand=rand,
    )
