"""The batch planner: duplicates, per-run order, parking and blocking (pure bookkeeping)."""

from __future__ import annotations

from relay._events import EventKey, SpooledEvent
from relay._forward.batching import BatchPlanner, dedupe_key


def event(
    event_id: int,
    run: str | None = "run-a",
    kind: str = "START",
    time: str = "2026-11-20T02:00:00Z",
    body: bytes | None = None,
) -> SpooledEvent:
    raw = body if body is not None else f'{{"n":{event_id}}}'.encode()
    key = EventKey(
        kind="run" if run else "dataset", event_time=time, producer="p", event_type=kind,
        run_id=run, job_namespace="ns", job_name="job", body_hash=f"h{raw!r}",
    )  # fmt: skip
    return SpooledEvent(id=event_id, body=raw, key=key, received_at=0.0)


def test_dedupe_key_separates_what_differs() -> None:
    a = event(1).key
    assert dedupe_key(a) == dedupe_key(event(2, body=b'{"n":1}').key)
    assert dedupe_key(a) != dedupe_key(event(1, kind="COMPLETE").key)
    assert dedupe_key(a) != dedupe_key(event(1, run="run-b").key)
    assert dedupe_key(a) != dedupe_key(event(1, time="2026-11-20T02:00:01Z").key)
    assert dedupe_key(a) != dedupe_key(event(1, body=b'{"n":1,"x":2}').key)


def test_duplicates_within_and_across_batches() -> None:
    planner = BatchPlanner(max_events=10, max_bytes=1 << 20)
    first = planner.plan([event(1), event(2, body=b'{"n":1}')], now=0)
    assert [e.id for e in first.send] == [1]
    assert [e.id for e in first.duplicates] == [2]
    planner.dispatched(first.send)
    planner.finished(first.send)
    later = planner.plan([event(7, body=b'{"n":1}'), event(8, kind="COMPLETE")], now=0)
    assert [e.id for e in later.duplicates] == [7]
    assert [e.id for e in later.send] == [8]


def test_a_retried_event_is_not_its_own_duplicate() -> None:
    planner = BatchPlanner(max_events=10, max_bytes=1 << 20)
    plan = planner.plan([event(1)], now=0)
    planner.dispatched(plan.send)
    planner.finished(plan.send, retry_at={1: 5.0})
    again = planner.plan([event(1)], now=6.0)
    assert [e.id for e in again.send] == [1] and not again.duplicates
    assert planner.is_retry(again.send)


def test_the_recent_keys_cache_is_bounded() -> None:
    planner = BatchPlanner(max_events=10, max_bytes=1 << 20, recent_keys=2)
    for i in range(1, 4):
        plan = planner.plan([event(i, run=f"run-{i}")], now=0)
        planner.dispatched(plan.send)
        planner.finished(plan.send)
    # run-1's key was evicted: a late duplicate of it can no longer be recognised.
    late = planner.plan([event(9, run="run-1", body=b'{"n":1}')], now=0)
    assert [e.id for e in late.send] == [9]
    late3 = planner.plan([event(10, run="run-3", body=b'{"n":3}')], now=0)
    assert [e.id for e in late3.duplicates] == [10]


def test_a_run_in_flight_parks_its_later_events_until_the_call_ends() -> None:
    planner = BatchPlanner(max_events=10, max_bytes=1 << 20)
    first = planner.plan([event(1)], now=0)
    planner.dispatched(first.send)
    second = planner.plan([event(2, kind="COMPLETE"), event(3, run="run-b")], now=0)
    assert [e.id for e in second.send] == [3]
    assert [e.id for e in planner.parked] == [2]
    assert not planner.has_sendable_parked(0)
    planner.dispatched(second.send)
    planner.finished(first.send)
    assert planner.has_sendable_parked(0)
    third = planner.plan([], now=0)
    assert [e.id for e in third.send] == [2]


