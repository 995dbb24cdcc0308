"""The spool: a durable queue of raw events, SQLite (WAL, synchronous=FULL) on its own thread.

Every request goes through one queue to one thread. The thread takes everything that queued up
while it was busy, runs it in ONE transaction and commits once: the commit's fsync covers every
append in the batch (group commit), and a caller is answered only after that commit returns.
A batch of appends alone is a single autocommit INSERT (insert, commit and fsync in one SQLite
call). A batch without appends (the forwarder's leases, acks, retries) commits without an fsync
of its own (synchronous=NORMAL for that commit): the next append's fsync, or the next
checkpoint, makes it durable with everything before it, and a crash in between can only undo
it whole (an acknowledged delivery is then delivered again: at least once). So an ack never
costs an fsync, nor makes the next append wait for one. The event loop never touches SQLite;
a second connection (checkpoint.py) copies the WAL into the database in the background.

Leases live in memory only (a restart voids them, which is what a restart should do). Counts for
`stats()` are kept in memory and published to the loop with each batch's answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal, cast

import orjson

from .._clock import Clock, SystemClock
from .._config import SpoolConfig
from .._events import EventKey, SpooledEvent
from .._exceptions import SpoolError, SpoolFailure, SpoolFull
from .._observe.metrics import Metrics
from . import schema
from .checkpoint import Checkpointer
from .integrity import VERIFY_AT_OPEN_BYTES, IntegrityScan

__all__ = ["Spool", "SpoolStats"]

log = logging.getLogger(__name__)

_SQLITE_FULL: Final = 13  # SQLITE_FULL: disk full; refuse appends, do not stop the relay
_HOUSEKEEPING_S: Final = 1.0
_IN_CHUNK: Final = 500  # ids per `IN (...)`: far below SQLite's variable limit
_CHECKPOINT_EVERY_BYTES: Final = 2 * 1024 * 1024
_ROWS_PER_INSERT: Final = 256  # rows per multi-row INSERT (4 variables each: well below 32766)


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """A snapshot of the spool, kept in memory (no I/O to read it)."""

    events: int  # pending (incl. leased), not dead letters
    bytes: int  # bytes of pending event bodies
    oldest_received_at: float | None  # epoch s of the oldest pending event
    dead_letters: int
    leased: int = 0  # of `events`, currently leased to the forwarder
    commits: int = 0  # transactions committed since open
    failed: bool = False  # a write or sync failed: the spool refuses everything from now on
    synced_commits: int = 0  # of `commits`, those fsync'd on their own (every one with appends)


_Kind = Literal[
    "append", "lease", "ack", "retry", "dead", "release", "list", "replay", "expire", "waiting",
    "quarantine", "orphans", "salvage", "scanned", "bury", "scan",
]


class _Request:
    __slots__ = ("args", "future", "kind")

    def __init__(self, kind: _Kind, args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.kind = kind
        self.args = args
        self.future = future


_STOP: Final = object()


class Spool:
    """Durable queue of raw event bytes in `config.dir`. Use `await Spool.open(...)`."""

    def __init__(self, *, _token: object, config: SpoolConfig, metrics: Metrics,
                 worker: _Worker) -> None:  # fmt: skip
        if _token is not _PRIVATE:
            raise TypeError("use `await Spool.open(config, metrics=...)`")
        self._config = config
        self._metrics = metrics
        self._worker = worker
        self._loop = worker.loop
        self._stats = worker.snapshot()
        self._inflight_bytes = 0
        self._closing: asyncio.Future[None] | None = None
        self._appended = asyncio.Event()
        self._append_seq = 0
        self._seen_seq = 0
        self._scanned = asyncio.Event()
        if worker.verified_at_open or worker.report.salvaged:
            self._scanned.set()
        self.recovery: schema.RecoveryReport = worker.report
        self._publish(self._stats)

    @classmethod
    async def open(
        cls,
        config: SpoolConfig,
        *,
        metrics: Metrics,
        clock: Clock = SystemClock(),  # noqa: B008 -- stateless
        before_commit: Callable[[], None] | None = None,
        scan_gate: threading.Event | None = None,
    ) -> Spool:
        """Create/open the spool in config.dir, run recovery (counting corrupt or torn records
        in metrics.spool_corrupt_records), and start its I/O thread.

        `before_commit` runs on the spool thread before every commit; an exception from it
        acts as a failed commit (tests inject disk failures with it).

        A spool above `VERIFY_AT_OPEN_BYTES` opens without checking every record: an
        `IntegrityScan` does that in the background (`integrity`, `wait_integrity_checked`),
        and holds before each step while `scan_gate` (tests) is clear.
        """
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        worker = _Worker(config, clock, metrics, loop, opened, before_commit, scan_gate)
        worker.thread.start()
        try:
            await asyncio.shield(opened)
        except asyncio.CancelledError:
            # Recovery goes on in the thread; once done it closes again and frees the lock.
            worker.requests.put(_STOP)
            opened.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        report = worker.report
        if report.corrupt_records:
            metrics.spool_corrupt_records.inc(report.corrupt_records)
        log.info(
            "spool opened at %s: %d event(s), %d byte(s), %d dead letter(s); recovery checked "
            "%d byte(s) in %.2fs, %d corrupt record(s)%s%s",
            config.dir, worker.totals.events, worker.totals.bytes, worker.totals.dead,
            report.checked_bytes, report.seconds, report.corrupt_records,
            " (database rebuilt)" if report.salvaged else "",
            "" if worker.verified_at_open or report.salvaged
            else "; every record is checked in the background",
        )  # fmt: skip
        spool = cls(_token=_PRIVATE, config=config, metrics=metrics, worker=worker)
        worker.deliver_to = spool._deliver
        worker.on_scanned = spool._scanned.set
        worker.start_scan()
        return spool

    # -- appending ----------------------------------------------------------------------------

    async def append(self, items: Sequence[tuple[bytes, EventKey]]) -> list[int]:
        """Durably append events (one request's events, in order); return their ids, only
        after the fsync'd commit that covers them.

        Raises SpoolFull (policy reject, or one request larger than the whole spool) or
        SpoolFailure (the disk failed: nothing is acknowledged after it).
        """
        self._check_usable()
        if not items:
            return []
        size = sum(len(body) for body, _ in items)
        limit = self._config.max_bytes
        if size > limit:
            raise SpoolFull(f"{size} bytes of events exceed spool.max_bytes ({limit}) on their own")
        if (
            self._config.when_full == "reject"
            and self._stats.bytes + self._inflight_bytes + size > limit
        ):
            raise SpoolFull(
                f"spool is full ({self._stats.bytes} of {limit} bytes, spool.max_bytes); "
                "retry once the forwarder has caught up"
            )
        self._inflight_bytes += size
        try:
            ids: list[int] = await self._call("append", list(items))
        finally:
            self._inflight_bytes -= size
        return ids

    # -- the forwarder's side -----------------------------------------------------------------

    async def lease(self, *, max_events: int, max_bytes: int, lease_s: float) -> list[SpooledEvent]:
        """Hand out up to max_events/max_bytes pending events whose retry time has come, oldest
        first, leased until now+lease_s. At least one event is returned when any is available,
        even if it alone exceeds max_bytes. Never returns an event twice while leased."""
        self._check_usable()
        if max_events <= 0:
            return []
        self._seen_seq = self._append_seq
        events: list[SpooledEvent] = await self._call("lease", max_events, max_bytes, lease_s)
        return events

    async def ack(self, ids: Sequence[int]) -> None:
        """Delivered: delete for good (unknown ids are ignored)."""
        await self._call_ids("ack", ids)

    async def retry_at(
        self, ids: Sequence[int], when: float, error: str, *, count_attempt: bool = True
    ) -> None:
        """Not delivered yet: release the lease, available again at epoch `when`; attempts += 1
        unless `count_attempt` is False (held back unsent, e.g. behind an earlier event of its
        run: that is no attempt, and must not bring `retry_attempts` closer)."""
        await self._call_ids("retry", ids, when, error, 1 if count_attempt else 0)

    async def waiting_runs(self) -> dict[str, float]:
        """Run id -> latest retry time of that run's pending events not due yet.

        A forwarder starting on an existing spool reads this once: a run whose earlier event
        waits for its retry must not have a later event sent first (per-run order survives
        a restart). One scan of the narrow events table, plus the keys of waiting events."""
        self._check_usable()
        runs: dict[str, float] = await self._call("waiting")
        return runs

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        """Permanently refused: move to the dead-letter table with the reason."""
        await self._call_ids("dead", ids, reason)

    async def bury(self, event: SpooledEvent, reason: str) -> None:
        """Put an event that was delivered (acknowledged, gone from the queue) straight into
        the dead letters: a sink gave up on work it had taken on (the rest sink's parked
        edges). It keeps its id, so a replay queues it again; never leased in between."""
        self._check_usable()
        await self._call("bury", event, reason)

    async def release(self, ids: Sequence[int]) -> None:
        """Give leased events back untouched (available again at once)."""
        await self._call_ids("release", ids)
        self._wake()

    async def dead_letters(self, limit: int = 100) -> list[tuple[SpooledEvent, str]]:
        """The oldest `limit` dead letters with their reasons."""
        self._check_usable()
        rows: list[tuple[SpooledEvent, str]] = await self._call("list", limit)
        return rows

    async def replay_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Move dead letters (all, or those `ids`) back into the queue with their original ids,
        attempts reset, available at once; returns how many moved."""
        self._check_usable()
        moved: int = await self._call("replay", None if ids is None else list(ids))
        self._wake()
        return moved

    async def expire(self) -> int:
        """Drop pending events older than spool.max_age_s now (the spool also does this about
        once a second by itself); returns how many were dropped."""
        self._check_usable()
        dropped: int = await self._call("expire")
        return dropped

    async def scan(self, *, after_id: int, max_events: int, max_bytes: int) -> list[SpooledEvent]:
        """Pending events with ids above `after_id`, in id order, whether leased or due or not
        (the shutdown offload reads everything left this way); at least one when any is left,
        then up to `max_events` / `max_bytes`. A damaged event is skipped (a lease would
        dead-letter it)."""
        self._check_usable()
        events: list[SpooledEvent] = await self._call("scan", after_id, max_events, max_bytes)
        return events

    async def wait_for_events(self, timeout_s: float) -> None:
        """Return when something was appended (or released) since the last `lease`, or after
        `timeout_s`."""
        if self._append_seq != self._seen_seq:
            return
        self._appended.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._appended.wait(), timeout_s)

    def stats(self) -> SpoolStats:
        """Cheap, no I/O."""
        return self._stats

    @property
    def integrity(self) -> IntegrityScan | None:
        """The background integrity scan of a big spool (None: everything was checked at
        open). Its `state`, `checked_bytes` and `found` are safe to read from any thread."""
        return self._worker.scan

    async def wait_integrity_checked(self) -> None:
        """Return once every record present at open was checked and what was damaged is in
        the dead letters (at once when the open checked everything itself)."""
        await self._scanned.wait()

    @property
    def failed(self) -> bool:
        return self._stats.failed

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Finish queued requests (in-flight appends complete), checkpoint, close. Idempotent."""
        if self._closing is None:
            self._closing = self._loop.create_future()
            self._worker.closed = self._closing
            self._worker.requests.put(_STOP)
        closing = self._closing
        while not closing.done() and self._worker.thread.is_alive():
            # The thread answers when it is done; a thread that died (a bug) never will.
            await asyncio.wait([closing], timeout=0.1)
        await asyncio.to_thread(self._worker.thread.join)
        self._metrics.spool_oldest_age.set_function(lambda: 0.0)

    async def __aenter__(self) -> Spool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- plumbing -----------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._stats.failed:
            raise SpoolFailure(
                f"the spool at {self._config.dir} failed a disk write or sync earlier; "
                "nothing is acknowledged any more: restart the relay"
            )
        if self._closing is not None:
            raise SpoolError("the spool is closed")

    async def _call_ids(self, kind: _Kind, ids: Sequence[int], *args: Any) -> None:
        self._check_usable()
        if ids:
            await self._call(kind, list(ids), *args)

    async def _call(self, kind: _Kind, *args: Any) -> Any:
        if self._worker.gone:  # a flag: Thread.is_alive() takes a lock, on every request
            raise SpoolFailure(f"the spool's I/O thread for {self._config.dir} is gone")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._worker.requests.put(_Request(kind, args, future))
        return await future

    def _deliver(
        self, answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
        stats: SpoolStats, appended: bool,
    ) -> None:  # fmt: skip
        """On the loop: publish the batch's stats, then answer its callers."""
        self._publish(stats)
        for future, result, error in answers:
            if future.done():
                continue  # the caller gave up (cancelled); the work is done all the same
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        if appended:
            self._wake()

    def _wake(self) -> None:
        self._append_seq += 1
        self._appended.set()

    def _publish(self, stats: SpoolStats) -> None:
        self._stats = stats
        m = self._metrics
        m.spool_events.set(stats.events)
        m.spool_bytes.set(stats.bytes)
        m.dead_letter_events.set(stats.dead_letters)
        oldest, clock = stats.oldest_received_at, self._worker.clock
        m.spool_oldest_age.set_function(
            (lambda: 0.0) if oldest is None else (lambda: max(0.0, clock.time() - oldest))
        )


