"""Which commits fsync: every one that holds an append (its 201 waits for it), none that holds
only the forwarder's bookkeeping (leases, acks, retries), which the next fsync carries."""

from __future__ import annotations

import asyncio
import threading

from spool_support import Opener, body, key

from relay._spool import Spool


def synced(spool: Spool) -> tuple[int, int]:
    stats = spool.stats()
    return stats.commits, stats.synced_commits


async def test_appends_fsync_and_the_forwarders_bookkeeping_does_not(open_spool: Opener) -> None:
    spool = await open_spool()
    assert synced(spool) == (0, 0)
    (first,) = await spool.append([(body(1), key(1))])
    assert synced(spool) == (1, 1)
    leased = await spool.lease(max_events=10, max_bytes=1 << 20, lease_s=30)
    await spool.schedule_retry([e.id for e in leased], 0.0, "OpenMetadata down")
    leased = await spool.lease(max_events=10, max_bytes=1 << 20, lease_s=30)
    await spool.ack([first])
    assert synced(spool) == (5, 1)  # four commits, none fsync'd on its own
    assert spool.stats().events == 0


async def test_a_batch_with_appends_and_acks_fsyncs_once_for_both(open_spool: Opener) -> None:
    entered, release = threading.Event(), threading.Event()
    hold = [True]

    def before_commit() -> None:  # holds the spool's thread in the first commit
        if hold[0]:
            hold[0] = False
            entered.set()
            release.wait(10)

    spool = await open_spool(before_commit=before_commit)
    first = asyncio.ensure_future(spool.append([(body(1), key(1))]))
    assert await asyncio.to_thread(entered.wait, 10)
    # Queued while the thread is busy: both go into its next transaction.
    second = asyncio.ensure_future(spool.append([(body(2), key(2))]))
    ack = asyncio.ensure_future(spool.ack([1]))
    await asyncio.sleep(0)  # let both requests reach the queue
    release.set()
    assert await first == [1]
    assert await second == [2]
    await ack
    assert synced(spool) == (2, 2)
    assert spool.stats().events == 1


async def test_events_acknowledged_after_unsynced_commits_are_all_there_after_reopen(
    open_spool: Opener,
) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(5)])
    await spool.ack(ids[:2])  # not fsync'd on its own ...
    (late,) = await spool.append([(body(9), key(9))])  # ... but carried by this fsync
    await spool.aclose()
    reopened = await open_spool()
    events = await reopened.lease(max_events=100, max_bytes=1 << 20, lease_s=30)
    assert sorted(e.id for e in events) == [*ids[2:], late]