def test_a_retrying_run_holds_its_later_events_back_with_it() -> None:
    planner = BatchPlanner(max_events=10, max_bytes=1 << 20)
    first = planner.plan([event(1)], now=0)
    planner.dispatched(first.send)
    planner.finished(first.send, retry_at={1: 30.0})
    plan = planner.plan([event(2, kind="COMPLETE"), event(3, run="run-b")], now=10.0)
    assert [e.id for e in plan.send] == [3]
    assert [(e.id, when) for e, when, _ in plan.deferred] == [(2, 30.0)]
    # Once the retry time has come, both come back in id order and go together.
    later = planner.plan([event(1), event(2, kind="COMPLETE")], now=30.0)
    assert [e.id for e in later.send] == [1, 2]


def test_a_full_batch_parks_the_rest_without_reordering() -> None:
    planner = BatchPlanner(max_events=2, max_bytes=1 << 20)
    plan = planner.plan([event(1), event(2, kind="RUNNING"), event(3, kind="COMPLETE")], now=0)
    assert [e.id for e in plan.send] == [1, 2]
    assert [e.id for e in planner.parked] == [3]
    # The byte limit too: a later small event never overtakes an earlier big one.
    planner = BatchPlanner(max_events=10, max_bytes=100)
    big = event(1, body=b"x" * 60)
    plan = planner.plan(
        [event(0, run="run-z", body=b"y" * 50), big, event(2, run="run-c", body=b"z")], now=0
    )
    assert [e.id for e in plan.send] == [0]
    assert [e.id for e in planner.parked] == [1, 2]


def test_the_retry_budget_defers_failed_events_and_their_runs() -> None:
    planner = BatchPlanner(max_events=10, max_bytes=1 << 20)
    first = planner.plan([event(1), event(5, run="run-b")], now=0)
    planner.dispatched(first.send)
    planner.finished(first.send, retry_at={1: 1.0, 5: 1.0})
    asked: list[bool] = []

    def refuse() -> bool:
        asked.append(True)
        return False

    plan = planner.plan(
        [event(1), event(5, run="run-b"), event(6, run="run-b", kind="COMPLETE"),
         event(7, run="run-c")],
        now=2.0, allow_retry=refuse, defer_retry=lambda e: 9.0,
    )  # fmt: skip
    assert asked == [True]  # asked once per batch
    assert [e.id for e in plan.send] == [7]
    assert sorted((e.id, when) for e, when, _ in plan.deferred) == [(1, 9.0), (5, 9.0), (6, 9.0)]
    planner.forget_failures()
    assert not planner.is_retry([event(1)])


def test_events_parked_behind_a_failed_call_follow_it_to_the_spool() -> None:
    planner = BatchPlanner(max_events=1, max_bytes=1 << 20)
    first = planner.plan([event(1), event(2, kind="COMPLETE")], now=0)
    assert [e.id for e in first.send] == [1]
    assert [e.id for e in planner.parked] == [2]
    planner.dispatched(first.send)
    planner.finished(first.send, retry_at={1: 5.0})
    # Kept in memory, event 2 would be sent once the block ends, while event 1 may still be in
    # the spool (no lease while the parked events fill the batch): it is deferred instead.
    assert planner.parked == []
    assert planner.has_sendable_parked(0)
    plan = planner.plan([], now=0)
    assert plan.send == []
    assert [(e.id, when) for e, when, _ in plan.deferred] == [(2, 5.0)]
    assert not planner.has_sendable_parked(6.0)


def test_a_blocked_event_is_deferred_even_when_the_batch_is_full() -> None:
    planner = BatchPlanner(max_events=1, max_bytes=1 << 20)
    first = planner.plan([event(1)], now=0)
    planner.dispatched(first.send)
    planner.finished(first.send, retry_at={1: 5.0})
    plan = planner.plan(
        [event(3, run="run-b"), event(4, run="run-c"), event(5, kind="COMPLETE")], now=1.0
    )
    assert [e.id for e in plan.send] == [3]
    assert [e.id for e in planner.parked] == [4]  # the batch is full
    assert [(e.id, when) for e, when, _ in plan.deferred] == [(5, 5.0)]
