"""The ledger: content keys of the events queued from files, so none is queued twice.

Spill files, `replay --file` and `replay --s3` put events into the spool that may have been
queued before: the same file replayed twice, a spill file taken up again after a crash
between the spool's append and the file's deletion. The ledger remembers the content key
(`lines.content_key`: 16 bytes of the event's SHA-256) of every event they queued, in
`<spool.dir>/ledger.db` (SQLite, synchronous=FULL), for `RETENTION_S` (30 days).

Order of a caller: filter with `unseen`, append to the spool (durable), then `add` the keys.
A crash between the append and `add` queues those events once more next time: a duplicate
the forwarder's duplicate detection and OpenMetadata's upserts absorb, never a loss.
HTTP ingest does not use it: a client's retry of the same event is the forwarder's to dedupe.

Blocking (SQLite): call it from a worker thread (`asyncio.to_thread`), one caller at a time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

__all__ = ["RETENTION_S", "Ledger"]

RETENTION_S: Final = 30 * 24 * 3600.0
_CHUNK: Final = 500

_SCHEMA = "CREATE TABLE IF NOT EXISTS queued (key BLOB PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID"


class Ledger:
    """See the module docstring. `Ledger.open(spool_dir)`; `close()` when done."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, spool_dir: Path, *, now: float | None = None) -> Ledger:
        spool_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            spool_dir / "ledger.db", isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
            cutoff = (time.time() if now is None else now) - RETENTION_S
            conn.execute("DELETE FROM queued WHERE at < ?", (cutoff,))
        except sqlite3.Error:
            conn.close()
            raise
        return cls(conn)

    def unseen(self, keys: Sequence[bytes]) -> list[bool]:
        """For each key, True when it was never queued (and not earlier in `keys` either)."""
        with self._lock:
            known: set[bytes] = set()
            distinct = list(dict.fromkeys(keys))
            for start in range(0, len(distinct), _CHUNK):
                chunk = distinct[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                known.update(
                    row[0]
                    for row in self._conn.execute(
                        f"SELECT key FROM queued WHERE key IN ({marks})",  # noqa: S608 -- only ?s
                        chunk,
                    )
                )
        out: list[bool] = []
        for key in keys:
            out.append(key not in known)
            known.add(key)
        return out

    def add(self, keys: Iterable[bytes], *, now: float | None = None) -> None:
        """Remember `keys` as queued (durable when this returns)."""
        at = time.time() if now is None else now
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO queued (key, at) VALUES (?, ?)",
                    ((key, at) for key in keys),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
