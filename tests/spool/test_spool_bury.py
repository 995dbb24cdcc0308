"""`Spool.bury`: an event already delivered goes straight into the dead letters."""

from __future__ import annotations

from spool_support import Opener, body, key

from relay.testing.fakes import FakeClock


async def test_a_delivered_event_is_buried_once_and_replays_with_its_id(
    open_spool: Opener, clock: FakeClock
) -> None:
    spool = await open_spool()
    (event_id,) = await spool.append([(body(1), key(1))])
    (event,) = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    await spool.ack([event_id])  # delivered: gone from the queue
    clock.advance(60)
    await spool.bury(event, "unresolved: hive://m/db.t not found")
    await spool.bury(event, "unresolved: hive://m/db.t not found")  # twice: still one
    assert spool.stats().dead_letters == 1 and spool.stats().events == 0
    ((dead, reason),) = await spool.list_dead_letters()
    assert (dead.id, dead.body, dead.key, reason) == (
        event_id, body(1), key(1), "unresolved: hive://m/db.t not found",
    )  # fmt: skip
    # Never leased in between, and a replay queues it again under its own id.
    assert await spool.lease(max_events=10, max_bytes=10**6, lease_s=30) == []
    assert await spool.replay_dead_letters() == 1
    (again,) = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert (again.id, again.body, again.key) == (event_id, body(1), key(1))


async def test_buried_events_survive_a_restart(open_spool: Opener) -> None:
    spool = await open_spool()
    (event_id,) = await spool.append([(body(2), key(2))])
    (event,) = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    await spool.ack([event_id])
    await spool.bury(event, "unresolved")
    await spool.aclose()
    reopened = await open_spool()
    assert reopened.stats().dead_letters == 1
    ((dead, reason),) = await reopened.list_dead_letters()
    assert (dead.id, dead.body, reason) == (event_id, body(2), "unresolved")
