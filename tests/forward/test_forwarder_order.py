"""Per-run order across a restart, hold-backs that are not attempts, and how many calls are
in flight: the pool size, and a ramp-up after the breaker closes (real spool on disk,
in-memory sinks, the fake clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from forward_support import (
    batches,
    dataset_items,
    idle,
    make_forwarder,
    spark_samples,
)
from wait_support import wait_until

from relay._config import BreakerConfig, ForwarderConfig, OpenMetadataConfig
from relay._events import EventKey, SpooledEvent
from relay._exceptions import RetriableSinkError
from relay._forward.breaker import BreakerState
from relay._forward.forwarder import Forwarder
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._sinks.base import DELIVERED, EventResult
from relay._spool import Spool
from relay.testing.fakes import FakeClock, MemorySink


def _run_items() -> list[tuple[bytes, EventKey]]:
    """The application run's events from the samples: START first, COMPLETE last."""
    samples = spark_samples()
    app_run = parse_event(samples[0]).run_id
    items = [(body, parse_event(body)) for body in samples]
    return [(body, key) for body, key in items if key.run_id == app_run]


async def test_a_restart_keeps_a_run_behind_its_event_waiting_for_a_retry(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    (start, start_key), (complete, complete_key) = _run_items()
    ids = await spool.append([(start, start_key), (complete, complete_key)])
    # The state a crash can leave: the START's failure was recorded (retry in a moment), the
    # COMPLETE, leased behind it, was not yet held back when the process died.
    await spool.lease(max_events=10, max_bytes=10**7, lease_s=30)
    await spool.schedule_retry([ids[0]], clock.time() + 0.5, "HTTP 503: maintenance")
    await spool.aclose()  # the restart: leases are void, the retry time is on disk
    reopened = await Spool.open(spool._config, metrics=metrics, clock=clock)
    try:
        # A client sends one more event of the same run to the restarted relay.
        rerun = complete.replace(b'"COMPLETE"', b'"OTHER"', 1)
        await reopened.append([(rerun, parse_event(rerun))])
        sink = MemorySink()
        fwd = make_forwarder(reopened, sink, metrics, clock, openmetadata=OpenMetadataConfig())
        running.append(fwd)
        await fwd.start()
        # The whole run waits for the START's retry time, and the forwarder knows when.
        await wait_until(lambda: idle(fwd, clock) and clock.sleeps() == [0.5])
        assert sink.events == []
        clock.advance(0.5)
        await wait_until(lambda: reopened.stats().events == 0)
        assert [e.body for e in sink.events] == [start, complete, rerun]
        # The events held back behind the START were not sent: no attempt counted for them.
        assert [e.attempts for e in sink.events] == [1, 0, 0]
    finally:
        await reopened.aclose()


async def test_held_back_events_count_no_attempt_towards_retry_attempts(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    (start, start_key), (complete, complete_key) = _run_items()
    await spool.append([(start, start_key), (complete, complete_key)])
    failures = {start: 1, complete: 1}  # each fails once, retriably
    sent: list[bytes] = []

    def respond(events: Sequence[SpooledEvent]) -> list[EventResult]:
        results: list[EventResult] = []
        for event in events:
            sent.append(event.body)
            if failures.get(event.body):
                failures[event.body] -= 1
                results.append(EventResult.retriable("HTTP 200: index busy"))
            else:
                results.append(DELIVERED)
        return results

    sink = MemorySink(responder=respond)
    fwd = make_forwarder(
        spool, sink, metrics, clock,
        forwarder=ForwarderConfig(max_batch_events=1, linger_ms=0),
        # One retry each: the COMPLETE, held back while the START retried, still has its own.
        openmetadata=OpenMetadataConfig(retry_attempts=1, retry_delay_ms=250),
        breaker=BreakerConfig(failure_threshold=50),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    for failed in (1, 2):  # the START's first call, then the COMPLETE's: 0.25 s backoff each
        await wait_until(lambda: batches(metrics, "retry") == failed)  # noqa: B023 - used at once
        assert sent == [start, start, complete][: failed * 2 - 1]
        clock.advance(0.25)
    await wait_until(lambda: spool.stats().events == 0)
    assert await spool.list_dead_letters() == []
    # The COMPLETE waited in the spool until its START was delivered (never sent before).
    assert sent == [start, start, complete, complete]
    assert [e.attempts for e in sink.events] == [1, 1]  # one failed send each, no more


class _GatedSink(MemorySink):
    """Fails while `down`; otherwise each call waits until the test lets it finish, and the
    sink notes how many calls were in flight as each began, and how many had succeeded."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.held: list[asyncio.Future[None]] = []
        self.in_flight = 0
        self.succeeded = 0
        self.starts: list[tuple[int, int]] = []  # (in flight with this call, successes before)

    async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
        if self.down:
            self.calls += 1
            raise RetriableSinkError("connection refused")
        self.in_flight += 1
        self.starts.append((self.in_flight, self.succeeded))
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held.append(gate)
        try:
            await gate
            results = await super().send(events)
            self.succeeded += 1
            return results
        finally:
            self.in_flight -= 1

    def open_gates(self) -> None:
        held, self.held = self.held, []
        for gate in held:
            gate.set_result(None)

    async def drain(self, spool: Spool) -> None:
        """Let every call through until the spool is empty."""

        def drained() -> bool:
            self.open_gates()
            return not spool.stats().events

        await wait_until(drained)


async def test_calls_in_flight_ramp_up_after_the_breaker_closes(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    # Dataset events (no run order to keep), one per call: plenty of backlog for 8 calls.
    items = dataset_items(60)
    await spool.append(items)
    sink = _GatedSink()
    fwd = make_forwarder(
        spool, sink, metrics, clock,
        forwarder=ForwarderConfig(max_batch_events=1, linger_ms=0),
        openmetadata=OpenMetadataConfig(connection_pool_size=8, retry_delay_ms=250),
        breaker=BreakerConfig(failure_threshold=2, recovery_timeout_s=4),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    # Open, and no call of the outage left to run: the next call is the half-open probe.
    await wait_until(lambda: fwd.breaker.state is BreakerState.OPEN and idle(fwd, clock))
    sink.down = False
    clock.advance(4.0)

    # Let calls finish wave by wave, each wave once as many calls as the ramp allows are in.
    for wave in (1, 2, 4, 8, 8):
        await wait_until(lambda: len(sink.held) == wave)  # noqa: B023 - used at once
        sink.open_gates()
    assert fwd.breaker.state is BreakerState.CLOSED
    # Never more in flight than the ramp allowed: the probe alone, then 2 after it succeeded,
    # one more with each success (the probe is the first) up to the pool size.
    for in_flight, successes in sink.starts:
        assert in_flight <= min(8, 1 + successes), sink.starts
    assert max(n for n, _ in sink.starts) == 8  # and the whole pool once the server held up
    assert fwd.health_breaker()[1]["in_flight_limit"] == 8
    await sink.drain(spool)
    assert sorted(e.body for e in sink.events) == sorted(body for body, _ in items)


async def test_a_cold_start_uses_the_whole_pool_and_never_more(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    items = dataset_items(24)
    await spool.append(items)
    sink = _GatedSink()
    sink.down = False
    fwd = make_forwarder(
        spool, sink, metrics, clock,
        forwarder=ForwarderConfig(max_batch_events=1, linger_ms=0),
        openmetadata=OpenMetadataConfig(connection_pool_size=4),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    for _ in range(3):
        await wait_until(lambda: len(sink.held) >= 4)
        sink.open_gates()
    await sink.drain(spool)
    # No ramp without an outage: four calls at once before any answer, never a fifth.
    assert [n for n, successes in sink.starts if successes == 0] == [1, 2, 3, 4]
    assert max(n for n, _ in sink.starts) == 4
    assert sorted(e.body for e in sink.events) == sorted(body for body, _ in items)
