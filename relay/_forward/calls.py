"""One call of the forwarder: a batch sent through the sink, a whole-batch refusal split in
halves until the refused events are isolated, each event's outcome settled in the spool (ack,
retry with backoff, dead letter), and the call's outcome recorded (breaker, health, metrics)."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._clock import Clock
from .._config import OpenMetadataConfig
from .._events import SpooledEvent
from .._exceptions import (
    AuthError,
    PermanentSinkError,
    RetriableSinkError,
    SinkSetupError,
    SpoolError,
    SpoolFailure,
)
from .._observe.metrics import Metrics
from .._sinks.base import EventResult, Outcome, Sink
from .batching import BatchPlanner
from .breaker import CircuitBreaker, Permit
from .retry import Backoff, RetryBudget

__all__ = ["CallOps", "SpoolLike"]

log = logging.getLogger("relay._forward.forwarder")  # one logger for the forwarder's lines


class SpoolLike(Protocol):
    """What the forwarder uses of `relay._spool.Spool`."""

    async def lease(
        self, *, max_events: int, max_bytes: int, lease_s: float
    ) -> list[SpooledEvent]: ...

    async def ack(self, ids: Sequence[int]) -> None: ...

    async def schedule_retry(
        self, ids: Sequence[int], when: float, error: str, *, count_attempt: bool = True
    ) -> None: ...

    async def waiting_runs(self) -> dict[str, float]: ...

    async def move_to_dead_letters(self, ids: Sequence[int], reason: str) -> None: ...

    async def release(self, ids: Sequence[int]) -> None: ...

    async def wait_for_events(self, timeout_s: float) -> None: ...


@dataclass(slots=True)
class _CallFailure:
    error: Exception
    retry_after_s: float | None


class CallOps(abc.ABC):
    """The calls' side of `Forwarder` (which sets up every attribute declared here)."""

    _spool: SpoolLike
    _sink: Sink
    _om: OpenMetadataConfig
    _metrics: Metrics
    _clock: Clock
    _rand: Callable[[], float]
    _on_spool_failure: Callable[[BaseException], None] | None
    _backoff: Backoff
    _budget: RetryBudget
    _planner: BatchPlanner
    _wakeup: asyncio.Event
    breaker: CircuitBreaker
    _tasks: set[asyncio.Task[None]]
    _calls_in_flight: int
    _closing: bool
    _throttle_until: float
    calls: int
    retry_calls: int
    last_success_at: float | None
    last_error: str
    last_error_at: float | None
    setup_problem: str

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def _call_succeeded(self, permit: Permit) -> None: ...

    @abc.abstractmethod
    def _note_retry_due(self, when: float) -> None: ...

    def _launch(self, events: list[SpooledEvent], permit: Permit) -> None:
        is_retry = self._planner.is_retry(events)
        self._planner.dispatched(events)
        self.calls += 1
        if is_retry:
            self.retry_calls += 1
            self._metrics.retries.inc()
        else:
            self._budget.record_first_attempt()
        self._calls_in_flight += 1
        task = asyncio.create_task(self._deliver(events, permit), name="forwarder-send")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wakeup.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("a forwarder send task failed", exc_info=task.exception())

    async def _deliver(self, events: list[SpooledEvent], permit: Permit) -> None:
        retry_at: dict[int, float] = {}
        outstanding: Permit | None = permit
        try:
            try:
                results, failure = await self._send_isolating(events)
            finally:
                # The HTTP call is over: its pool slot is free while the spool records it.
                self._calls_in_flight -= 1
                self._wakeup.set()
            if failure is None:
                self._call_succeeded(permit)
            else:
                self.breaker.record_failure(permit)
            outstanding = None
            retry_at = await self._settle(events, results, failure)
        except asyncio.CancelledError:
            # Shutdown mid-call: the call may or may not have landed; resend after restart.
            if outstanding is not None:
                self.breaker.abandon(outstanding)
            await asyncio.shield(
                self._safe(self._spool.release([e.id for e in events]), "release a batch")
            )
            raise
        except SpoolError as exc:
            self._spool_failed(exc)
        except Exception as exc:  # a bug: never lose the events, try them again later
            log.exception("delivering a batch of %d events failed unexpectedly", len(events))
            if outstanding is not None:
                self.breaker.abandon(outstanding)
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_error_at = self._clock.time()
            when = self._clock.time() + self._backoff.delay_s(
                max(e.attempts for e in events), self._rand
            )
            await self._safe(
                self._spool.schedule_retry([e.id for e in events], when, self.last_error),
                "schedule a batch again",
            )
            self._note_retry_due(when)
            retry_at = {e.id: when for e in events}
        finally:
            self._planner.finished(events, retry_at=retry_at)

    async def _send_isolating(
        self, events: Sequence[SpooledEvent]
    ) -> tuple[list[EventResult], _CallFailure | None]:
        """Send; on a whole-batch permanent refusal split in halves to find the culprits."""
        try:
            results = list(await self._sink.send(events))
        except PermanentSinkError as exc:
            if len(events) == 1:
                return [EventResult.permanent(exc.reason)], None
            half = len(events) // 2
            left, failure = await self._send_isolating(events[:half])
            if failure is not None:
                rest = [EventResult.retriable(str(failure.error))] * (len(events) - half)
                return left + rest, failure
            right, failure = await self._send_isolating(events[half:])
            return left + right, failure
        except (RetriableSinkError, AuthError) as exc:
            retry_after = exc.retry_after_s if isinstance(exc, RetriableSinkError) else None
            return [EventResult.retriable(str(exc))] * len(events), _CallFailure(exc, retry_after)
        if len(results) != len(events):
            error = RetriableSinkError(
                f"sink {self._sink.name!r} answered {len(results)} results for {len(events)} events"
            )
            return [EventResult.retriable(str(error))] * len(events), _CallFailure(error, None)
        return results, None

    async def _settle(
        self,
        events: Sequence[SpooledEvent],
        results: Sequence[EventResult],
        failure: _CallFailure | None,
    ) -> dict[int, float]:
        """Ack, retry or dead-letter each event by its result; returns the retry times."""
        delivered: list[int] = []
        retriable: list[tuple[SpooledEvent, str]] = []
        permanent: dict[str, list[int]] = defaultdict(list)
        for event, result in zip(events, results, strict=True):
            if result.outcome is Outcome.DELIVERED:
                delivered.append(event.id)
            elif result.outcome is Outcome.RETRIABLE:
                retriable.append((event, result.reason))
            else:
                permanent[result.reason or "refused by OpenMetadata"].append(event.id)

        now = self._clock.time()
        if delivered:
            await self._spool.ack(delivered)
            self._metrics.events_sent.inc(len(delivered))
        retry_at: dict[int, float] = {}
        if retriable:
            limit = self._om.retry_attempts
            exhausted = [(e, r) for e, r in retriable if limit and e.attempts + 1 > limit]
            for event, reason in exhausted:
                permanent[f"gave up after {event.attempts + 1} attempts: {reason}"].append(event.id)
            keep = [e for e, _ in retriable if not (limit and e.attempts + 1 > limit)]
            if keep:
                retry_after = failure.retry_after_s if failure is not None else None
                if retry_after is not None:
                    when = now + retry_after
                    self._throttle_until = max(
                        self._throttle_until, self._clock.monotonic() + retry_after
                    )
                else:
                    attempts = max(e.attempts for e in keep)
                    when = now + self._backoff.delay_s(attempts, self._rand)
                error = retriable[0][1]
                await self._spool.schedule_retry([e.id for e in keep], when, error)
                self._note_retry_due(when)
                retry_at = {e.id: when for e in keep}
        for reason, ids in permanent.items():
            await self._spool.move_to_dead_letters(ids, reason)
            self._metrics.events_dead_lettered.labels(_reason_label(reason)).inc(len(ids))

        self._record_call(events, delivered, retry_at, permanent, failure)
        return retry_at

    def _record_call(
        self,
        events: Sequence[SpooledEvent],
        delivered: list[int],
        retry_at: dict[int, float],
        permanent: dict[str, list[int]],
        failure: _CallFailure | None,
    ) -> None:
        dead = sum(len(ids) for ids in permanent.values())
        if len(delivered) == len(events):
            result = "delivered"
        elif len(retry_at) == len(events):
            result = "retry"
        elif dead == len(events):
            result = "dead_letter"
        else:
            result = "partial"
        self._metrics.forward_batches.labels(result).inc()
        now = self._clock.time()
        if failure is None:
            self.last_success_at = now
            if self.setup_problem:
                log.info("OpenMetadata accepts calls again; the setup problem is solved")
            self.setup_problem = ""
        else:
            self.last_error = str(failure.error)
            self.last_error_at = now
            if isinstance(failure.error, SinkSetupError | AuthError):
                if str(failure.error) != self.setup_problem:
                    log.error("%s", failure.error)
                self.setup_problem = str(failure.error)
        level = logging.DEBUG if result == "delivered" else logging.WARNING
        if log.isEnabledFor(level):
            log.log(
                level,
                "batch: %d events, %d delivered, %d to retry, %d dead-lettered%s",
                len(events), len(delivered), len(retry_at), dead,
                f" ({failure.error})" if failure is not None else "",
            )  # fmt: skip
        for reason, ids in permanent.items():
            log.warning("dead-lettered %d events: %s", len(ids), reason)

    def _spool_failed(self, exc: SpoolError) -> None:
        """The spool cannot record outcomes any more: stop forwarding, tell the relay."""
        if not self._closing:
            log.error("forwarding stops: the spool failed: %s", exc)
        self.last_error = f"spool: {exc}"
        self.last_error_at = self._clock.time()
        self.close()
        if self._on_spool_failure is not None and isinstance(exc, SpoolFailure):
            self._on_spool_failure(exc)

    async def _safe(self, coro: Any, what: str) -> None:
        try:
            await coro
        except Exception:  # shutdown paths: log, never mask the original exit
            log.exception("could not %s", what)


def _reason_label(reason: str) -> str:
    """A bounded metrics label from a dead-letter reason (the full text goes to the spool)."""
    if reason.startswith("gave up after"):
        return "retries_exhausted"
    if reason.startswith("HTTP ") and reason[5:8].isdigit():
        return f"http_{reason[5:8]}"
    return "refused"
