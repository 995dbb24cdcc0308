"""Bounds and failures: spool.max_bytes policies, max_age_s expiry, disk errors."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from spool_support import Opener, body, counter, key

from relay._exceptions import SpoolError, SpoolFailure, SpoolFull
from relay._observe.metrics import Metrics
from relay._spool import schema
from relay.testing.fakes import FakeClock


async def test_reject_policy_refuses_fast_and_accepts_again_after_acks(open_spool: Opener) -> None:
    spool = await open_spool(max_bytes=3000)
    ids = await spool.append([(body(i, size=1000), key(i)) for i in range(3)])
    commits = spool.stats().commits
    with pytest.raises(SpoolFull, match=r"spool\.max_bytes") as info:
        await spool.append([(body(9, size=1000), key(9))])
    assert info.value.retry_after_s >= 1
    assert spool.stats().commits == commits  # refused before touching the disk
    await spool.ack(ids[:1])
    assert len(await spool.append([(body(10, size=1000), key(10))])) == 1
    assert spool.stats().bytes == 3000


async def test_reject_counts_appends_still_in_flight(open_spool: Opener) -> None:
    spool = await open_spool(max_bytes=2500)
    results = await asyncio.gather(
        *(spool.append([(body(i, size=1000), key(i))]) for i in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, list) for r in results) == 2
    assert sum(isinstance(r, SpoolFull) for r in results) == 3
    assert spool.stats().bytes == 2000


async def test_a_request_larger_than_the_spool_is_refused_under_any_policy(
    open_spool: Opener,
) -> None:
    spool = await open_spool(max_bytes=1500, when_full="drop_oldest")
    await spool.append([(body(1, size=1000), key(1))])
    with pytest.raises(SpoolFull, match="on their own"):
        await spool.append([(body(2, size=1000), key(2)), (body(3, size=1000), key(3))])
    assert spool.stats().events == 1


async def test_drop_oldest_makes_room_and_counts(open_spool: Opener, metrics: Metrics) -> None:
    spool = await open_spool(max_bytes=3000, when_full="drop_oldest")
    ids = await spool.append([(body(i, size=1000), key(i)) for i in range(3)])
    new = await spool.append([(body(7, size=1000), key(7)), (body(8, size=1000), key(8))])
    stats = spool.stats()
    assert (stats.events, stats.bytes) == (3, 3000)
    assert counter(metrics, "lineage_relay_events_dropped_total", {"reason": "spool_full"}) == 2
    events = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [e.id for e in events] == [ids[2], *new]


async def test_drop_oldest_spares_leased_events_while_it_can(
    open_spool: Opener, metrics: Metrics
) -> None:
    spool = await open_spool(max_bytes=3000, when_full="drop_oldest")
    ids = await spool.append([(body(i, size=1000), key(i)) for i in range(3)])
    leased = await spool.lease(max_events=1, max_bytes=10**6, lease_s=30)
    assert [e.id for e in leased] == ids[:1]
    await spool.append([(body(5, size=1000), key(5))])
    await spool.ack(ids[:1])  # the forwarder delivered it meanwhile
    events = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert events[0].id == ids[2]  # ids[1] was the oldest unleased one
    assert counter(metrics, "lineage_relay_events_dropped_total", {"reason": "spool_full"}) == 1


async def test_max_age_expires_old_events_and_counts(
    open_spool: Opener, metrics: Metrics, clock: FakeClock
) -> None:
    spool = await open_spool(max_age_s=60)
    old = await spool.append([(body(1), key(1)), (body(2), key(2))])
    clock.advance(50)
    young = await spool.append([(body(3), key(3))])
    clock.advance(20)
    assert await spool.expire() == 2
    assert counter(metrics, "lineage_relay_events_dropped_total", {"reason": "expired"}) == 2
    events = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [e.id for e in events] == young
    assert old[0] not in [e.id for e in events]
    assert spool.stats().oldest_received_at == clock.time() - 20


async def test_max_age_sweeps_by_itself(
    open_spool: Opener, metrics: Metrics, clock: FakeClock
) -> None:
    spool = await open_spool(max_age_s=10)
    await spool.append([(body(1), key(1))])
    clock.advance(11)
    for _ in range(300):  # the spool thread sweeps about once a second
        if spool.stats().events == 0:
            break
        await asyncio.sleep(0.01)
    assert spool.stats().events == 0
    assert counter(metrics, "lineage_relay_events_dropped_total", {"reason": "expired"}) == 1


async def test_failed_commit_fails_every_waiter_and_every_later_append(
    open_spool: Opener, tmp_path: Path
) -> None:
    fail = False
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def before_commit() -> None:
        if fail:
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=10)
            raise OSError(5, "Input/output error (injected fsync failure)")

    spool = await open_spool(before_commit=before_commit)
    acked = await spool.append([(body(1), key(1))])
    fail = True
    waiting = [asyncio.create_task(spool.append([(body(i), key(i))])) for i in range(2, 12)]
    await asyncio.sleep(0.02)
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, SpoolFailure) for r in results)
    assert spool.stats().failed
    assert spool.failed
    with pytest.raises(SpoolFailure, match="restart the relay"):
        await spool.append([(body(20), key(20))])  # immediately, without touching the disk
    with pytest.raises(SpoolFailure):
        await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    await spool.aclose()

    # After a restart only what was acknowledged is there.
    fail = False
    reopened = await open_spool()
    events = await reopened.lease(max_events=100, max_bytes=10**6, lease_s=30)
    assert [e.id for e in events] == acked


async def test_sqlite_disk_error_is_a_failure_too(open_spool: Opener) -> None:
    calls = 0

    def before_commit() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise sqlite3.OperationalError("disk I/O error")

    spool = await open_spool(before_commit=before_commit)
    await spool.append([(body(1), key(1))])
    with pytest.raises(SpoolFailure, match="disk I/O error"):
        await spool.append([(body(2), key(2))])
    assert spool.stats().failed


async def test_disk_full_refuses_appends_without_failing_the_spool(open_spool: Opener) -> None:
    calls = 0

    def before_commit() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = 13
            raise error

    spool = await open_spool(before_commit=before_commit)
    first = await spool.append([(body(1), key(1))])
    with pytest.raises(SpoolFull, match=r"disk .* is full"):
        await spool.append([(body(2), key(2))])
    assert not spool.stats().failed
    assert spool.stats().events == 1
    again = await spool.append([(body(3), key(3))])
    events = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [e.id for e in events] == [*first, *again]


async def test_unusable_directory_is_a_clear_error(open_spool: Opener, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a directory")
    with pytest.raises(SpoolFailure, match=r"spool\.dir .*a-file"):
        await open_spool(dir=blocker / "spool")


async def test_disk_full_on_an_ack_is_answered_not_retried_forever(open_spool: Opener) -> None:
    full = False

    def before_commit() -> None:
        if full:
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = 13
            raise error

    spool = await open_spool(before_commit=before_commit)
    ids = await spool.append([(body(1), key(1))])
    full = True
    with pytest.raises(SpoolFull):
        await asyncio.wait_for(spool.ack(ids), 10)
    full = False
    await spool.ack(ids)
    assert spool.stats().events == 0


async def test_an_sqlite_constraint_error_is_a_bug_not_a_disk_failure(open_spool: Opener) -> None:
    calls = 0

    def before_commit() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise sqlite3.IntegrityError("UNIQUE constraint failed: events.id")

    spool = await open_spool(before_commit=before_commit)
    await spool.append([(body(1), key(1))])
    with pytest.raises(SpoolError, match="internal spool error") as info:
        await spool.append([(body(2), key(2))])
    assert not isinstance(info.value, SpoolFailure)
    assert not spool.stats().failed
    assert len(await spool.append([(body(3), key(3))])) == 1
    assert spool.stats().events == 2


def test_an_ack_does_not_write_the_freed_pages_again(tmp_path: Path) -> None:
    """Deleting events writes the pages that changed, not a zeroed copy of every page the
    bodies occupied (secure_delete ON, the default of some SQLite builds, does that: the
    WAL then carries as many bytes for an ack as for the append)."""
    conn = schema.connect(tmp_path / "spool.db")
    try:
        conn.execute("CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        deleted = 0
        conn.execute("BEGIN")
        for n in range(20):
            conn.execute("INSERT INTO bodies VALUES (?, ?)", (n, bytes([n]) * 40_000))
            deleted += 40_000
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        assert (tmp_path / "spool.db-wal").stat().st_size == 0
        conn.execute("DELETE FROM bodies")
        wal = (tmp_path / "spool.db-wal").stat().st_size
    finally:
        conn.close()
    assert 0 < wal < deleted / 4
