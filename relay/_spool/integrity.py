"""The integrity scan of a big spool, in the background, while the relay already runs.

Checking every event's CRC before listening costs seconds on a backlog of hundreds of MB, and
a relay that does not answer is a relay its clients give up on. So a spool larger than
`VERIFY_AT_OPEN_BYTES` is opened without that check (a torn WAL tail is still found and
counted at open, it costs no more than the tail), and this scan, on its own thread and its own
connection, does what the open would have done:

    1. SQLite's structure check (quick_check); a malformed file -> the spool's thread salvages
       it, as the open would have (the scan ends there: the salvage checked every record)
    2. every event's CRC, a chunk of rows per read transaction (the writer's checkpoints are
       never held back for long); damaged events -> dead letters, reason "corrupt: ..."
    3. bodies whose event row is gone -> dead letters

Findings go to the spool's thread as requests (`post`), which applies them in its next
transaction and counts each record it moves in `lineage_relay_spool_corrupt_records_total`
once. Meanwhile every lease checks the CRC of what it hands out, so nothing damaged is ever
sent, before or after the scan reaches it.

`gate` (tests): the scan waits for it to be set before each step, so a test can hold the scan
mid-way and look at a relay that is serving while its spool is not yet checked.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from . import schema
from .requests import Quarantine, QuarantineOrphans, Request, Salvage, Scanned

__all__ = ["VERIFY_AT_OPEN_BYTES", "IntegrityScan", "ScanState"]

log = logging.getLogger(__name__)

# Below this (database + WAL), the open checks everything itself: tens of milliseconds.
VERIFY_AT_OPEN_BYTES: Final = 8 * 1024 * 1024
_ROWS_PER_STEP: Final = 256


class ScanState(enum.Enum):
    PENDING = "pending"  # not started (or held by its gate before the first step)
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # ended before it was through (stopped, or an error, logged)


# post(request): a request for the spool's thread (Quarantine, QuarantineOrphans, Salvage, Scanned).
Post = Callable[[Request], None]


class IntegrityScan:
    """One pass over the spool at `path`; start() once, stop() to end it early."""

    def __init__(self, path: Path, *, post: Post, gate: threading.Event | None = None) -> None:
        self.state = ScanState.PENDING
        self.checked_bytes = 0
        self.found = 0  # damaged records reported to the spool's thread
        self.seconds = 0.0
        self._path = path
        self._post = post
        self._gate = gate
        self._stopping = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"lineage-relay-integrity:{path}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the scan early (the spool closes, or a salvage made it moot). Idempotent."""
        self._stopping.set()
        conn = self._conn
        if conn is not None:
            # Ends a running quick_check at once (minutes on a spool of many GB), not when done.
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed meanwhile: ended anyway
                conn.interrupt()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    @property
    def finished(self) -> bool:
        return self.state in (ScanState.DONE, ScanState.FAILED)

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        started = time.monotonic()
        state = ScanState.FAILED
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.error("spool integrity scan: cannot open %s (%s)", self._path, exc)
        else:
            self._conn = conn
            try:
                conn.execute("PRAGMA query_only=ON")
                state = self._scan(conn)
            except sqlite3.DatabaseError as exc:
                if self._stopping.is_set():
                    pass  # interrupted on purpose
                elif schema.is_corruption(exc):
                    conn.close()
                    self._post(Salvage([str(exc)]))
                    state = ScanState.DONE
                else:
                    log.error("spool integrity scan stopped: %s", exc)
            finally:
                self._conn = None
                conn.close()
        self.seconds = time.monotonic() - started
        self.state = state
        if state is ScanState.DONE:
            log.info(
                "spool integrity scan done: %d byte(s) checked in %.2fs, %d damaged record(s)",
                self.checked_bytes, self.seconds, self.found,
            )  # fmt: skip
        self._post(Scanned(state))

    def _wait(self) -> bool:
        """Hold while the gate is clear; False when the scan should end."""
        gate = self._gate
        while gate is not None and not gate.wait(0.1):
            if self._stopping.is_set():
                return False
        return not self._stopping.is_set()

    def _scan(self, conn: sqlite3.Connection) -> ScanState:
        if not self._wait():
            return ScanState.FAILED
        self.state = ScanState.RUNNING
        problems = schema.structure_problems(conn)
        if problems:
            if self._stopping.is_set():
                return ScanState.FAILED
            self.found += 1
            self._post(Salvage(problems))
            return ScanState.DONE  # the salvage checks every record it keeps
        report = schema.RecoveryReport()
        after = 0
        while self._wait():
            rows = list(schema.events_with_bodies(conn, after, _ROWS_PER_STEP))
            if not rows:
                break
            after = rows[-1][0]
            bad = schema.damaged_events(rows, report)
            self.checked_bytes = report.checked_bytes
            if bad:
                self.found += len(bad)
                self._post(Quarantine(bad))
        else:
            return ScanState.FAILED
        conn.execute("BEGIN")  # one snapshot for both counts: appends go on meanwhile
        try:
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            orphans = schema.orphan_bodies(conn, events)
        finally:
            conn.execute("COMMIT")
        if orphans:
            self.found += len(orphans)
            self._post(QuarantineOrphans(orphans))
        return ScanState.DONE