_PRIVATE: Final = object()


@dataclass(slots=True)
class _Totals:
    events: int = 0
    bytes: int = 0
    dead: int = 0
    oldest: float | None = None


class _Worker:
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
        self.requests: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self.report = schema.RecoveryReport()
        self.totals = _Totals()
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

    # -- thread body --------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # noqa: BLE001 -- handed to the opener, re-raised there
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._release_lock()
            error = exc
            self._post(lambda: _settle(self._opened, None, error))
            return
        self._post(lambda: _settle(self._opened, None, None))
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
        self.verified_at_open = _file_bytes(directory) <= VERIFY_AT_OPEN_BYTES
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
            batch: list[_Request] = []
            stop = False
            item: _Request | object | None = first
            while item is not None:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Request):
                    batch.append(item)
                try:
                    item = self.requests.get_nowait()
                except queue.Empty:
                    item = None
            if self.config.max_age_s and time.monotonic() >= self._next_expiry:
                self._next_expiry = time.monotonic() + _HOUSEKEEPING_S
                batch.append(_Request("expire", (), _NO_FUTURE))
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
            Path(self.config.dir) / schema.DB_NAME, post=self._post_request, gate=self._scan_gate
        )
        self.scan.start()

    def _post_request(self, kind: str, args: tuple[Any, ...]) -> None:
        self.requests.put(_Request(cast(_Kind, kind), args, _NO_FUTURE))

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
            self._post(lambda: _settle(closed, None, None))

    def _answer_leftovers(self) -> None:
        """Fail whatever is still queued once the thread stops (it will never run)."""
        leftovers: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        error = SpoolError("the spool is closed")
        while True:
            try:
                item = self.requests.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Request) and item.future is not _NO_FUTURE:
                leftovers.append((item.future, None, error))
        if leftovers:
            self._post(lambda: _settle_all(leftovers))

    def _answer(self, batch: list[_Request], error: BaseException) -> None:
        answers = [(r.future, None, error) for r in batch if r.future is not _NO_FUTURE]
        self._post(lambda: _settle_all(answers))

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = -1

    def _post(self, callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self.loop.call_soon_threadsafe(callback)

    # -- batches ------------------------------------------------------------------------------

    def _run_batch(self, batch: list[_Request]) -> None:
        answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        appended = False
        checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer.error is not None and not self._failed:
            self._fail(checkpointer.error)
        if any(r.kind == "salvage" for r in batch):
            self._salvage_online(next(r.args[0] for r in batch if r.kind == "salvage"))
            batch = [r for r in batch if r.kind != "salvage"]
        if self._failed or self._conn is None:
            error = SpoolFailure("the spool failed earlier; restart the relay")
            answers = [(r.future, None, error) for r in batch]
        else:
            answers, appended = self._transaction(batch)
        if self.deliver_to is not None:
            deliver, stats = self.deliver_to, self.snapshot()
            self._post(lambda: deliver(
                [a for a in answers if a[0] is not _NO_FUTURE], stats, appended
            ))  # fmt: skip

    def _transaction(
        self, batch: list[_Request], *, salvaged: bool = False
    ) -> tuple[list[tuple[asyncio.Future[Any], Any, BaseException | None]], bool]:
        """Run the batch in one transaction and commit it (one fsync). A damaged page met on
        the way (a big spool is checked in the background) is salvaged at once and the batch
        runs again, once: a damaged spool never stops the relay."""
        conn = self._db()
        saved = (replace(self.totals), dict(self._leased))
        answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        appended = False
        single = self._single_statement(batch)
        durable = single or any(r.kind == "append" for r in batch)
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
                    appended = appended or request.kind == "append"
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

    def _single_statement(self, batch: list[_Request]) -> bool:
        """True for a batch of appends that one INSERT can hold and that drops nothing."""
        rows = size = 0
        for request in batch:
            if request.kind != "append":
                return False
            items = request.args[0]
            rows += len(items)
            size += sum(len(body) for body, _ in items)
        if rows > _ROWS_PER_INSERT:
            return False
        # drop_oldest deletes first: that needs a transaction around delete + insert.
        return (
            self.config.when_full == "reject" or self.totals.bytes + size <= self.config.max_bytes
        )

    def _abort(
        self, batch: list[_Request], exc: BaseException,
        saved: tuple[_Totals, dict[int, tuple[float, int]]],
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:  # fmt: skip
        """Undo the batch in memory and on disk, and answer its callers."""
        self._undo(saved)
        if not isinstance(exc, sqlite3.Error | OSError) or _is_logic_error(exc):
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

    def _undo(self, saved: tuple[_Totals, dict[int, tuple[float, int]]]) -> bool:
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

    def _disk_full(
        self, batch: list[_Request], exc: BaseException
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """The disk is full: refuse this batch's appends, retry the rest (acks free space)."""
        log.error("spool: the disk is full (%s); refusing appends until space frees up", exc)
        full = SpoolFull(f"the disk holding spool.dir {self.config.dir} is full")
        others = [r for r in batch if r.kind != "append"]
        answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = [
            (r.future, None, full) for r in batch if r.kind == "append"
        ]
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
        """Insert the rows appends planned, one statement per `_ROWS_PER_INSERT` rows: each
        SQLite call hands the GIL to the event loop and back, so fewer calls, faster commits."""
        rows = self._rows
        self._rows = []
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            conn.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])

    def _handle(self, conn: sqlite3.Connection, request: _Request) -> Any:
        args = request.args
        if request.kind != "append" and self._rows:
            self._flush_rows(conn)  # later requests in the batch see earlier appends
        match request.kind:
            case "append":
                return self._append(conn, args[0])
            case "lease":
                return self._lease(conn, *args)
            case "ack":
                self._remove(conn, args[0])
                return None
            case "retry":
                ids, when, error, step = args
                for chunk in _chunks(ids):
                    conn.execute(
                        _sql_in(
                            "UPDATE events SET retry_at = ?, attempts = attempts + ?, "
                            "last_error = ? WHERE id IN ({ids})",
                            chunk,
                        ),
                        (when, step, error[:2000], *chunk),
                    )
                    for ev_id in chunk:
                        self._leased.pop(ev_id, None)
                return None
            case "dead":
                self._dead_letter(conn, args[0], args[1])
                return None
            case "bury":
                self._bury(conn, args[0], args[1])
                return None
            case "release":
                for ev_id in args[0]:
                    self._leased.pop(ev_id, None)
                return None
            case "list":
                return self._list_dead(conn, args[0])
            case "replay":
                return self._replay(conn, args[0])
            case "expire":
                return self._expire(conn)
            case "waiting":
                return self._waiting_runs(conn)
            case "scan":
                return self._scan(conn, *args)
            case "quarantine":
                self._quarantine(conn, args[0])
                return None
            case "orphans":
                self._quarantine_orphans(conn, args[0])
                return None
            case "scanned":
                if self.on_scanned is not None:
                    self._post(self.on_scanned)
                return None
        raise AssertionError(request.kind)  # pragma: no cover

    # -- operations (spool thread, inside the batch transaction) ------------------------------

    def _append(self, conn: sqlite3.Connection, items: list[tuple[bytes, EventKey]]) -> list[int]:
        try:
            encoded = [(bytes(body), schema.encode_key(key)) for body, key in items]
        except (TypeError, ValueError) as exc:
            raise SpoolError(f"an event cannot be stored: {exc}") from exc
        size = sum(len(body) for body, _ in encoded)
        limit = self.config.max_bytes
        if self.totals.bytes + size > limit:
            if self.config.when_full == "reject" or size > limit:
                raise SpoolFull(f"spool is full ({self.totals.bytes} of {limit} bytes)")
            self._flush_rows(conn)  # the batch's earlier appends are candidates too
            self._drop_oldest(conn, self.totals.bytes + size - limit)
        now = self.clock.time()
        first = self._next_id(conn)
        ids = list(range(first, first + len(items)))
        self._rows.extend(
            (ev_id, now, len(body), schema.checksum(raw_key, body), raw_key, body)
            for ev_id, (body, raw_key) in zip(ids, encoded, strict=True)
        )
        self._unchecked_bytes += size
        self._last_id = ids[-1]
        t = self.totals
        t.events += len(items)
        t.bytes += size
        if t.oldest is None:
            t.oldest = now
        return ids

    def _next_id(self, conn: sqlite3.Connection) -> int:
        last = self._last_id
        if last is None:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            dead = conn.execute("SELECT max(id) FROM dead_letters").fetchone()[0]
            last = max(int(row[0]) if row else 0, int(dead or 0))
        return int(last) + 1

    def _drop_oldest(self, conn: sqlite3.Connection, need: int) -> None:
        """Delete the oldest pending events (unleased first) until `need` bytes are freed."""
        victims: list[int] = []
        freed = 0
        for leased_ok in (False, True):
            after = 0
            while freed < need:
                rows = conn.execute(
                    "SELECT id, size FROM events WHERE id > ? ORDER BY id LIMIT 256", (after,)
                ).fetchall()
                if not rows:
                    break
                for ev_id, size in rows:
                    after = ev_id
                    if (ev_id in self._leased) != leased_ok:
                        continue
                    victims.append(ev_id)
                    freed += size
                    if freed >= need:
                        break
            if freed >= need:
                break
        self._remove(conn, victims)
        if victims:
            self.metrics.events_dropped.labels(reason="spool_full").inc(len(victims))
            log.warning(
                "spool full (spool.when_full = drop_oldest): dropped %d oldest event(s), "
                "%d byte(s)", len(victims), freed,
            )  # fmt: skip

    def _lease(
        self, conn: sqlite3.Connection, max_events: int, max_bytes: int, lease_s: float
    ) -> list[SpooledEvent]:
        now = self.clock.time()
        if now >= self._next_lease_expiry:
            self._expire_leases(now)
        chosen: list[list[Any]] = []
        total, page = 0, max_events + 16
        # Candidates are read in id order from the gaps between the runs of leased ids: the
        # leased rows (a forwarder holds pool x batch of them, at the head of the queue) are
        # never read, packed and skipped again on every lease.
        runs = self._leased_runs()
        after, run, full = 0, 0, False
        while not full:
            while run < len(runs) and runs[run][0] <= after + 1:
                after = max(after, runs[run][1])
                run += 1
            below = runs[run][0] if run < len(runs) else _NO_ID_ABOVE
            (packed,) = conn.execute(_LEASE_PAGE_SQL, (after, below, now, page)).fetchone()
            rows = sorted(orjson.loads(packed))
            for row in rows:
                row[1] /= 1e6  # received_at, carried as integer microseconds (exact in JSON)
                after = row[0]
                if after in self._leased:
                    continue
                if chosen and total + row[3] > max_bytes:
                    full = True
                    break
                chosen.append(row)
                total += row[3]
                if len(chosen) >= max_events:
                    full = True
                    break
            if len(rows) < page:  # this gap is exhausted: on past the next run, if any
                if run >= len(runs):
                    break
                after = runs[run][1]
                run += 1
        if not chosen:
            return []
        bodies: dict[int, tuple[bytes, bytes]] = {}
        for chunk in _chunks([row[0] for row in chosen]):
            for ev_id, key, body in conn.execute(
                _sql_in("SELECT id, key, body FROM bodies WHERE id IN ({ids})", chunk),
                chunk,
            ):
                bodies[ev_id] = (key, body)
        out: list[SpooledEvent] = []
        expiry = now + lease_s
        self._next_lease_expiry = min(self._next_lease_expiry, expiry)
        for ev_id, received_at, attempts, size, crc in chosen:
            stored = bodies.get(ev_id)
            reason = ""
            key = _NO_KEY
            if stored is None:
                reason, stored = "corrupt: body missing", (b"", b"")
            elif schema.checksum(*stored) != crc:
                reason = "corrupt: checksum mismatch"
            else:
                try:
                    key = schema.decode_key(stored[0])
                except (ValueError, TypeError):
                    reason = "corrupt: unreadable key"
            if reason:
                # Damaged since open (bit rot): never hand it out; keep it for inspection.
                self._dead_letter(conn, [ev_id], reason)
                self.metrics.spool_corrupt_records.inc()
                log.error("spool: event %d is damaged on disk (%s); moved to dead letters",
                          ev_id, reason)  # fmt: skip
                continue
            self._leased[ev_id] = (expiry, size)
            out.append(SpooledEvent(
                id=ev_id, body=stored[1], key=key, received_at=received_at, attempts=attempts
            ))  # fmt: skip
        return out

    def _expire_leases(self, now: float) -> None:
        """Forget the leases that ran out (their events are handed out again)."""
        soonest = math.inf
        for ev_id, (expiry, _) in list(self._leased.items()):
            if expiry <= now:
                del self._leased[ev_id]
            elif expiry < soonest:
                soonest = expiry
        self._next_lease_expiry = soonest

    def _leased_runs(self) -> list[tuple[int, int]]:
        """The leased ids as sorted, disjoint runs of consecutive integers (first, last).

        Every row whose id lies inside a run is leased, so a scan may jump over the run. One
        lease's ids ascend and `_leased` keeps insertion order: a forwarder's batches come out
        as a few long runs, found in one pass.
        """
        runs: list[tuple[int, int]] = []
        first = last = -2
        for ev_id in self._leased:
            if ev_id == last + 1:
                last = ev_id
                continue
            if last >= 0:
                runs.append((first, last))
            first = last = ev_id
        if last >= 0:
            runs.append((first, last))
        runs.sort()
        merged: list[tuple[int, int]] = []
        for first, last in runs:
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        return merged

    def _remove(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        t = self.totals
        for chunk in _chunks(ids):
            # Aggregates, not `RETURNING` rows: each row fetched is a GIL round trip.
            count, size = conn.execute(
                _sql_in(
                    "SELECT count(*), coalesce(sum(size), 0) FROM events WHERE id IN ({ids})",
                    chunk,
                ),
                chunk,
            ).fetchone()
            conn.execute(_sql_in("DELETE FROM events WHERE id IN ({ids})", chunk), chunk)
            conn.execute(_sql_in("DELETE FROM bodies WHERE id IN ({ids})", chunk), chunk)
            t.events -= count
            t.bytes -= size
            for ev_id in chunk:
                self._leased.pop(ev_id, None)
        self._refresh_oldest(conn)

    def _dead_letter(self, conn: sqlite3.Connection, ids: Sequence[int], reason: str) -> None:
        now = self.clock.time()
        for chunk in _chunks(ids):
            moved = conn.execute(
                _sql_in(
                    "INSERT OR REPLACE INTO dead_letters SELECT e.id, e.received_at, e.attempts, "
                    "e.size, e.crc, coalesce(b.key, x''), coalesce(b.body, x''), ?, ? "
                    "FROM events e LEFT JOIN bodies b ON b.id = e.id WHERE e.id IN ({ids})",
                    chunk,
                ),
                (reason[:2000], now, *chunk),
            ).rowcount
            self.totals.dead += max(moved, 0)
        self._remove(conn, ids)

    def _bury(self, conn: sqlite3.Connection, event: SpooledEvent, reason: str) -> None:
        raw_key = schema.encode_key(event.key)
        known = conn.execute("SELECT 1 FROM dead_letters WHERE id = ?", (event.id,)).fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.received_at, event.attempts, len(event.body),
             schema.checksum(raw_key, event.body), raw_key, event.body, reason[:2000],
             self.clock.time()),
        )  # fmt: skip
        if known is None:
            self.totals.dead += 1

    def _list_dead(self, conn: sqlite3.Connection, limit: int) -> list[tuple[SpooledEvent, str]]:
        out: list[tuple[SpooledEvent, str]] = []
        for ev_id, received_at, attempts, key, body, reason in conn.execute(
            "SELECT id, received_at, attempts, key, body, reason FROM dead_letters "
            "ORDER BY id LIMIT ?", (limit,),
        ):  # fmt: skip
            try:
                event_key = schema.decode_key(key)
            except (ValueError, TypeError):
                event_key = _NO_KEY
            event = SpooledEvent(
                id=ev_id, body=body, key=event_key, received_at=received_at, attempts=attempts
            )
            out.append((event, reason))
        return out

    def _waiting_runs(self, conn: sqlite3.Connection) -> dict[str, float]:
        runs: dict[str, float] = {}
        for retry_at, raw in conn.execute(
            "SELECT e.retry_at, b.key FROM events e JOIN bodies b ON b.id = e.id "
            "WHERE e.retry_at > ?", (self.clock.time(),),
        ):  # fmt: skip
            try:
                run_id = schema.decode_key(raw).run_id
            except (ValueError, TypeError):
                continue  # a damaged key: lease dead-letters that event when it comes due
            if run_id is not None and retry_at > runs.get(run_id, 0.0):
                runs[run_id] = retry_at
        return runs

    def _replay(self, conn: sqlite3.Connection, ids: list[int] | None) -> int:
        if ids is None:
            ids = [row[0] for row in conn.execute("SELECT id FROM dead_letters ORDER BY id")]
        moved = 0
        for chunk in _chunks(ids):
            rows = conn.execute(
                _sql_in(
                    "SELECT id, received_at, size, crc, key, body FROM dead_letters "
                    "WHERE id IN ({ids})",
                    chunk,
                ),
                chunk,
            ).fetchall()
            for ev_id, received_at, size, crc, key, body in rows:
                if schema.checksum(key, body) != crc or len(body) != size:
                    continue  # a damaged body stays where it is: never handed out
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO events (id, received_at, size, crc) VALUES (?, ?, ?, ?)",
                    (ev_id, received_at, size, crc),
                ).rowcount
                if inserted != 1:
                    continue  # already queued (a copy): leave the dead letter as it is
                conn.execute(
                    "INSERT OR REPLACE INTO bodies (id, key, body) VALUES (?, ?, ?)",
                    (ev_id, key, body),
                )
                conn.execute("DELETE FROM dead_letters WHERE id = ?", (ev_id,))
                t = self.totals
                t.events += 1
                t.bytes += size
                t.dead -= 1
                moved += 1
        self._refresh_oldest(conn)
        return moved

    def _quarantine(self, conn: sqlite3.Connection, found: list[tuple[int, str]]) -> None:
        """Dead-letter what the integrity scan found damaged; counted once per record moved
        (one a lease already moved is gone; a leased one was checked when it was leased)."""
        before = self.totals.dead
        for ev_id, reason in found:
            if ev_id not in self._leased:
                self._dead_letter(conn, [ev_id], reason)
        moved = self.totals.dead - before
        if moved:
            self.metrics.spool_corrupt_records.inc(moved)
            log.error("spool: %d event(s) damaged on disk moved to dead letters", moved)

    def _quarantine_orphans(self, conn: sqlite3.Connection, body_ids: list[int]) -> None:
        now = self.clock.time()
        moved = sum(schema.quarantine_orphan(conn, body_id, now) for body_id in body_ids)
        if moved:
            self.totals.dead += moved
            self.metrics.spool_corrupt_records.inc(moved)
            log.error("spool: %d body(ies) without their event moved to dead letters", moved)

    def _scan(
        self, conn: sqlite3.Connection, after_id: int, max_events: int, max_bytes: int
    ) -> list[SpooledEvent]:
        out: list[SpooledEvent] = []
        total = 0
        for ev_id, received_at, attempts, crc, key, body in conn.execute(
            "SELECT e.id, e.received_at, e.attempts, e.crc, b.key, b.body FROM events e "
            "JOIN bodies b ON b.id = e.id WHERE e.id > ? ORDER BY e.id LIMIT ?",
            (after_id, max_events),
        ):
            if out and total + len(body) > max_bytes:
                break
            if schema.checksum(key, body) != crc:
                continue
            try:
                event_key = schema.decode_key(key)
            except (ValueError, TypeError):
                continue
            out.append(SpooledEvent(
                id=ev_id, body=body, key=event_key, received_at=received_at, attempts=attempts
            ))  # fmt: skip
            total += len(body)
        return out

    def _expire(self, conn: sqlite3.Connection) -> int:
        if not self.config.max_age_s or self.totals.oldest is None:
            return 0
        cutoff = self.clock.time() - self.config.max_age_s
        if self.totals.oldest > cutoff:
            return 0
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM events WHERE received_at < ? ORDER BY id", (cutoff,)
        )]  # fmt: skip
        self._remove(conn, ids)
        if ids:
            self.metrics.events_dropped.labels(reason="expired").inc(len(ids))
            log.warning("spool: dropped %d event(s) older than spool.max_age_s = %s",
                        len(ids), self.config.max_age_s)  # fmt: skip
        return len(ids)

    def _refresh_oldest(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT received_at FROM events ORDER BY id LIMIT 1").fetchone()
        self.totals.oldest = None if row is None else float(row[0])

    def _recount(self) -> None:
        conn = self._db()
        events, size = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM events"
        ).fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        self.totals = _Totals(events=int(events), bytes=int(size), dead=int(dead))
        self._refresh_oldest(conn)


