"""The forwarder against a real spool and an in-memory sink: order, duplicates, splitting,
backoff, the breaker and the retry budget, on the fake clock (time moves only when a test
advances it, so "not before" is checked exactly, never by waiting to see)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from forward_support import (
    batches,
    dataset_items,
    fresh_copies,
    idle,
    make_forwarder,
    spark_samples,
)
from wait_support import wait_until

from relay._config import BreakerConfig, ForwarderConfig, OpenMetadataConfig
from relay._events import SpooledEvent
from relay._exceptions import PermanentSinkError, RetriableSinkError
from relay._forward.breaker import BreakerState
from relay._forward.forwarder import Forwarder
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._sinks.base import DELIVERED, EventResult
from relay._spool import Spool
from relay.testing.fakes import FakeClock, MemorySink


async def test_delivers_every_event_once_in_batches(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    items = fresh_copies(40)  # 200 events, 80 runs
    await spool.append(items)
    sink = MemorySink()
    fwd = make_forwarder(
        spool, sink, metrics, clock, forwarder=ForwarderConfig(max_batch_events=50, linger_ms=0)
    )
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)

    assert sorted(e.body for e in sink.events) == sorted(body for body, _ in items)
    assert all(len(batch) <= 50 for batch in sink.batches)
    assert len(sink.batches) >= 4
    assert metrics.events_sent._value.get() == len(items)


async def test_a_trickle_lingers_to_share_a_call_and_linger_ends(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    items = dataset_items(4)
    sink = MemorySink()
    fwd = make_forwarder(
        spool, sink, metrics, clock, forwarder=ForwarderConfig(max_batch_events=3, linger_ms=4000)
    )
    running.append(fwd)
    await fwd.start()
    await spool.append([items[0]])
    await wait_until(lambda: clock.sleeps() == [4.0])  # holds it for the linger
    clock.advance(2.0)
    await spool.append([items[1]])
    # The linger counts from the oldest event: the second one does not prolong it.
    await wait_until(lambda: spool.stats().leased == 2 and clock.sleeps() == [2.0])
    assert sink.batches == []
    await spool.append([items[2]])
    await wait_until(lambda: len(sink.batches) == 1)  # full: goes before the linger ends
    assert [len(batch) for batch in sink.batches] == [3]  # the first waited for the others

    await spool.append([items[3]])  # alone: it goes when its linger ends, not before
    await wait_until(lambda: spool.stats().leased == 1 and clock.sleeps() == [4.0])
    clock.advance(3.5)
    assert clock.sleeps() == [0.5] and len(sink.batches) == 1
    clock.advance(0.5)
    await wait_until(lambda: spool.stats().events == 0)
    assert [len(batch) for batch in sink.batches] == [3, 1]


async def test_keeps_per_run_order_and_never_overlaps_a_run(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    # Small batches split runs across calls; the pool lets calls run concurrently.
    items = fresh_copies(10)
    await spool.append(items)
    in_flight: set[str] = set()
    overlaps: list[str] = []

    class SlowSink(MemorySink):
        async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
            runs = {e.key.run_id for e in events if e.key.run_id}
            overlaps.extend(runs & in_flight)
            in_flight.update(runs)
            try:
                for _ in range(3):
                    await super().send([])  # yield to let other calls start
                self.calls -= 3
                return await super().send(events)
            finally:
                in_flight.difference_update(runs)

    sink = SlowSink()
    fwd = make_forwarder(
        spool, sink, metrics, clock, forwarder=ForwarderConfig(max_batch_events=3, linger_ms=0)
    )
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)

    assert overlaps == []
    positions: dict[str, list[int]] = {}
    for event in sink.events:
        assert event.key.run_id is not None
        positions.setdefault(event.key.run_id, []).append(event.id)
    # Within each run, spool order (= arrival order: START before COMPLETE) is kept.
    assert all(ids == sorted(ids) for ids in positions.values())
    assert len(sink.events) == len(items)


async def test_client_duplicates_are_forwarded_once(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    samples = spark_samples()
    items = [(body, parse_event(body)) for body in samples]
    # A client retried the whole request, and one event twice more, in a later batch.
    await spool.append(items + items)
    sink = MemorySink()
    fwd = make_forwarder(spool, sink, metrics, clock)
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)
    await spool.append([items[2], items[2]])
    await wait_until(lambda: spool.stats().events == 0)

    assert sorted(e.body for e in sink.events) == sorted(samples)
    assert metrics.events_dropped.labels("duplicate")._value.get() == len(samples) + 2


async def test_partial_results_are_split(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    items = fresh_copies(2)
    await spool.append(items)
    bad = items[1][0]
    flaky = items[3][0]
    flaky_failures = [1]

    def respond(events: Sequence[SpooledEvent]) -> list[EventResult]:
        results = []
        for event in events:
            if event.body == bad:
                results.append(EventResult.permanent("HTTP 200: unknown dataset"))
            elif event.body == flaky and flaky_failures:
                flaky_failures.pop()
                results.append(EventResult.retriable("HTTP 200: try later"))
            else:
                results.append(DELIVERED)
        return results

    sink = MemorySink(responder=respond)
    fwd = make_forwarder(spool, sink, metrics, clock)
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: batches(metrics, "partial") == 1)
    assert spool.stats().events == 1  # the flaky one waits for its backoff (0.25 s) ...
    assert flaky not in [e.body for e in sink.events]
    clock.advance(0.25)
    await wait_until(lambda: spool.stats().events == 0)  # ... and is delivered after it

    delivered = [e.body for e in sink.events]
    assert sorted(delivered) == sorted(body for body, _ in items if body != bad)
    dead = await spool.list_dead_letters()
    assert [(e.body, reason) for e, reason in dead] == [(bad, "HTTP 200: unknown dataset")]
    assert metrics.forward_batches.labels("partial")._value.get() >= 1


async def test_whole_batch_refusal_is_bisected_to_the_bad_event(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    items = fresh_copies(4)  # 20 events in one batch
    await spool.append(items)
    poison = items[13][0]

    class StrictSink(MemorySink):
        async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
            if any(e.body == poison for e in events):
                self.calls += 1
                raise PermanentSinkError(
                    "400", status=400, reason="HTTP 400: [run.runId must be a UUID]"
                )
            return await super().send(events)

    sink = StrictSink()
    fwd = make_forwarder(spool, sink, metrics, clock)
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)

    assert sorted(e.body for e in sink.events) == sorted(b for b, _ in items if b != poison)
    dead = await spool.list_dead_letters()
    assert [(e.body, r) for e, r in dead] == [(poison, "HTTP 400: [run.runId must be a UUID]")]
    assert metrics.events_dead_lettered.labels("http_400")._value.get() == 1
    assert sink.calls <= 2 * 5 + 1  # about 2 calls per halving of 20 events


async def test_retriable_failures_keep_events_and_trip_the_breaker(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    items = fresh_copies(3)
    await spool.append(items)
    sink = MemorySink()
    sink.fail_with = RetriableSinkError("connection refused")
    fwd = make_forwarder(
        spool, sink, metrics, clock,
        forwarder=ForwarderConfig(max_batch_events=1, linger_ms=0),
        openmetadata=OpenMetadataConfig(connection_pool_size=1, retry_delay_ms=250),
        breaker=BreakerConfig(failure_threshold=3, recovery_timeout_s=4, max_recovery_timeout_s=8),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    # Three calls fail (their retries wait 0.25 s, which does not come): the breaker opens,
    # and the forwarder waits for its recovery timeout, with nothing else to do.
    await wait_until(lambda: idle(fwd, clock))
    assert metrics.circuit_state._value.get() == BreakerState.OPEN
    assert sink.calls == 3 and clock.sleeps() == [4.0]
    clock.advance(3.5)  # retries are due, the breaker is not: no call yet
    assert sink.calls == 3 and clock.sleeps() == [0.5]
    clock.advance(0.5)
    # One probe, which fails: open again for twice as long.
    await wait_until(lambda: fwd.breaker.opened_count == 2 and idle(fwd, clock))
    assert sink.calls == 4 and clock.sleeps() == [8.0]
    assert spool.stats().events == len(items)

    sink.fail_with = None
    clock.advance(8.0)
    await wait_until(lambda: spool.stats().events == 0)
    assert fwd.breaker.state is BreakerState.CLOSED
    assert sorted(e.body for e in sink.events) == sorted(b for b, _ in items)
    assert (await spool.list_dead_letters()) == []


async def test_retry_after_is_honoured_and_pauses_every_call(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    first, later = dataset_items(2)
    await spool.append([first])
    sink = MemorySink()
    sink.fail_with = RetriableSinkError("HTTP 429: slow down", status=429, retry_after_s=4.0)
    fwd = make_forwarder(spool, sink, metrics, clock)  # its own backoff would be 0.25 s
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: batches(metrics, "retry") == 1)
    sink.fail_with = None
    await spool.append([later])  # a new event waits too: the server asked for a pause
    await wait_until(lambda: idle(fwd, clock) and clock.sleeps() == [4.0])
    clock.advance(3.5)
    assert sink.calls == 1 and clock.sleeps() == [0.5]
    clock.advance(0.5)
    await wait_until(lambda: spool.stats().events == 0)
    assert sink.calls == 2  # the retried event and the new one, together
    assert metrics.retries._value.get() == 1


async def test_retry_attempts_limit_dead_letters_when_set(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    body, key = fresh_copies(1)[0]
    await spool.append([(body, key)])
    sink = MemorySink()
    sink.fail_with = RetriableSinkError("HTTP 503: maintenance", status=503)
    fwd = make_forwarder(
        spool, sink, metrics, clock,
        openmetadata=OpenMetadataConfig(retry_attempts=2, retry_delay_ms=250),
        breaker=BreakerConfig(failure_threshold=50),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    for failed, backoff in ((1, 0.25), (2, 0.5)):  # the backoff doubles with each attempt
        await wait_until(lambda: batches(metrics, "retry") == failed)  # noqa: B023 - used at once
        assert sink.calls == failed and await spool.list_dead_letters() == []
        clock.advance(backoff)

    async def dead() -> bool:
        return bool(await spool.list_dead_letters())

    await wait_until(dead)
    [(event, reason)] = await spool.list_dead_letters()
    assert event.body == body
    assert reason == "gave up after 3 attempts: HTTP 503: maintenance"
    assert sink.calls == 3
    assert metrics.events_dead_lettered.labels("retries_exhausted")._value.get() == 1


async def test_shutdown_returns_leases_and_a_new_forwarder_finishes(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    items = fresh_copies(20)
    await spool.append(items)
    delivered: list[SpooledEvent] = []

    class GatedSink(MemorySink):
        async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
            if len(self.batches) >= 2:
                await asyncio.Event().wait()  # hangs until cancelled
            results = await super().send(events)
            delivered.extend(events)
            return results

    first = make_forwarder(spool, GatedSink(), metrics, clock, forwarder=ForwarderConfig(
        max_batch_events=10, linger_ms=0))  # fmt: skip
    await first.start()
    await wait_until(lambda: len(delivered) >= 20 and spool.stats().leased == 80)
    closing = asyncio.create_task(first.aclose(wait_s=5.0))
    # The calls in flight get their grace period, on the clock; then they are cut.
    await wait_until(lambda: clock.sleeps() == [5.0])
    assert not closing.done()
    clock.advance(5.0)
    await closing
    assert spool.stats().leased == 0  # every lease handed back

    second_sink = MemorySink()
    second = make_forwarder(spool, second_sink, metrics, clock)
    running.append(second)
    await second.start()
    await wait_until(lambda: spool.stats().events == 0)
    assert sorted(e.body for e in delivered + second_sink.events) == sorted(b for b, _ in items)


async def test_an_unexpected_sink_error_loses_nothing(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    items = fresh_copies(1)
    await spool.append(items)
    failures = [RuntimeError("a bug in a sink")]

    class BuggySink(MemorySink):
        async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
            if failures:
                raise failures.pop()
            return await super().send(events)

    sink = BuggySink()
    fwd = make_forwarder(spool, sink, metrics, clock)
    running.append(fwd)
    await fwd.start()
    # The batch is scheduled again, after the backoff: the forwarder sleeps until then.
    await wait_until(lambda: idle(fwd, clock) and clock.sleeps() == [0.25])
    assert "a bug in a sink" in fwd.last_error
    assert sink.events == [] and spool.stats().events == len(items)
    clock.advance(0.25)
    await wait_until(lambda: spool.stats().events == 0)
    assert sorted(e.body for e in sink.events) == sorted(b for b, _ in items)


async def test_a_later_event_waits_for_its_runs_retried_event(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    samples = spark_samples()
    items = [(body, parse_event(body)) for body in samples]
    await spool.append(items)
    first_start = samples[0]  # START of the application run; its COMPLETE is the last sample
    failures = [1]

    def respond(events: Sequence[SpooledEvent]) -> list[EventResult]:
        if events[0].body == first_start and failures:
            failures.pop()
            return [EventResult.retriable("HTTP 200: index busy")]
        return [DELIVERED] * len(events)

    sink = MemorySink(responder=respond)
    fwd = make_forwarder(
        spool, sink, metrics, clock,
        forwarder=ForwarderConfig(max_batch_events=1, linger_ms=0),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    # Everything else goes; the START waits for its retry (0.25 s), its COMPLETE with it.
    await wait_until(lambda: idle(fwd, clock) and spool.stats().events == 2)
    assert len(sink.events) == len(samples) - 2
    assert {first_start, samples[-1]}.isdisjoint(e.body for e in sink.events)
    assert clock.sleeps() == [0.25]
    clock.advance(0.25)
    await wait_until(lambda: spool.stats().events == 0)

    order = [e.body for e in sink.events]
    assert sorted(order) == sorted(samples)
    # The application run's COMPLETE went only after its START was finally delivered.
    assert order.index(first_start) < order.index(samples[-1])
    assert parse_event(samples[-1]).run_id == parse_event(first_start).run_id


async def test_the_retry_budget_keeps_retries_near_a_fifth_of_calls(
    spool: Spool, metrics: Metrics, clock: FakeClock, running: list[Forwarder]
) -> None:
    # Dataset events (no run to keep in order), five per call.
    items = dataset_items(300)
    await spool.append(items)

    class FlakySink(MemorySink):
        """Refuses three calls in four: without a budget, most calls would be retries."""

        async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
            if self.calls % 4:
                self.calls += 1
                raise RetriableSinkError("HTTP 503: overloaded", status=503)
            return await super().send(events)

    sink = FlakySink()
    fwd = make_forwarder(
        spool, sink, metrics, clock,
        forwarder=ForwarderConfig(max_batch_events=5, linger_ms=0),
        # One call at a time: the calls and the budget's deposits come in a fixed order.
        openmetadata=OpenMetadataConfig(connection_pool_size=1, retry_delay_ms=250),
        breaker=BreakerConfig(failure_threshold=1000, failure_rate=1.0),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    # Every event is tried once; 45 of the 60 calls fail, and wait 0.25 s for their retry.
    await wait_until(lambda: idle(fwd, clock))
    assert (fwd.calls, fwd.retry_calls) == (60, 0)
    clock.advance(0.25)
    # All 45 are due; the budget lets through its reserve (3) and a fifth of the 60 first
    # attempts (12, less a rounding hair: 11), and defers the rest (to their next backoff,
    # 0.5 s, or later: the budget's time allowance earns 1 token a second).
    await wait_until(lambda: idle(fwd, clock))
    assert fwd.retry_calls == 3 + 11
    clock.advance(1.0)  # the time allowance earns one more retry, and only one
    await wait_until(lambda: idle(fwd, clock))
    assert fwd.retry_calls == 3 + 11 + 1
    assert metrics.retries._value.get() == fwd.retry_calls
    assert spool.stats().events > 0  # refused retries wait in the spool, none is dropped
    assert (await spool.list_dead_letters()) == []
