"""What the `rest` sink must remember across restarts, in `<spool.dir>/rest-sink.db`.

- `runs`: each application run's status as folded so far and as last written, so a
  restart neither forgets a FAIL nor rewrites an unchanged status. Pruned after
  `RUN_RETENTION_S` without an update and beyond `MAX_RUNS`.
- `parked`: edges whose dataset was not (yet) in the catalog, with the event they came
  from (delivered and acknowledged in the spool already: a parked edge never holds back
  its run), when to try again, and when it was parked (dead-lettered with reason
  `unresolved` after `unresolved_retention_s`).

SQLite in WAL mode with `synchronous=FULL`, on a worker thread (never on the event loop);
one connection, serialised by a lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..._events import EventKey, SpooledEvent
from ..._translate import RunState, TaskState

__all__ = ["MAX_RUNS", "RUN_RETENTION_S", "ParkedEdge", "StateStore"]

log = logging.getLogger(__name__)

RUN_RETENTION_S = 30 * 24 * 3600.0
MAX_RUNS = 100_000
_PRUNE_EVERY = 256  # saves between two prunings (each scans the runs' index)
_VERSION = 1
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    written TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_updated ON runs (updated_at);
CREATE TABLE IF NOT EXISTS parked (
    id INTEGER PRIMARY KEY,
    dedupe TEXT NOT NULL UNIQUE,
    event_id INTEGER NOT NULL,
    received_at REAL NOT NULL,
    key TEXT NOT NULL,
    body BLOB NOT NULL,
    input_index INTEGER NOT NULL,
    output_index INTEGER NOT NULL,
    datasets TEXT NOT NULL,
    parked_at REAL NOT NULL,
    next_try_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS parked_due ON parked (next_try_at);
"""


@dataclass(frozen=True, slots=True)
class ParkedEdge:
    id: int
    event: SpooledEvent
    input_index: int
    output_index: int
    datasets: tuple[str, ...]  # the unresolved datasets, `namespace/name`
    parked_at: float
    attempts: int


def run_to_json(state: RunState) -> bytes:
    return orjson.dumps(dataclasses.asdict(state))


def run_from_json(raw: str | bytes) -> RunState:
    doc = orjson.loads(raw)
    tasks = {name: TaskState(**task) for name, task in doc.pop("tasks").items()}
    return RunState(**doc, tasks=tasks)