# BUSY, LOCKED (contention that outlived busy_timeout), TOOBIG, CONSTRAINT, MISMATCH, RANGE
_LOGIC_CODES: Final = frozenset({5, 6, 18, 19, 20, 25})


def _is_logic_error(exc: BaseException) -> bool:
    """True when retrying on a healthy disk would fail the same way: a bug to report, no
    reason to stop the relay. Anything else from SQLite (I/O, corruption, unknown) stops it."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _LOGIC_CODES


# One page of lease candidates as ONE row (a JSON array): every row a cursor steps through costs
# a GIL round trip with the busy event loop, more than the row itself.
_LEASE_PAGE_SQL: Final = (
    "SELECT json_group_array(json_array(id, CAST(received_at * 1000000 AS INTEGER), attempts, "
    "size, crc)) FROM (SELECT id, received_at, attempts, size, crc FROM events "
    "WHERE id > ? AND id < ? AND retry_at <= ? ORDER BY id LIMIT ?)"
)
_NO_ID_ABOVE: Final = 2**63 - 1  # SQLite's largest rowid: "no upper bound" for the page scan

_NO_FUTURE: Final[Any] = object()
_NO_KEY: Final = EventKey(kind="run", event_time="", producer="")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_all(
    answers: Sequence[tuple[asyncio.Future[Any], Any, BaseException | None]],
) -> None:
    for future, result, error in answers:
        _settle(future, result, error)


def _file_bytes(directory: Path) -> int:
    """Bytes of the database and its WAL in `directory` (0 when there is none yet)."""
    total = 0
    for name in (schema.DB_NAME, schema.DB_NAME + "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += (directory / name).stat().st_size
    return total


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]


@functools.lru_cache(maxsize=128)
def _insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?)"] * rows)
    return "INSERT INTO incoming VALUES " + values  # noqa: S608 -- placeholders only


def _sql_in(template: str, chunk: Sequence[int]) -> str:
    """`template` with `{ids}` replaced by one "?" placeholder per id (never the ids)."""
    return template.replace("{ids}", ",".join("?" * len(chunk)))
