"""The forwarder: spool -> batches -> sink, until every event is delivered or refused.

    lease -> plan (per-run order, duplicates) -> breaker permit -> send -> ack
                                                                     | schedule_retry (backoff)
                                                                     | move_to_dead_letters

One dispatcher task (here) leases and plans; up to `connection_pool_size` send tasks
(`calls.py`: send, isolate, settle, record) run at once.
The forwarder gives up on an event only when `retry_attempts` is set and spent; age is the
spool's business (`spool.max_age_s`, off by default, drops what waited longer).

- Retriable failures (connection, timeout, 408, 429, 5xx, 401 after a token re-fetch)
  schedule the events again with exponential backoff and full jitter, or the server's
  `Retry-After` (capped), which also pauses every new call that long.
- Setup failures (403, the native endpoint missing, redirects) keep the events too, and
  turn `/health` degraded with a log line that says what to fix.
- A whole-batch permanent refusal (4xx) is split in halves until the refused events are
  isolated: only those are dead-lettered, the rest of the batch is delivered.
- A batch answer with per-event results is split: acked, retried, dead-lettered.
- The breaker sees each call's outcome; while it is open nothing is leased or sent, except
  the single half-open probe. The retry budget keeps retried calls near 20% of calls.
- After the breaker closes, the calls in flight ramp up 2, 4, 8, ... to the pool size (one
  more per successful call, so the limit doubles each round of calls): a server just back is
  not hit by the whole pool at once.
- Per-run order holds across restarts: at start the runs with an event waiting for its retry
  are read from the spool, and their later events wait with it. Events held back for their
  run's sake are rescheduled without counting an attempt (they were not sent).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from .._clock import Clock, SystemClock, first_of
from .._config import BreakerConfig, ForwarderConfig, OpenMetadataConfig
from .._events import SpooledEvent
from .._exceptions import (
    SpoolError,
)
from .._observe.metrics import Metrics
from .._sinks.base import Sink
from .batching import BatchPlanner
from .breaker import BreakerState, CircuitBreaker, Permit
from .calls import CallOps, SpoolLike
from .retry import Backoff, RetryBudget

__all__ = ["Forwarder", "SpoolLike"]

log = logging.getLogger(__name__)

_IDLE_POLL_S = 1.0  # how often an idle forwarder looks for retries that came due
_MIN_WAIT_S = 0.005
# The clock ends the forwarder's waits (a fake one in tests, moved by hand); the time-out
# given to the spool's `wait_for_events` is only a backstop, so real seconds end no wait.
_SPOOL_WAIT_S = 3600.0


class Forwarder(CallOps):
    """Delivers spooled events through a `Sink`; `start()`, then `aclose()` to stop.

    Stopping has three steps, which `aclose()` runs in order: `close()` stops taking new
    work, `join(wait_s)` waits for the calls in flight, `terminate()` cancels what is left
    and hands every leased event back to the spool.
    """

    def __init__(
        self,
        spool: SpoolLike,
        sink: Sink,
        *,
        forwarder: ForwarderConfig,
        openmetadata: OpenMetadataConfig,
        breaker: BreakerConfig,
        metrics: Metrics,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
        on_spool_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._spool = spool
        self._sink = sink
        self._config = forwarder
        self._om = openmetadata
        self._metrics = metrics
        self._clock = clock if clock is not None else SystemClock()
        self._rand = rand
        self._on_spool_failure = on_spool_failure
        self._pool = openmetadata.connection_pool_size
        self._limit = self._pool  # calls in flight allowed now: ramps up after an outage
        self._backoff = Backoff(
            base_s=openmetadata.retry_delay_ms / 1000, cap_s=openmetadata.retry_max_delay_ms / 1000
        )
        self._budget = RetryBudget(ratio=forwarder.retry_budget_ratio, clock=self._clock)
        self._planner = BatchPlanner(
            max_events=forwarder.max_batch_events, max_bytes=forwarder.max_batch_bytes
        )
        self._wakeup = asyncio.Event()
        self.breaker = CircuitBreaker(
            breaker,
            clock=self._clock,
            gauge=metrics.circuit_state,
            on_change=self._breaker_changed,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._calls_in_flight = 0
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._throttle_until = 0.0  # monotonic: Retry-After pauses every call
        self._next_retry_due: float | None = None  # epoch: earliest retry we scheduled
        # What /health reports.
        self.calls = 0
        self.retry_calls = 0
        self.last_success_at: float | None = None
        self.last_error: str = ""
        self.last_error_at: float | None = None
        self.setup_problem: str = ""

    # -- lifecycle -------------------------------------------------------------------

    @property
    def sink(self) -> Sink:
        return self._sink

    async def start(self) -> None:
        if self._closed or self._closing:
            raise RuntimeError("a closed Forwarder cannot be restarted; make a new one")
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._run(), name="forwarder-dispatch")

    def close(self) -> None:
        """Stop leasing and sending new batches; calls in flight finish on their own."""
        self._closing = True
        self._wakeup.set()

    async def join(self, wait_s: float | None = None) -> bool:
        """Wait up to `wait_s` for the dispatcher and the calls in flight; False on time-out."""
        pending: set[asyncio.Task[None]] = set(self._tasks)
        if self._dispatcher is not None:
            pending.add(self._dispatcher)
        if not pending:
            return True
        await first_of(self._clock, wait_s, asyncio.wait(pending))
        return all(task.done() for task in pending) and not self._tasks

    async def terminate(self) -> None:
        """Cancel whatever is still running and give every held event back to the spool."""
        self._closing = True
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        parked = self._planner.take_parked()
        if parked:
            await self._safe(self._spool.release([e.id for e in parked]), "release parked events")

    async def aclose(self, wait_s: float = 10.0) -> None:
        """Graceful stop: close, wait up to `wait_s` for calls in flight, then terminate."""
        if self._closed:
            return
        self.close()
        try:
            await self.join(wait_s)
        finally:
            await asyncio.shield(self.terminate())
            self._closed = True

    # -- the dispatcher --------------------------------------------------------------

    async def _run(self) -> None:
        try:
            # Runs whose events wait for a retry since before a restart keep their later
            # events behind them, as they would have in the process that scheduled them.
            for run, until in (await self._spool.waiting_runs()).items():
                self._planner.block(run, until)
                self._note_retry_due(until)
            while not self._closing:
                delay = self._must_wait()
                if delay is not None:
                    await self._sleep(delay)
                    continue
                plan_events = await self._next_batch()
                if plan_events is None or self._stopping():
                    if plan_events:
                        self._planner.unplan(plan_events)
                    continue
                permit = self.breaker.acquire()
                if permit is None:  # opened while we leased: hold the batch for later
                    self._planner.unplan(plan_events)
                    continue
                self._launch(plan_events, permit)
        except asyncio.CancelledError:
            raise
        except SpoolError as exc:
            self._spool_failed(exc)
        except Exception:  # a bug here must not end delivery silently: log and let health show it
            log.exception("forwarder dispatcher stopped by an unexpected error")
            self.last_error = "forwarder dispatcher crashed (see the log)"
            self.last_error_at = self._clock.time()
            raise

    def _stopping(self) -> bool:
        return self._closing

    def _must_wait(self) -> float | None:
        """None when a call may be prepared now; else seconds to wait (inf: until woken)."""
        # Up to `pool` HTTP calls at once, and as many batches being recorded in the spool.
        if self._calls_in_flight >= self._limit or len(self._tasks) >= 2 * self._pool:
            return float("inf")
        now = self._clock.monotonic()
        if self._throttle_until > now:
            return self._throttle_until - now
        ready = self.breaker.ready_in_s()
        if ready is None:
            return float("inf")
        if ready > 0:
            return ready
        return None

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds` or until something changes (a call ended, the breaker moved)."""
        self._wakeup.clear()
        if self._closing:
            return
        timeout = None if seconds == float("inf") else max(seconds, _MIN_WAIT_S)
        await first_of(self._clock, timeout, self._wakeup.wait())

    async def _next_batch(self) -> list[SpooledEvent] | None:
        """The events of the next call (None: nothing to send now; we waited a little).

        A batch goes out when full, or `linger_ms` after its oldest event was received: a
        backlog leaves at once in full batches, a trickle is grouped for a moment.
        """
        config = self._config
        linger_until: float | None = None
        while True:
            room = config.max_batch_events - len(self._planner.parked)
            leased: list[SpooledEvent] = []
            # The time before the lease: a run blocked until T is freed only if the lease
            # looked at T or later, so its retried event (due at T) is among the leased ones.
            now = self._clock.time()
            if room > 0:
                leased = await self._spool.lease(
                    max_events=room, max_bytes=config.max_batch_bytes, lease_s=config.lease_s
                )
            if not leased and not self._planner.has_sendable_parked(now):
                await self._wait_for_events(self._idle_wait_s(linger_until))
                return None
            plan = self._planner.plan(
                leased, now=now, allow_retry=self._allow_retry, defer_retry=self._defer_retry
            )
            await self._apply_plan_side_effects(plan.duplicates, plan.deferred)
            send = plan.send
            if not send:
                return None
            full = (
                len(send) >= config.max_batch_events
                or plan.send_bytes >= config.max_batch_bytes
                or len(self._planner.parked) > 0  # more is waiting: no point lingering
            )
            if full or config.linger_ms <= 0 or self._closing:
                return send
            if linger_until is None:
                linger_until = min(e.received_at for e in send) + config.linger_ms / 1000
            remaining = linger_until - self._clock.time()
            if remaining <= 0:
                return send
            # Hold the planned events while more may join them.
            self._planner.unplan(send)
            await self._wait_for_events(remaining)
            if self._stopping():
                return None

    async def _wait_for_events(self, timeout_s: float) -> None:
        """Until an append, a wakeup (a run freed, the breaker moved) or the timeout."""
        self._wakeup.clear()
        if self._closing:
            return
        await first_of(
            self._clock, timeout_s, self._spool.wait_for_events(_SPOOL_WAIT_S), self._wakeup.wait()
        )

    def _idle_wait_s(self, linger_until: float | None = None) -> float:
        if linger_until is not None:
            return max(_MIN_WAIT_S, linger_until - self._clock.time())
        if self._next_retry_due is None:
            return _IDLE_POLL_S
        due_in = self._next_retry_due - self._clock.time()
        if due_in <= 0:
            self._next_retry_due = None
            return _MIN_WAIT_S
        return min(_IDLE_POLL_S, max(due_in, _MIN_WAIT_S))

    def _allow_retry(self) -> bool:
        return self.breaker.state is not BreakerState.CLOSED or self._budget.try_retry()

    def _defer_retry(self, event: SpooledEvent) -> float:
        """A retry the budget refused goes back until the budget has a token again, and no
        sooner than its backoff (a deferral is not an attempt: the backoff stays that of the
        calls that really failed)."""
        delay = max(self._budget.wait_s(), self._backoff.delay_s(event.attempts, self._rand))
        return self._clock.time() + min(delay, self._backoff.cap_s)

    def _breaker_changed(self, state: BreakerState) -> None:
        if state is BreakerState.CLOSED:
            # A probe just proved OpenMetadata healthy: what failed during the outage is now
            # ordinary backlog, not retries against a struggling server, so the budget (which
            # guards against retry storms) no longer holds it back.
            self._planner.forget_failures()
            # One call worked; the whole pool with a backlog behind it may not yet: ramp up.
            self._limit = min(2, self._pool)
        self._wakeup.set()

    def _call_succeeded(self, permit: Permit) -> None:
        self.breaker.record_success(permit)
        if not permit.probe and self._limit < self._pool:
            self._limit += 1  # as TCP slow start: one more per success doubles it each round
            self._wakeup.set()

    async def _apply_plan_side_effects(
        self,
        duplicates: Sequence[SpooledEvent],
        deferred: Sequence[tuple[SpooledEvent, float, str]],
    ) -> None:
        if duplicates:
            await self._spool.ack([e.id for e in duplicates])
            self._metrics.events_dropped.labels("duplicate").inc(len(duplicates))
            log.debug("dropped %d duplicate events", len(duplicates))
        groups: dict[tuple[float, str], list[int]] = defaultdict(list)
        for event, when, why in deferred:
            groups[(when, why)].append(event.id)
        for (when, why), ids in groups.items():
            # Held back, not sent: no attempt counts against `retry_attempts`.
            await self._spool.schedule_retry(ids, when, why, count_attempt=False)
            self._note_retry_due(when)

    def _note_retry_due(self, when: float) -> None:
        if self._next_retry_due is None or when < self._next_retry_due:
            self._next_retry_due = when

    # -- health ----------------------------------------------------------------------

    def health_openmetadata(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details) of the link to OpenMetadata."""
        details: dict[str, Any] = {
            "sink": self._sink.name,
            "last_success": _iso(self.last_success_at),
            "last_error": self.last_error or None,
            "last_error_at": _iso(self.last_error_at),
            "calls": self.calls,
            "retry_calls": self.retry_calls,
        }
        if self.setup_problem:
            details["problem"] = self.setup_problem
        return not self.setup_problem, details

    def health_breaker(self) -> tuple[bool, dict[str, Any]]:
        state = self.breaker.state
        return state is BreakerState.CLOSED, {
            "state": state.name.lower().replace("_", "-"),
            "times_opened": self.breaker.opened_count,
            "last_opened": _iso(self.breaker.last_opened_at),
            "recovery_timeout_s": self.breaker.recovery_timeout_s,
            "in_flight_limit": self._limit,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")
