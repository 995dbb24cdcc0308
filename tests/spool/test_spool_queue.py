"""The spool as a queue: append, lease, ack, retry, dead letters, persistence, stats."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from spool_support import Opener, body, counter, key

from relay._exceptions import SpoolError, SpoolFailure
from relay._observe.metrics import Metrics
from relay._spool import worker
from relay.testing.fakes import FakeClock


async def test_append_returns_increasing_ids_and_lease_hands_out_exact_bytes(
    open_spool: Opener, clock: FakeClock
) -> None:
    spool = await open_spool()
    first = await spool.append([(body(1), key(1)), (body(2), key(2))])
    second = await spool.append([(body(3), key(3))])
    assert first[0] < first[1] < second[0]
    events = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [e.id for e in events] == [*first, *second]
    assert [e.body for e in events] == [body(1), body(2), body(3)]
    assert events[0].key == key(1)
    assert events[0].attempts == 0
    assert events[0].received_at == clock.time()  # the injected clock, to the microsecond


async def test_concurrent_appends_keep_each_requests_order_and_are_all_stored(
    open_spool: Opener,
) -> None:
    spool = await open_spool()

    async def client(c: int) -> list[int]:
        ids = []
        for i in range(10):
            batch = [(body(c * 1000 + i * 10 + j), key(j)) for j in range(3)]
            got = await spool.append(batch)
            assert got == sorted(got)
            ids.extend(got)
        return ids

    results = await asyncio.gather(*(client(c) for c in range(40)))
    all_ids = [i for ids in results for i in ids]
    assert len(set(all_ids)) == 40 * 10 * 3
    for ids in results:
        assert ids == sorted(ids)  # a client's later request gets later ids
    assert spool.stats().events == 1200
    events = await spool.lease(max_events=5000, max_bytes=10**9, lease_s=30)
    assert [e.id for e in events] == sorted(all_ids)
    by_id = {e.id: e.body for e in events}
    for c, ids in enumerate(results):
        expected = [body(c * 1000 + i * 10 + j) for i in range(10) for j in range(3)]
        assert [by_id[i] for i in ids] == expected


async def test_group_commit_shares_one_commit_among_concurrent_appends(open_spool: Opener) -> None:
    commits = 0
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    gate_open = False

    def before_commit() -> None:
        nonlocal commits, gate_open
        commits += 1
        if not gate_open:
            # Hold the first commit until every other append is queued behind it.
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=10)
            gate_open = True

    spool = await open_spool(before_commit=before_commit)
    first = asyncio.create_task(spool.append([(body(0), key(0))]))
    while commits == 0:
        await asyncio.sleep(0.001)
    rest = [asyncio.create_task(spool.append([(body(i), key(i))])) for i in range(1, 51)]
    await asyncio.sleep(0.05)
    assert not any(t.done() for t in rest)  # nobody is answered before their commit
    release.set()
    await asyncio.gather(first, *rest)
    assert commits == 2  # 51 appends, two fsync'd commits
    assert spool.stats().commits == 2
    assert spool.stats().events == 51


async def test_lease_is_exclusive_until_ack_and_respects_limits(open_spool: Opener) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i, size=1000), key(i)) for i in range(10)])
    a = await spool.lease(max_events=3, max_bytes=10**6, lease_s=30)
    b = await spool.lease(max_events=100, max_bytes=2500, lease_s=30)
    assert [e.id for e in a] == ids[:3]
    assert [e.id for e in b] == ids[3:5]  # 2 x 1000 bytes fit in 2500, a third does not
    c = await spool.lease(max_events=100, max_bytes=10, lease_s=30)
    assert [e.id for e in c] == ids[5:6]  # one event too big for max_bytes still goes alone
    assert spool.stats().leased == 6
    await spool.ack([e.id for e in a])
    rest = await spool.lease(max_events=100, max_bytes=10**6, lease_s=30)
    assert [e.id for e in rest] == ids[6:]
    assert await spool.lease(max_events=100, max_bytes=10**6, lease_s=30) == []
    assert spool.stats().events == 7
    assert spool.stats().bytes == 7000


async def test_lease_expires_and_events_come_back(open_spool: Opener, clock: FakeClock) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(3)])
    leased = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [e.id for e in leased] == ids
    clock.advance(29)
    assert await spool.lease(max_events=10, max_bytes=10**6, lease_s=30) == []
    clock.advance(2)  # the forwarder that held them is gone
    again = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [e.id for e in again] == ids
    assert [e.attempts for e in again] == [0, 0, 0]


async def test_release_gives_events_back_at_once(open_spool: Opener) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(4)])
    leased = await spool.lease(max_events=10, max_bytes=10**6, lease_s=300)
    await spool.release([e.id for e in leased[:2]])
    again = await spool.lease(max_events=10, max_bytes=10**6, lease_s=300)
    assert [e.id for e in again] == ids[:2]


async def test_lease_finds_every_free_event_between_and_inside_leased_stretches(
    open_spool: Opener, clock: FakeClock
) -> None:
    """Lease jumps over runs of leased ids; whatever is freed inside or between them (release,
    a retry that came due, an acked neighbour, a lease that ran out) is still found, in order."""
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(40)])
    first = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)  # ids[0:10]
    clock.advance(5)
    second = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)  # ids[10:20]
    third = await spool.lease(max_events=10, max_bytes=10**6, lease_s=300)  # ids[20:30]
    assert [e.id for e in first + second + third] == ids[:30]
    await spool.ack([ids[4], ids[5]])  # holes in a run: nothing to find there
    await spool.release([ids[3], ids[12]])
    await spool.schedule_retry([ids[25]], clock.time() + 10, "503")
    got = await spool.lease(max_events=4, max_bytes=10**6, lease_s=30)
    assert [e.id for e in got] == [ids[3], ids[12], ids[30], ids[31]]
    clock.advance(10)  # the retry is due; nothing else changed
    got = await spool.lease(max_events=3, max_bytes=10**6, lease_s=300)
    assert [e.id for e in got] == [ids[25], ids[32], ids[33]]
    clock.advance(16)  # `first`'s lease ran out (30 s), `second`'s (taken 5 s later) not yet
    got = await spool.lease(max_events=100, max_bytes=10**6, lease_s=300)
    expected = [i for i in ids[:10] if i not in (ids[3], ids[4], ids[5])] + ids[34:]
    assert [e.id for e in got] == expected
    clock.advance(5)  # now `second` ran out, and so did the 30 s leases taken with it
    got = await spool.lease(max_events=100, max_bytes=10**6, lease_s=300)
    assert [e.id for e in got] == [ids[3], *ids[10:20], ids[30], ids[31]]


async def test_retry_at_defers_counts_attempts_and_keeps_id_order(
    open_spool: Opener, clock: FakeClock
) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(4)])
    leased = await spool.lease(max_events=2, max_bytes=10**6, lease_s=30)
    await spool.schedule_retry([e.id for e in leased], clock.time() + 10, "503 from OpenMetadata")
    later = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [e.id for e in later] == ids[2:]  # deferred ones are not due yet
    await spool.release([e.id for e in later])
    clock.advance(10)
    due = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [e.id for e in due] == ids  # oldest first once due again
    assert [e.attempts for e in due] == [1, 1, 0, 0]


async def test_dead_letter_moves_events_out_of_the_queue(
    open_spool: Opener, metrics: Metrics
) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(3)])
    leased = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    await spool.move_to_dead_letters([leased[1].id], "400: unknown column FQN")
    stats = spool.stats()
    assert (stats.events, stats.dead_letters, stats.leased) == (2, 1, 2)
    assert stats.bytes == len(body(0)) + len(body(2))
    assert counter(metrics, "lineage_relay_dead_letter_events") == 1
    dead = await spool.list_dead_letters()
    assert [(e.id, e.body, e.key, reason) for e, reason in dead] == [
        (ids[1], body(1), key(1), "400: unknown column FQN")
    ]
    await spool.ack([ids[0], ids[2]])
    assert await spool.lease(max_events=10, max_bytes=10**6, lease_s=30) == []


async def test_everything_survives_close_and_reopen_and_leases_are_void(
    open_spool: Opener, clock: FakeClock
) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(6)])
    leased = await spool.lease(max_events=4, max_bytes=10**6, lease_s=3600)
    await spool.ack([leased[0].id])
    await spool.schedule_retry([leased[1].id], clock.time() + 60, "timeout")
    await spool.move_to_dead_letters([leased[2].id], "rejected")
    await spool.aclose()
    await spool.aclose()  # idempotent

    reopened = await open_spool()
    stats = reopened.stats()
    assert (stats.events, stats.dead_letters, stats.leased) == (4, 1, 0)
    assert stats.bytes == sum(len(body(i)) for i in (1, 3, 4, 5))
    events = await reopened.lease(max_events=10, max_bytes=10**6, lease_s=3600)
    # ids[3] was leased before the restart: available again; ids[1] still waits for its retry.
    assert [e.id for e in events] == [ids[3], ids[4], ids[5]]
    clock.advance(60)
    retried = await reopened.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [(e.id, e.attempts) for e in retried] == [(ids[1], 1)]
    more = await reopened.append([(body(9), key(9))])
    assert more[0] > ids[-1]


async def test_ids_never_repeat_even_after_everything_was_acked(open_spool: Opener) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(3)])
    await spool.ack(ids)
    await spool.aclose()
    reopened = await open_spool()
    assert (await reopened.append([(body(5), key(5))]))[0] > ids[-1]


async def test_stats_and_gauges_follow_the_queue(
    open_spool: Opener, metrics: Metrics, clock: FakeClock
) -> None:
    spool = await open_spool()
    assert spool.stats().events == 0
    assert spool.stats().oldest_received_at is None
    first_time = clock.time()
    await spool.append([(body(1), key(1))])
    clock.advance(5)
    ids = await spool.append([(body(2), key(2))])
    stats = spool.stats()
    assert stats.events == 2
    assert stats.oldest_received_at == first_time
    assert counter(metrics, "lineage_relay_spool_events") == 2
    assert counter(metrics, "lineage_relay_spool_bytes") == len(body(1)) + len(body(2))
    assert counter(metrics, "lineage_relay_spool_oldest_event_age_seconds") == 5
    leased = await spool.lease(max_events=1, max_bytes=10**6, lease_s=30)
    await spool.ack([leased[0].id])
    assert spool.stats().oldest_received_at == first_time + 5
    await spool.ack(ids)
    assert counter(metrics, "lineage_relay_spool_events") == 0
    assert counter(metrics, "lineage_relay_spool_oldest_event_age_seconds") == 0


async def test_wait_for_events_wakes_on_append_and_times_out(open_spool: Opener) -> None:
    spool = await open_spool()
    assert await spool.lease(max_events=1, max_bytes=100, lease_s=1) == []
    waiter = asyncio.create_task(spool.wait_for_events(30))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await spool.append([(body(1), key(1))])
    await asyncio.wait_for(waiter, 5)
    await spool.lease(max_events=1, max_bytes=10**6, lease_s=30)
    await spool.wait_for_events(0.01)  # nothing new: returns after the timeout


async def test_an_append_between_lease_and_wait_is_not_missed(open_spool: Opener) -> None:
    spool = await open_spool()
    assert await spool.lease(max_events=1, max_bytes=100, lease_s=1) == []
    await spool.append([(body(1), key(1))])
    await asyncio.wait_for(spool.wait_for_events(60), 5)  # returns at once


async def test_closed_spool_refuses_and_a_second_opener_is_refused(
    open_spool: Opener, tmp_path: Path
) -> None:
    spool = await open_spool()
    with pytest.raises(SpoolError, match="in use by another lineage-relay"):
        await open_spool()
    await spool.aclose()
    with pytest.raises(SpoolError, match="closed"):
        await spool.append([(body(1), key(1))])


async def test_aclose_finishes_in_flight_appends(open_spool: Opener) -> None:
    spool = await open_spool()
    tasks = [asyncio.create_task(spool.append([(body(i), key(i))])) for i in range(30)]
    await asyncio.sleep(0)
    await spool.aclose()
    assert all(t.done() and not t.cancelled() for t in tasks)
    ids = [t.result()[0] for t in tasks]
    reopened = await open_spool()
    events = await reopened.lease(max_events=100, max_bytes=10**7, lease_s=30)
    assert [e.id for e in events] == ids


async def test_dead_letters_can_be_replayed_into_the_queue(open_spool: Opener) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(4)])
    leased = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    await spool.move_to_dead_letters([ids[1], ids[2]], "404: unknown entity")
    await spool.ack([ids[0], ids[3]])
    assert await spool.replay_dead_letters([ids[2]]) == 1
    assert spool.stats().dead_letters == 1
    again = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [(e.id, e.body, e.key) for e in again] == [(ids[2], body(2), key(2))]
    assert await spool.replay_dead_letters() == 1
    assert spool.stats().dead_letters == 0
    assert spool.stats().events == 2
    assert len(leased) == 4


async def test_open_cancelled_during_recovery_frees_the_directory(open_spool: Opener) -> None:
    first = await open_spool()
    await first.append([(body(1), key(1))])
    await first.aclose()
    task = asyncio.create_task(open_spool())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancelled open closes again by itself once recovery is done: a later open works.
    spool = None
    for _ in range(500):
        try:
            spool = await open_spool()
            break
        except SpoolError:
            await asyncio.sleep(0.01)
    assert spool is not None
    assert spool.stats().events == 1


async def test_the_wal_is_copied_into_the_database_in_the_background(
    open_spool: Opener, tmp_path: Path
) -> None:
    spool = await open_spool()
    db = tmp_path / "spool" / "spool.db"
    before = db.stat().st_size
    for i in range(12):  # 3 MiB: past the background step, far below SQLite's own threshold
        await spool.append([(body(i * 100 + j, size=2600), key(j)) for j in range(100)])
    for _ in range(500):
        if db.stat().st_size > before + 2 * 1024 * 1024:
            break
        await asyncio.sleep(0.01)
    assert db.stat().st_size > before + 2 * 1024 * 1024
    events = await spool.lease(max_events=2000, max_bytes=10**9, lease_s=30)
    assert len(events) == 1200


async def test_an_unstorable_event_fails_alone(open_spool: Opener) -> None:
    spool = await open_spool()
    bad_key = key(1)
    object.__setattr__(bad_key, "run_id", object())  # not JSON: ingest would never build this
    results = await asyncio.gather(
        spool.append([(body(0), key(0))]),
        spool.append([(body(1), bad_key)]),
        spool.append([(body(2), key(2))]),
        return_exceptions=True,
    )
    assert isinstance(results[1], SpoolError)
    assert isinstance(results[0], list) and isinstance(results[2], list)
    assert spool.stats().events == 2
    assert not spool.stats().failed


async def test_concurrent_leases_never_share_an_event(open_spool: Opener) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(300)])

    async def worker() -> list[int]:
        got: list[int] = []
        while batch := await spool.lease(max_events=7, max_bytes=10**6, lease_s=60):
            got.extend(e.id for e in batch)
            await spool.ack([e.id for e in batch[::2]])  # ack some, keep the rest leased
        return got

    results = await asyncio.gather(*(worker() for _ in range(12)))
    handed_out = [i for got in results for i in got]
    assert sorted(handed_out) == ids  # every event exactly once
    assert spool.stats().leased == spool.stats().events


async def test_a_dying_io_thread_answers_its_callers(
    open_spool: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = await open_spool()
    await spool.append([(body(1), key(1))])

    def broken(self: object, batch: object) -> None:
        raise RuntimeError("a bug in the spool thread")

    monkeypatch.setattr(worker.Worker, "_run_batch", broken)
    with pytest.raises(SpoolFailure):
        await asyncio.wait_for(spool.append([(body(2), key(2))]), 10)
    for _ in range(200):
        if not spool._worker.thread.is_alive():
            break
        await asyncio.sleep(0.01)
    with pytest.raises(SpoolFailure):
        await asyncio.wait_for(spool.append([(body(3), key(3))]), 10)
