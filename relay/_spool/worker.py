"""The spool's thread: it owns the SQLite connection and serves the front end's requests in
batches, one transaction and one commit per batch (group commit), answering each caller on the
loop after that commit. The operations themselves are in `pending.py`, `leases.py` and
`dead_letters.py`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from .._clock import Clock
from .._config import SpoolConfig
from .._exceptions import SpoolError, SpoolFailure, SpoolFull
from .._observe.metrics import Metrics
from . import schema
from .checkpoint import Checkpointer
from .dead_letters import DeadLetterOps
from .format import file_bytes
from .integrity import VERIFY_AT_OPEN_BYTES, IntegrityScan
from .leases import LeaseOps
from .pending import PendingOps
from .recovery import is_logic_error
from .requests import (
    NO_FUTURE,
    STOP,
    Ack,
    Append,
    Bury,
    Expire,
    Lease,
    ListDeadLetters,
    MoveToDeadLetters,
    Quarantine,
    QuarantineOrphans,
    Release,
    Replay,
    Request,
    Salvage,
    Scan,
    Scanned,
    ScheduleRetry,
    WaitingRuns,
    settle,
    settle_all,
)
from .sql import ROWS_PER_INSERT, insert_sql
from .state import SpoolStats, Totals

__all__ = ["Worker"]

log = logging.getLogger(__name__)

_SQLITE_FULL: Final = 13  # SQLITE_FULL: disk full; refuse appends, do not stop the relay
_HOUSEKEEPING_S: Final = 1.0
_CHECKPOINT_EVERY_BYTES: Final = 2 * 1024 * 1024


Answer = tuple[asyncio.Future[Any], Any, BaseException | None]


class Worker(PendingOps, LeaseOps, DeadLetterOps):
    """Owns the SQLite connection; everything in here runs on this thread."""

    def __init__(
        self, config: SpoolConfig, clock: Clock, metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        opened: asyncio.Future[None], before_commit: Callable[[], None] | None,
        scan_gate: threading.Event | None = None,
    ) -> None:  # fmt: skip
        self.thread = threading.Thread(
            target=self.run, name=f"lineage-relay-spool:{config.dir}", daemon=True
        )
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.loop = loop
        self.requests: queue.SimpleQueue[Request | object] = queue.SimpleQueue()
        self.report = schema.RecoveryReport()
        self.totals = Totals()
        self.deliver_to: Callable[..., None] | None = None
        self.on_scanned: Callable[[], None] | None = None
        self.gone = False  # the thread stopped serving: requests put now are never answered
        self.scan: IntegrityScan | None = None
        self.verified_at_open = False
        self._scan_gate = scan_gate
        self.closed: asyncio.Future[None] | None = None
        self._opened = opened
        self._before_commit = before_commit
        self._conn: sqlite3.Connection | None = None
        self._lock_fd = -1
        self._leased: dict[int, tuple[float, int]] = {}  # id -> (lease expiry, size)
        # No lease in `_leased` expires before this (a lower bound): lease() walks the leases
        # for expired ones only once this time has come, not on every call.
        self._next_lease_expiry = 0.0
        self._commits = 0
        self._synced_commits = 0
        self._sync_full = True  # what schema.connect set
        self._failed = False
        self._next_expiry = 0.0  # time.monotonic() of the next max_age_s sweep
        self._last_id: int | None = None
        self._checkpointer: Checkpointer | None = None
        self._unchecked_bytes = 0  # appended since the background checkpointer was last poked
        # Rows appends planned, not yet inserted: (id, received_at, size, crc, key, body).
        self._rows: list[tuple[int, float, int, int, bytes, bytes]] = []

    def run(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # noqa: BLE001 -- handed to the opener, re-raised there
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._release_lock()
            error = exc
            self._post(lambda: settle(self._opened, None, error))
            return
        self._post(lambda: settle(self._opened, None, None))
        try:
            self._serve()
        except Exception:
            # Never leave a caller waiting on a thread that is gone.
            log.critical("spool: the I/O thread died; refusing every request", exc_info=True)
            self._failed = True
        finally:
            self.gone = True
            self._shutdown()
            self._answer_leftovers()

    def _open(self) -> None:
        directory = Path(self.config.dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolFailure(f"cannot create spool.dir {directory}: {exc}") from exc
        self._lock_fd = os.open(directory / schema.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolError(
                f"spool.dir {directory} is in use by another lineage-relay; give each relay "
                "its own spool directory"
            ) from None
        # A small spool is checked record by record before anything else (milliseconds); a big
        # one opens at once and is checked by an IntegrityScan while the relay serves.
        self.verified_at_open = file_bytes(directory) <= VERIFY_AT_OPEN_BYTES
        try:
            self._conn, self.report = schema.open_database(
                directory, now=self.clock.time(), verify=self.verified_at_open
            )
        except SpoolError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise SpoolFailure(
                f"cannot open the spool in spool.dir {directory}: {exc}; check the disk and "
                "the directory's permissions"
            ) from exc
        self._recount()
        self._checkpointer = Checkpointer(directory / schema.DB_NAME)
        self._checkpointer.start()

    def _serve(self) -> None:
        while True:
            timeout = max(0.0, min(_HOUSEKEEPING_S, self._next_expiry - time.monotonic()))
            try:
                first = self.requests.get(timeout=timeout if self.config.max_age_s else None)
            except queue.Empty:
                first = None
            batch: list[Request] = []
            stop = False
            item: Request | object | None = first
            while item is not None:
                if item is STOP:
                    stop = True
                elif isinstance(item, Request):
                    batch.append(item)
                try:
                    item = self.requests.get_nowait()
                except queue.Empty:
                    item = None
            if self.config.max_age_s and time.monotonic() >= self._next_expiry:
                self._next_expiry = time.monotonic() + _HOUSEKEEPING_S
                batch.append(Expire())
            if batch:
                try:
                    self._run_batch(batch)
                except BaseException:
                    self._answer(batch, SpoolFailure("the spool's I/O thread failed"))
                    raise
            if stop:
                return

    def start_scan(self) -> None:
        """Start the background integrity scan when the open did not check every record."""
        if self.verified_at_open or self.report.salvaged or self.scan is not None:
            return
        self.scan = IntegrityScan(
            Path(self.config.dir) / schema.DB_NAME, post=self.requests.put, gate=self._scan_gate
        )
        self.scan.start()

    def _shutdown(self) -> None:
        if self.scan is not None:
            self.scan.stop()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        conn, self._conn = self._conn, None
        if conn is not None:
            if not self._failed:
                try:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    log.warning("spool: final checkpoint failed (%s); the WAL is kept", exc)
            conn.close()
        self._release_lock()
        closed = self.closed
        if closed is not None:
            self._post(lambda: settle(closed, None, None))

    def _answer_leftovers(self) -> None:
        """Fail whatever is still queued once the thread stops (it will never run)."""
        leftovers: list[Answer] = []
        error = SpoolError("the spool is closed")
        while True:
            try:
                item = self.requests.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Request) and item.future is not NO_FUTURE:
                leftovers.append((item.future, None, error))
        if leftovers:
            self._post(lambda: settle_all(leftovers))

    def _answer(self, batch: list[Request], error: BaseException) -> None:
        answers = [(r.future, None, error) for r in batch if r.future is not NO_FUTURE]
        self._post(lambda: settle_all(answers))

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = -1

    def _post(self, callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self.loop.call_soon_threadsafe(callback)

    def _run_batch(self, batch: list[Request]) -> None:
        answers: list[Answer] = []
        appended = False
        checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer.error is not None and not self._failed:
            self._fail(checkpointer.error)
        salvages = [r for r in batch if isinstance(r, Salvage)]
        if salvages:
            self._salvage_online(salvages[0].problems)
            batch = [r for r in batch if not isinstance(r, Salvage)]
        if self._failed or self._conn is None:
            error = SpoolFailure("the spool failed earlier; restart the relay")
            answers = [(r.future, None, error) for r in batch]
        else:
            answers, appended = self._transaction(batch)
        if self.deliver_to is not None:
            deliver, stats = self.deliver_to, self.snapshot()
            self._post(lambda: deliver(
                [a for a in answers if a[0] is not NO_FUTURE], stats, appended
            ))  # fmt: skip

    def _transaction(
        self, batch: list[Request], *, salvaged: bool = False
    ) -> tuple[list[Answer], bool]:
        """Run the batch in one transaction and commit it (one fsync). A damaged page met on
        the way (a big spool is checked in the background) is salvaged at once and the batch
        runs again, once: a damaged spool never stops the relay."""
        conn = self._db()
        saved = (replace(self.totals), dict(self._leased))
        answers: list[Answer] = []
        appended = False
        single = self._single_statement(batch)
        durable = single or any(isinstance(r, Append) for r in batch)
        try:
            self._sync_on_commit(conn, durable)
            if not single:
                conn.execute("BEGIN IMMEDIATE")
            for request in batch:
                try:
                    result = self._handle(conn, request)
                except SpoolError as exc:  # this request only (full, unstorable key)
                    answers.append((request.future, None, exc))
                else:
                    answers.append((request.future, result, None))
                    appended = appended or isinstance(request, Append)
            if single:
                # Only appends, few enough rows for one INSERT: in autocommit that statement
                # inserts, commits and fsyncs in a single SQLite call.
                if not self._rows:
                    return answers, False
                if self._before_commit is not None:
                    self._before_commit()
                self._flush_rows(conn)
            else:
                if self._rows:
                    self._flush_rows(conn)
                if self._before_commit is not None:
                    self._before_commit()
                conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 -- classified in _abort; callers always answered
            if (
                not salvaged
                and isinstance(exc, sqlite3.DatabaseError)
                and schema.is_corruption(exc)
                and self._undo(saved)
                and self._salvage_online([str(exc)])
            ):
                return self._transaction(batch, salvaged=True)
            return self._abort(batch, exc, saved), False
        self._commits += 1
        self._synced_commits += durable
        if self._unchecked_bytes >= _CHECKPOINT_EVERY_BYTES and self._checkpointer is not None:
            self._unchecked_bytes = 0
            self._checkpointer.poke()
        return answers, appended

    def _single_statement(self, batch: list[Request]) -> bool:
        """True for a batch of appends that one INSERT can hold and that drops nothing."""
        rows = size = 0
        for request in batch:
            if not isinstance(request, Append):
                return False
            items = request.items
            rows += len(items)
            size += sum(len(body) for body, _ in items)
        if rows > ROWS_PER_INSERT:
            return False
        # drop_oldest deletes first: that needs a transaction around delete + insert.
        return (
            self.config.when_full == "reject" or self.totals.bytes + size <= self.config.max_bytes
        )

    def _abort(
        self, batch: list[Request], exc: BaseException,
        saved: tuple[Totals, dict[int, tuple[float, int]]],
    ) -> list[Answer]:  # fmt: skip
        """Undo the batch in memory and on disk, and answer its callers."""
        self._undo(saved)
        if not isinstance(exc, sqlite3.Error | OSError) or is_logic_error(exc):
            # A bug, not the disk: answer everyone rather than leave them waiting.
            log.exception("spool: unexpected error in a batch of %d request(s)", len(batch))
            failure = SpoolError(f"internal spool error: {exc!r}")
            failure.__cause__ = exc
            return [(r.future, None, failure) for r in batch]
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF == _SQLITE_FULL:
            return self._disk_full(batch, exc)
        self._fail(exc)
        error = SpoolFailure(f"spool write or sync failed: {exc}; the relay must stop")
        error.__cause__ = exc
        return [(r.future, None, error) for r in batch]

    def _sync_on_commit(self, conn: sqlite3.Connection, durable: bool) -> None:
        """fsync at the next commit (an append is acknowledged after it) or not (leases, acks,
        retries: the next fsync'd commit or checkpoint carries them to disk)."""
        if durable != self._sync_full:
            conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            self._sync_full = durable

    def _undo(self, saved: tuple[Totals, dict[int, tuple[float, int]]]) -> bool:
        """Forget what the failed batch did, in memory and on disk; always True."""
        conn = self._db()
        self.totals, self._leased = replace(saved[0]), dict(saved[1])
        self._next_lease_expiry = 0.0  # the restored leases may expire sooner: look again
        self._rows = []
        self._last_id = None  # re-read from the database: the rollback undid our ids
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return True

    def _salvage_online(self, problems: list[str]) -> bool:
        """Rebuild the damaged database from what is readable (as an open would), on this
        thread, and go on with the new one; False (and the spool failed) if that fails."""
        if self._conn is None or self._failed:
            return False
        log.error("spool: the database is damaged (%s); salvaging it", "; ".join(problems))
        directory = Path(self.config.dir)
        if self.scan is not None:
            self.scan.stop()  # the salvage checks every record it keeps
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        before = self.report.corrupt_records
        conn, self._conn = self._conn, None
        conn.close()
        self._sync_full = True  # the new connection starts as schema.connect sets it
        try:
            self._conn = schema.salvage(directory, self.report, self.clock.time())
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
            return False
        self.metrics.spool_corrupt_records.inc(max(1, self.report.corrupt_records - before))
        self._rows = []
        self._last_id = None
        self._recount()
        self._checkpointer = Checkpointer(directory / schema.DB_NAME)
        self._checkpointer.start()
        return True

    def _disk_full(self, batch: list[Request], exc: BaseException) -> list[Answer]:
        """The disk is full: refuse this batch's appends, retry the rest (acks free space)."""
        log.error("spool: the disk is full (%s); refusing appends until space frees up", exc)
        full = SpoolFull(f"the disk holding spool.dir {self.config.dir} is full")
        others = [r for r in batch if not isinstance(r, Append)]
        answers: list[Answer] = [(r.future, None, full) for r in batch if isinstance(r, Append)]
        if others and len(others) < len(batch):
            more, _ = self._transaction(others)
            answers.extend(more)
        else:  # nothing left to leave out: answer, and let the caller try again later
            answers.extend((r.future, None, full) for r in others)
        return answers

    def _fail(self, exc: BaseException) -> None:
        self._failed = True
        log.critical(
            "spool at %s: a disk write or sync failed (%s); refusing every request from now on. "
            "Nothing after this point was acknowledged; restart the relay to recover",
            self.config.dir, exc,
        )  # fmt: skip

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolFailure("the spool database is not open")
        return self._conn

    def snapshot(self) -> SpoolStats:
        t = self.totals
        return SpoolStats(
            events=t.events, bytes=t.bytes, oldest_received_at=t.oldest, dead_letters=t.dead,
            leased=len(self._leased), commits=self._commits, failed=self._failed,
            synced_commits=self._synced_commits,
        )  # fmt: skip

    def _flush_rows(self, conn: sqlite3.Connection) -> None:
        """Insert the rows appends planned, one statement per `ROWS_PER_INSERT` rows: each
        SQLite call hands the GIL to the event loop and back, so fewer calls, faster commits."""
        rows = self._rows
        self._rows = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start : start + ROWS_PER_INSERT]
            conn.execute(insert_sql(len(chunk)), [v for row in chunk for v in row])

    def _handle(self, conn: sqlite3.Connection, request: Request) -> Any:
        if not isinstance(request, Append) and self._rows:
            self._flush_rows(conn)  # later requests in the batch see earlier appends
        match request:
            case Append():
                return self._append(conn, request.items)
            case Lease():
                return self._lease(conn, request.max_events, request.max_bytes, request.lease_s)
            case Ack():
                self._remove(conn, request.ids)
            case ScheduleRetry():
                self._schedule_retry(conn, request.ids, request.when, request.error, request.step)
            case MoveToDeadLetters():
                self._move_to_dead_letters(conn, request.ids, request.reason)
            case Bury():
                self._bury(conn, request.event, request.reason)
            case Release():
                self._release(request.ids)
            case ListDeadLetters():
                return self._list_dead(conn, request.limit)
            case Replay():
                return self._replay(conn, request.ids)
            case Expire():
                return self._expire(conn)
            case WaitingRuns():
                return self._waiting_runs(conn)
            case Scan():
                return self._scan(conn, request.after_id, request.max_events, request.max_bytes)
            case Quarantine():
                self._quarantine(conn, request.found)
            case QuarantineOrphans():
                self._quarantine_orphans(conn, request.body_ids)
            case Scanned():
                if self.on_scanned is not None:
                    self._post(self.on_scanned)
            case _:  # pragma: no cover -- a Salvage never gets here (_run_batch runs it)
                raise AssertionError(request)
        return None
