"""The rest sink's state file: run states bounded, parked edges kept once per edge."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_support import SPARK, bodies_in, spooled

from relay._sinks.rest import _state
from relay._sinks.rest._state import StateStore
from relay._translate import RunState, TaskState


async def test_run_states_round_trip_and_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_state, "MAX_RUNS", 3)
    monkeypatch.setattr(_state, "_PRUNE_EVERY", 1)
    store = StateStore(tmp_path / "state.db")
    await store.open()
    try:
        state = RunState(run_id="r0", start_ms=5, failed=True, tasks={"t": TaskState("Failed", 5)})
        await store.save_runs([(state, None)], now=1000.0)
        assert await store.load_run("r0") == (state, None)
        for n in range(1, 5):  # newer runs push the oldest out
            fresh = RunState(run_id=f"r{n}", start_ms=n)
            await store.save_runs([(fresh, fresh)], now=1000.0 + n)
        assert await store.load_run("r0") is None and await store.load_run("r1") is None
        assert await store.load_run("r4") is not None
        old = _state.RUN_RETENTION_S
        await store.save_runs([(RunState(run_id="r5", start_ms=5), None)], now=1004.0 + old)
        assert [await store.load_run(f"r{n}") is None for n in (2, 3, 4, 5)] == [
            True,
            True,
            False,
            False,
        ]  # fmt: skip (r4 updated within the retention of the last save, r2/r3 not)
    finally:
        await store.aclose()


async def test_a_parked_edge_is_one_row_however_often_its_run_reports_it(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    await store.open()
    try:
        running, complete = spooled(bodies_in(SPARK)[2:4])
        key = "run|in|out"
        assert await store.park(running, [(0, 0, ("ns/t",), key)], now=10.0, next_try_at=11.0)
        assert not await store.park(complete, [(0, 0, ("ns/t",), key)], now=20.0, next_try_at=21.0)
        (edge,) = await store.due(now=100.0, limit=10)
        assert edge.event.body == complete.body  # the latest event of the run
        assert edge.parked_at == 10.0  # the age of the first
        assert await store.unresolved() == (1, 1)
        await store.reschedule(edge.id, 500.0, ("ns/t",))
        assert await store.due(now=100.0, limit=10) == []
        assert await store.next_due() == 500.0
        await store.remove([edge.id])
        assert await store.unresolved() == (0, 0)
    finally:
        await store.aclose()


async def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    store = StateStore(path)
    with pytest.raises(RuntimeError, match="newer lineage-relay"):
        await store.open()


async def test_a_damaged_file_is_moved_aside_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    store = StateStore(path)
    await store.open()
    try:
        assert await store.unresolved() == (0, 0)
        await store.save_runs([(RunState(run_id="r", start_ms=1), None)], now=1.0)
    finally:
        await store.aclose()
    (aside,) = tmp_path.glob("state.db.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
