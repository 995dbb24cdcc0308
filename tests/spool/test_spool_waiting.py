"""What the forwarder needs of the spool to keep per-run order: hold-backs that are not
attempts, and the runs whose events wait for a retry (read once at start, after a restart)."""

from __future__ import annotations

from spool_support import Opener, body, key

from relay.testing.fakes import FakeClock


async def test_a_hold_back_moves_the_retry_time_but_counts_no_attempt(
    open_spool: Opener, clock: FakeClock
) -> None:
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(2)])
    first, second = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    await spool.schedule_retry([first.id], clock.time() + 5, "HTTP 503")
    await spool.schedule_retry([second.id], clock.time() + 5, "held back", count_attempt=False)
    assert await spool.lease(max_events=10, max_bytes=10**6, lease_s=30) == []  # both wait
    clock.advance(5)
    due = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    assert [(e.id, e.attempts) for e in due] == [(ids[0], 1), (ids[1], 0)]


async def test_waiting_runs_names_each_run_with_its_latest_retry_time(
    open_spool: Opener, clock: FakeClock
) -> None:
    spool = await open_spool()
    assert await spool.waiting_runs() == {}
    items = [
        (body(0), key(0, run_id="run-a")),
        (body(1), key(1, run_id="run-a")),
        (body(2), key(2, run_id="run-b")),
        (body(3), key(3, run_id="run-c")),
    ]
    await spool.append(items)
    a0, a1, b, c = await spool.lease(max_events=10, max_bytes=10**6, lease_s=30)
    await spool.schedule_retry([a0.id], clock.time() + 10, "HTTP 503")
    await spool.schedule_retry([a1.id], clock.time() + 20, "HTTP 503")
    await spool.schedule_retry([b.id], clock.time() - 1, "due already")  # due: nothing waits
    await spool.ack([c.id])
    assert await spool.waiting_runs() == {"run-a": clock.time() + 20}

    await spool.aclose()
    reopened = await open_spool()  # what a restarted forwarder reads
    assert await reopened.waiting_runs() == {"run-a": clock.time() + 20}
    clock.advance(20)
    assert await reopened.waiting_runs() == {}


async def test_lease_hands_out_the_oldest_due_events_first_even_between_leased_ones(
    open_spool: Opener, clock: FakeClock
) -> None:
    # The forwarder's per-run order relies on it: when a later event of a run is leased, every
    # earlier due event (say its START, back from a retry) is leased with it or before it.
    spool = await open_spool()
    ids = await spool.append([(body(i), key(i)) for i in range(8)])
    await spool.lease(max_events=5, max_bytes=10**6, lease_s=30)  # ids[0..4] in flight
    await spool.schedule_retry([ids[1]], clock.time() + 5, "HTTP 503")
    await spool.release([ids[3]])
    first = await spool.lease(max_events=2, max_bytes=10**6, lease_s=30)
    assert [e.id for e in first] == [ids[3], ids[5]]
    clock.advance(5)
    due = await spool.lease(max_events=2, max_bytes=10**6, lease_s=30)
    assert [e.id for e in due] == [ids[1], ids[6]]
