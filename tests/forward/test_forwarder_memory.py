"""The forwarder against a real spool and an in-memory sink: order, duplicates, splitting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from forward_support import (
    dataset_items,
    fresh_copies,
    make_forwarder,
    spark_samples,
    wait_until,
    wait_until_async,
)

from relay._config import BreakerConfig, ForwarderConfig, OpenMetadataConfig
from relay._events import SpooledEvent
from relay._exceptions import PermanentSinkError, RetriableSinkError
from relay._forward.breaker import BreakerState
from relay._forward.forwarder import Forwarder
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._sinks.base import DELIVERED, EventResult
from relay._spool import Spool
from relay.testing.fakes import MemorySink


async def test_delivers_every_event_once_in_batches(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
) -> None:
    items = fresh_copies(40)  # 200 events, 80 runs
    await spool.append(items)
    sink = MemorySink()
    fwd = make_forwarder(spool, sink, metrics, forwarder=ForwarderConfig(max_batch_events=50))
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)

    assert sorted(e.body for e in sink.events) == sorted(body for body, _ in items)
    assert all(len(batch) <= 50 for batch in sink.batches)
    assert len(sink.batches) >= 4
    assert metrics.events_sent._value.get() == len(items)


async def test_a_trickle_lingers_to_share_a_call_and_linger_ends(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
) -> None:
    items = dataset_items(4)
    sink = MemorySink()
    fwd = make_forwarder(
        spool, sink, metrics, forwarder=ForwarderConfig(max_batch_events=3, linger_ms=60_000)
    )
    running.append(fwd)
    await fwd.start()
    for item in items[:3]:  # one by one, with room for a call between them
        await spool.append([item])
        await asyncio.sleep(0.02)
    await wait_until(lambda: len(sink.batches) == 1)
    assert [len(batch) for batch in sink.batches] == [3]  # the first waited for the others

    short = make_forwarder(spool, sink, metrics, forwarder=ForwarderConfig(linger_ms=50))
    await fwd.aclose()
    running.append(short)
    await short.start()
    await spool.append([items[3]])
    await wait_until(lambda: spool.stats().events == 0)  # alone, once linger_ms passed
    assert [len(batch) for batch in sink.batches] == [3, 1]


async def test_keeps_per_run_order_and_never_overlaps_a_run(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
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
    fwd = make_forwarder(spool, sink, metrics, forwarder=ForwarderConfig(max_batch_events=3))
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
    spool: Spool, metrics: Metrics, running: list[Forwarder]
) -> None:
    samples = spark_samples()
    items = [(body, parse_event(body)) for body in samples]
    # A client retried the whole request, and one event twice more, in a later batch.
    await spool.append(items + items)
    sink = MemorySink()
    fwd = make_forwarder(spool, sink, metrics)
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)
    await spool.append([items[2], items[2]])
    await wait_until(lambda: spool.stats().events == 0)

    assert sorted(e.body for e in sink.events) == sorted(samples)
    assert metrics.events_dropped.labels("duplicate")._value.get() == len(samples) + 2


async def test_partial_results_are_split(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
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
    fwd = make_forwarder(spool, sink, metrics)
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)

    delivered = [e.body for e in sink.events]
    assert sorted(delivered) == sorted(body for body, _ in items if body != bad)
    dead = await spool.list_dead_letters()
    assert [(e.body, reason) for e, reason in dead] == [(bad, "HTTP 200: unknown dataset")]
    assert metrics.forward_batches.labels("partial")._value.get() >= 1


async def test_whole_batch_refusal_is_bisected_to_the_bad_event(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
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
    fwd = make_forwarder(spool, sink, metrics)
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)

    assert sorted(e.body for e in sink.events) == sorted(b for b, _ in items if b != poison)
    dead = await spool.list_dead_letters()
    assert [(e.body, r) for e, r in dead] == [(poison, "HTTP 400: [run.runId must be a UUID]")]
    assert metrics.events_dead_lettered.labels("http_400")._value.get() == 1
    assert sink.calls <= 2 * 5 + 1  # about 2 calls per halving of 20 events


async def test_retriable_failures_keep_events_and_trip_the_breaker(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
) -> None:
    items = fresh_copies(3)
    await spool.append(items)
    sink = MemorySink()
    sink.fail_with = RetriableSinkError("connection refused")
    fwd = make_forwarder(
        spool, sink, metrics,
        forwarder=ForwarderConfig(max_batch_events=1, linger_ms=0),
        breaker=BreakerConfig(failure_threshold=3, recovery_timeout_s=0.05),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: fwd.breaker.opened_count >= 2)
    assert metrics.circuit_state._value.get() in (BreakerState.OPEN, BreakerState.HALF_OPEN)
    # While open only probes go out: one call per re-opening after the first three.
    assert sink.calls <= 3 + fwd.breaker.opened_count
    assert spool.stats().events == len(items)

    sink.fail_with = None
    await wait_until(lambda: spool.stats().events == 0)
    assert fwd.breaker.state is BreakerState.CLOSED
    assert sorted(e.body for e in sink.events) == sorted(b for b, _ in items)
    assert (await spool.list_dead_letters()) == []


async def test_retry_attempts_limit_dead_letters_when_set(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
) -> None:
    body, key = fresh_copies(1)[0]
    await spool.append([(body, key)])
    sink = MemorySink()
    sink.fail_with = RetriableSinkError("HTTP 503: maintenance", status=503)
    fwd = make_forwarder(
        spool, sink, metrics,
        openmetadata=OpenMetadataConfig(retry_attempts=2, retry_delay_ms=1, retry_max_delay_ms=5),
        breaker=BreakerConfig(failure_threshold=50),
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()

    async def dead() -> bool:
        return bool(await spool.list_dead_letters())

    await wait_until_async(dead)
    [(event, reason)] = await spool.list_dead_letters()
    assert event.body == body
    assert reason == "gave up after 3 attempts: HTTP 503: maintenance"
    assert sink.calls == 3
    assert metrics.events_dead_lettered.labels("retries_exhausted")._value.get() == 1


async def test_shutdown_returns_leases_and_a_new_forwarder_finishes(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
) -> None:
    items = fresh_copies(20)
    await spool.append(items)
    delivered: list[SpooledEvent] = []

    class GatedSink(MemorySink):
        async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
            if len(self.batches) >= 2:
                await wait_until(lambda: False, within_s=60)  # hangs until cancelled
            results = await super().send(events)
            delivered.extend(events)
            return results

    first = make_forwarder(spool, GatedSink(), metrics, forwarder=ForwarderConfig(
        max_batch_events=10, linger_ms=0))  # fmt: skip
    await first.start()
    await wait_until(lambda: len(delivered) >= 20)
    await first.aclose(wait_s=0.05)

    second_sink = MemorySink()
    second = make_forwarder(spool, second_sink, metrics)
    running.append(second)
    await second.start()
    await wait_until(lambda: spool.stats().events == 0)
    assert sorted(e.body for e in delivered + second_sink.events) == sorted(b for b, _ in items)


async def test_an_unexpected_sink_error_loses_nothing(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
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
    fwd = make_forwarder(spool, sink, metrics)
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)
    assert sorted(e.body for e in sink.events) == sorted(b for b, _ in items)
    assert "a bug in a sink" in fwd.last_error


async def test_a_later_event_waits_for_its_runs_retried_event(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
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
        spool, sink, metrics,
        forwarder=ForwarderConfig(max_batch_events=1, linger_ms=0),
        # The retry comes well after the later events were leased.
        openmetadata=OpenMetadataConfig(retry_delay_ms=300, retry_max_delay_ms=300),
        rand=lambda: 1.0,  # the full backoff, no jitter
    )  # fmt: skip
    running.append(fwd)
    await fwd.start()
    await wait_until(lambda: spool.stats().events == 0)

    order = [e.body for e in sink.events]
    assert sorted(order) == sorted(samples)
    # The application run's COMPLETE went only after its START was finally delivered.
    assert order.index(first_start) < order.index(samples[-1])
    assert parse_event(samples[-1]).run_id == parse_event(first_start).run_id


async def test_the_retry_budget_keeps_retries_near_a_fifth_of_calls(
    spool: Spool, metrics: Metrics, running: list[Forwarder]
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
        spool, sink, metrics,
        forwarder=ForwarderConfig(max_batch_events=5, linger_ms=0),
        openmetadata=OpenMetadataConfig(retry_delay_ms=20, retry_max_delay_ms=2000),
        breaker=BreakerConfig(failure_threshold=1000, failure_rate=1.0),
    )  # fmt: skip
    running.append(fwd)
    started = time.monotonic()
    await fwd.start()
    await wait_until(lambda: fwd.calls - fwd.retry_calls >= len(items) / 5)
    fwd.close()
    await fwd.join(5.0)
    elapsed = time.monotonic() - started
    first_attempts = fwd.calls - fwd.retry_calls
    # 20 % of first attempts, plus the budget's reserve (3) and time allowance (1/s).
    assert fwd.retry_calls <= 0.2 * first_attempts + 3 + 1.0 * elapsed + 1
    assert fwd.retry_calls >= 3  # retries did happen, within the budget
    assert metrics.retries._value.get() == fwd.retry_calls
    assert spool.stats().events > 0  # refused retries wait in the spool, none is dropped
    assert (await spool.list_dead_letters()) == []
