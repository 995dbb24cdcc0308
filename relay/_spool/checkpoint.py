"""Background WAL checkpoints, so no acknowledged append waits for a big one.

SQLite copies the WAL back into the database ("checkpoint") inside the commit that crosses
`wal_autocheckpoint` pages: that commit, and every append waiting on it, pays for copying
megabytes and an fsync of the database file. Here a second connection on its own thread copies
the WAL in small PASSIVE steps as it grows; when the writer's automatic checkpoint comes due,
little is left to copy, and it still runs on the writer, which is what lets SQLite restart the
WAL from its beginning (a checkpointer racing the writer alone could never catch up fully).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["Checkpointer"]

_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED: contention, not a disk problem

log = logging.getLogger(__name__)


class Checkpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` when poked (or every `idle_s`), on its own thread."""

    def __init__(self, path: Path, *, idle_s: float = 5.0) -> None:
        self.error: BaseException | None = None  # a failed checkpoint: the disk is failing
        self.checkpoints = 0
        self._path = path
        self._idle_s = idle_s
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"lineage-relay-checkpoint:{path}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None)
        except sqlite3.Error as exc:
            self._failed(exc)
            return
        try:
            conn.execute("PRAGMA synchronous=FULL")  # the checkpoint fsyncs what it copied
            conn.execute("PRAGMA busy_timeout=0")
            while True:
                self._wake.wait(self._idle_s)
                self._wake.clear()
                if self._stopping:
                    return
                # SQLITE_BUSY (the writer is checkpointing itself) comes back as busy=1: fine.
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.OperationalError as exc:
                    if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _BUSY:
                        raise
                    continue  # someone else holds a lock for now: try at the next poke
                self.checkpoints += 1
        except sqlite3.Error as exc:
            self._failed(exc)
        finally:
            conn.close()

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        log.critical("spool: a background checkpoint of %s failed: %s", self._path, exc)
