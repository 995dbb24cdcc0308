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
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

from .._clock import Clock, SystemClock
from .._config import SpoolConfig
from .._events import EventKey, SpooledEvent
from .._exceptions import SpoolError, SpoolFailure, SpoolFull
from .._observe.metrics import Metrics
from . import schema
from .integrity import IntegrityScan
from .requests import (
    STOP,
    Ack,
    Append,
    Bury,
    Expire,
    Lease,
    ListDeadLetters,
    MoveToDeadLetters,
    Release,
    Replay,
    Request,
    Scan,
    ScheduleRetry,
    WaitingRuns,
)
from .state import SpoolStats
from .worker import Worker

__all__ = ["Spool", "SpoolStats"]

log = logging.getLogger(__name__)

_PRIVATE: Final = object()


class Spool:
    """Durable queue of raw event bytes in `config.dir`. Use `await Spool.open(...)`."""

    def __init__(self, *, _token: object, config: SpoolConfig, metrics: Metrics,
                 worker: Worker) -> None:  # fmt: skip
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
        self._register_gauges()

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
        worker = Worker(config, clock, metrics, loop, opened, before_commit, scan_gate)
        worker.thread.start()
        try:
            await asyncio.shield(opened)
        except asyncio.CancelledError:
            # Recovery goes on in the thread; once done it closes again and frees the lock.
            worker.requests.put(STOP)
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
            ids: list[int] = await self._call(Append(list(items)))
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
        events: list[SpooledEvent] = await self._call(Lease(max_events, max_bytes, lease_s))
        return events

    async def ack(self, ids: Sequence[int]) -> None:
        """Delivered: delete for good (unknown ids are ignored)."""
        await self._call_ids(ids, Ack)

    async def schedule_retry(
        self, ids: Sequence[int], when: float, error: str, *, count_attempt: bool = True
    ) -> None:
        """Not delivered yet: release the lease, available again at epoch `when`; attempts += 1
        unless `count_attempt` is False (held back unsent, e.g. behind an earlier event of its
        run: that is no attempt, and must not bring `retry_attempts` closer)."""
        step = 1 if count_attempt else 0
        await self._call_ids(ids, lambda chosen: ScheduleRetry(chosen, when, error, step))

    async def waiting_runs(self) -> dict[str, float]:
        """Run id -> latest retry time of that run's pending events not due yet.

        A forwarder starting on an existing spool reads this once: a run whose earlier event
        waits for its retry must not have a later event sent first (per-run order survives
        a restart). One scan of the narrow events table, plus the keys of waiting events."""
        self._check_usable()
        runs: dict[str, float] = await self._call(WaitingRuns())
        return runs

    async def move_to_dead_letters(self, ids: Sequence[int], reason: str) -> None:
        """Permanently refused: move to the dead-letter table with the reason."""
        await self._call_ids(ids, lambda chosen: MoveToDeadLetters(chosen, reason))

    async def bury(self, event: SpooledEvent, reason: str) -> None:
        """Put an event that was delivered (acknowledged, gone from the queue) straight into
        the dead letters: a sink gave up on work it had taken on (the rest sink's parked
        edges). It keeps its id, so a replay queues it again; never leased in between."""
        self._check_usable()
        await self._call(Bury(event, reason))

    async def release(self, ids: Sequence[int]) -> None:
        """Give leased events back untouched (available again at once)."""
        await self._call_ids(ids, Release)
        self._wake()

    async def list_dead_letters(self, limit: int = 100) -> list[tuple[SpooledEvent, str]]:
        """The oldest `limit` dead letters with their reasons."""
        self._check_usable()
        rows: list[tuple[SpooledEvent, str]] = await self._call(ListDeadLetters(limit))
        return rows

    async def replay_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Move dead letters (all, or those `ids`) back into the queue with their original ids,
        attempts reset, available at once; returns how many moved."""
        self._check_usable()
        moved: int = await self._call(Replay(None if ids is None else list(ids)))
        self._wake()
        return moved

    async def expire(self) -> int:
        """Drop pending events older than spool.max_age_s now (the spool also does this about
        once a second by itself); returns how many were dropped."""
        self._check_usable()
        dropped: int = await self._call(Expire())
        return dropped

    async def scan(self, *, after_id: int, max_events: int, max_bytes: int) -> list[SpooledEvent]:
        """Pending events with ids above `after_id`, in id order, whether leased or due or not
        (the shutdown offload reads everything left this way); at least one when any is left,
        then up to `max_events` / `max_bytes`. A damaged event is skipped (a lease would
        dead-letter it)."""
        self._check_usable()
        events: list[SpooledEvent] = await self._call(Scan(after_id, max_events, max_bytes))
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
            self._worker.requests.put(STOP)
        closing = self._closing
        while not closing.done() and self._worker.thread.is_alive():
            # The thread answers when it is done; a thread that died (a bug) never will.
            await asyncio.wait([closing], timeout=0.1)
        await asyncio.to_thread(self._worker.thread.join)
        self._metrics.spool_oldest_age.set_function(lambda: 0.0)  # nothing waits in a closed spool

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

    async def _call_ids(self, ids: Sequence[int], make: Callable[[list[int]], Request]) -> None:
        self._check_usable()
        if ids:
            await self._call(make(list(ids)))

    async def _call(self, request: Request) -> Any:
        if self._worker.gone:  # a flag: Thread.is_alive() takes a lock, on every request
            raise SpoolFailure(f"the spool's I/O thread for {self._config.dir} is gone")
        request.future = self._loop.create_future()
        self._worker.requests.put(request)
        return await request.future

    def _deliver(
        self, answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
        stats: SpoolStats, appended: bool,
    ) -> None:  # fmt: skip
        """On the loop: keep the batch's stats (the gauges read them), then answer its callers."""
        self._stats = stats
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

    def _register_gauges(self) -> None:
        # Read when scraped, from the last commit's stats: setting four gauges after every
        # commit cost more than the commit's own bookkeeping, for values nobody read.
        m = self._metrics
        m.spool_events.set_function(lambda: self._stats.events)
        m.spool_bytes.set_function(lambda: self._stats.bytes)
        m.dead_letters_held.set_function(lambda: self._stats.dead_letters)
        m.spool_oldest_age.set_function(self._oldest_age)

    def _oldest_age(self) -> float:
        oldest = self._stats.oldest_received_at
        return 0.0 if oldest is None else max(0.0, self._worker.clock.time() - oldest)