class StateStore:
    """The sink's durable memory; every method runs its SQL on a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._saves = 0

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            # Damaged: moved aside, never deleted, and started afresh. Parked edges in it are
            # lost for now (the events are in the moved file); run states are found again on
            # the server (executionId) or start over.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                part = self.path.with_name(self.path.name + suffix)
                if part.exists():
                    part.rename(aside.with_name(aside.name + suffix))
            log.error("%s is damaged (%s): moved to %s, starting with an empty one", self.path,
                      exc, aside)  # fmt: skip
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer lineage-relay (format {version}); "
                    "upgrade the relay or move the file away"
                )
            conn.executescript(_SCHEMA)
            conn.execute("PRAGMA quick_check").fetchall()
            conn.execute(f"PRAGMA user_version={_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(self._locked, conn.close)

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._lock:
            return fn()

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(self._locked, fn)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the rest sink's state store is not open")
        return self._conn

    # -- runs ---------------------------------------------------------------------------

    async def load_run(self, run_id: str) -> tuple[RunState, RunState | None] | None:
        def load() -> tuple[RunState, RunState | None] | None:
            row = (
                self._db()
                .execute("SELECT state, written FROM runs WHERE run_id = ?", (run_id,))
                .fetchone()
            )
            if row is None:
                return None
            return run_from_json(row[0]), (run_from_json(row[1]) if row[1] else None)

        return await self._run(load)

    async def save_runs(self, runs: Sequence[tuple[RunState, RunState | None]], now: float) -> None:
        """Save run states; every `_PRUNE_EVERY` saves, drop runs past retention or count."""
        if not runs:
            return
        rows = [
            (s.run_id, run_to_json(s), run_to_json(w) if w is not None else None, now)
            for s, w in runs
        ]
        self._saves += 1
        prune = (self._saves - 1) % _PRUNE_EVERY == 0  # the first save, then every N

        def save() -> None:
            db = self._db()
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)", rows)
            if prune:
                db.execute("DELETE FROM runs WHERE updated_at < ?", (now - RUN_RETENTION_S,))
                db.execute(
                    "DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs "
                    "ORDER BY updated_at DESC LIMIT -1 OFFSET ?)", (MAX_RUNS,),
                )  # fmt: skip
            db.execute("COMMIT")

        await self._run(save)

    # -- parked edges ---------------------------------------------------------------------

    async def park(
        self,
        event: SpooledEvent,
        pairs: Sequence[tuple[int, int, tuple[str, ...], str]],
        *,
        now: float,
        next_try_at: float,
    ) -> int:
        """Park edges (input index, output index, unresolved datasets, dedupe key) of `event`.

        One row per dedupe key (run, input, output): a later event of the run (RUNNING, then
        COMPLETE) or a redelivery replaces the row's event and keeps its age. Returns how
        many rows are new.
        """
        key = orjson.dumps(dataclasses.asdict(event.key)).decode()
        rows = [
            (dedupe, event.id, event.received_at, key, event.body, i, o,
             orjson.dumps(list(datasets)).decode(), now, next_try_at)
            for i, o, datasets, dedupe in pairs
        ]  # fmt: skip

        def park() -> int:
            db = self._db()
            db.execute("BEGIN")
            known = {
                row[0]
                for (dedupe, *_) in rows
                for row in db.execute("SELECT dedupe FROM parked WHERE dedupe = ?", (dedupe,))
            }
            db.executemany(
                "INSERT INTO parked (dedupe, event_id, received_at, key, body, input_index, "
                "output_index, datasets, parked_at, next_try_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe) DO UPDATE SET "
                "event_id = excluded.event_id, received_at = excluded.received_at, "
                "key = excluded.key, body = excluded.body, input_index = excluded.input_index, "
                "output_index = excluded.output_index, datasets = excluded.datasets", rows,
            )  # fmt: skip
            db.execute("COMMIT")
            return len({row[0] for row in rows} - known)

        return await self._run(park)

    async def due(self, now: float, limit: int) -> list[ParkedEdge]:
        def due() -> list[ParkedEdge]:
            rows = self._db().execute(
                "SELECT id, event_id, received_at, key, body, input_index, output_index, "
                "datasets, parked_at, attempts FROM parked WHERE next_try_at <= ? "
                "ORDER BY next_try_at, id LIMIT ?", (now, limit),
            ).fetchall()  # fmt: skip
            return [_parked(row) for row in rows]

        return await self._run(due)

    async def next_due(self) -> float | None:
        def first() -> float | None:
            row = self._db().execute("SELECT min(next_try_at) FROM parked").fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._run(first)

    async def reschedule(self, edge_id: int, next_try_at: float, datasets: tuple[str, ...]) -> None:
        def update() -> None:
            self._db().execute(
                "UPDATE parked SET next_try_at = ?, attempts = attempts + 1, datasets = ? "
                "WHERE id = ?", (next_try_at, orjson.dumps(list(datasets)).decode(), edge_id),
            )  # fmt: skip

        await self._run(update)

    async def remove(self, edge_ids: Sequence[int]) -> None:
        def remove() -> None:
            self._db().executemany("DELETE FROM parked WHERE id = ?", [(i,) for i in edge_ids])

        await self._run(remove)

    async def unresolved(self) -> tuple[int, int]:
        """(parked edges, distinct unresolved datasets)."""

        def count() -> tuple[int, int]:
            names: set[str] = set()
            edges = 0
            for (raw,) in self._db().execute("SELECT datasets FROM parked"):
                edges += 1
                names.update(orjson.loads(raw))
            return edges, len(names)

        return await self._run(count)


def _parked(row: tuple[Any, ...]) -> ParkedEdge:
    (edge_id, event_id, received_at, key, body, i, o, datasets, parked_at, attempts) = row
    event = SpooledEvent(
        id=event_id, body=bytes(body), key=EventKey(**orjson.loads(key)),
        received_at=received_at, attempts=attempts,
    )  # fmt: skip
    return ParkedEdge(
        id=edge_id, event=event, input_index=i, output_index=o,
        datasets=tuple(orjson.loads(datasets)), parked_at=parked_at, attempts=attempts,
    )  # fmt: skip
