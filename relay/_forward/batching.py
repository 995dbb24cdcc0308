"""Which leased events go out in the next call: per-run order and duplicate removal.

Rules, for each event in arrival (spool id) order:

- an exact duplicate (same run, event type, event time and body hash) of an event that is
  in flight, waiting or recently delivered is acknowledged without being sent; a bounded
  cache of recent keys catches duplicates across batches, not only within one;
- an event whose run has an earlier event in flight in another call waits in memory
  (parked) until that call ends: a run's events never travel in two concurrent calls;
- an event whose run has an earlier event scheduled for retry is scheduled for the same
  moment, so both come back together, in order (in the spool, not parked: only the spool
  hands the earlier event back, so a parked later one could overtake it);
- the events of one run in one batch keep their order within the `{"events": [...]}` array.

Pure bookkeeping: no I/O, no clock; the forwarder passes the time in.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .._events import EventKey, SpooledEvent

__all__ = ["BatchPlanner", "Plan", "dedupe_key"]

DEFAULT_RECENT_KEYS = 100_000
_BUSY = "\x00busy"  # not a run id: a run id never holds NUL


def _event_id(event: SpooledEvent) -> int:
    return event.id


def dedupe_key(key: EventKey) -> bytes:
    """A compact identity for exact duplicates; 16 bytes keep a large cache small."""
    owner = key.run_id or f"{key.kind}:{key.job_namespace or ''}/{key.job_name or ''}"
    text = "\x1f".join((owner, key.event_type or "", key.event_time, key.body_hash))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(slots=True)
class Plan:
    """The outcome of planning: what to send now, what to drop, what to defer."""

    send: list[SpooledEvent] = field(default_factory=list)
    duplicates: list[SpooledEvent] = field(default_factory=list)
    deferred: list[tuple[SpooledEvent, float, str]] = field(default_factory=list)
    send_bytes: int = 0


class BatchPlanner:
    """Holds the forwarder's in-memory view of runs in flight, parked and blocked events."""

    def __init__(
        self, *, max_events: int, max_bytes: int, recent_keys: int = DEFAULT_RECENT_KEYS
    ) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._recent_limit = recent_keys
        self._recent: OrderedDict[bytes, int] = OrderedDict()
        self._busy_runs: Counter[str] = Counter()
        self._blocked: dict[str, float] = {}
        self._parked: list[SpooledEvent] = []
        # Parked behind a call that then failed: deferred with it by the next `plan`.
        self._held_back: list[SpooledEvent] = []
        self._held: set[int] = set()  # ids in flight or parked
        self._failed: set[int] = set()  # ids whose last call failed: their next call is a retry

    @property
    def parked(self) -> Sequence[SpooledEvent]:
        return self._parked

    def is_retry(self, events: Sequence[SpooledEvent]) -> bool:
        """Whether a call for `events` re-sends something whose last call failed."""
        return any(e.id in self._failed for e in events)

    def forget_failures(self) -> None:
        """Treat every earlier failure as settled (the breaker closed after an outage)."""
        self._failed.clear()

    def has_sendable_parked(self, now: float) -> bool:
        """Whether `plan` has work without a lease: parked events to send or to defer."""
        return bool(self._held_back) or any(self._may_go(e, now) is None for e in self._parked)

    def plan(
        self,
        leased: Iterable[SpooledEvent],
        *,
        now: float,
        allow_retry: Callable[[], bool] | None = None,
        defer_retry: Callable[[SpooledEvent], float] | None = None,
    ) -> Plan:
        """Plan the next call from the parked events (first) and the newly leased ones.

        `allow_retry` is asked once, when the first previously failed event would be sent
        (the retry budget); if it refuses, failed events are deferred to `defer_retry(e)`
        and their runs wait with them.
        """
        plan = Plan()
        for event in self._held_back:
            run = event.key.run_id
            when = self._blocked.get(run, now) if run is not None else now
            plan.deferred.append((event, when, "waiting for an earlier event of the same run"))
            self._held.discard(event.id)
        self._held_back = []
        carry, self._parked = self._parked, []
        full = False
        retry_allowed: bool | None = None
        # Retries that came due can be older than parked events: id order is arrival order.
        for event in sorted((*carry, *self._fresh(leased)), key=_event_id):
            key = dedupe_key(event.key)
            seen = self._recent.get(key)
            if seen is not None and seen != event.id:
                plan.duplicates.append(event)
                self._held.discard(event.id)
                continue
            self._remember(key, event.id)
            run = event.key.run_id
            wait = self._may_go(event, now)
            if wait is not None and wait != _BUSY:  # blocked: to the spool, even if full
                plan.deferred.append((event, self._blocked[wait], "waiting for an earlier event "
                                      "of the same run"))  # fmt: skip
                self._held.discard(event.id)
                continue
            if wait == _BUSY or full:
                self._park(event)
                continue
            if event.id in self._failed:
                if retry_allowed is None:
                    retry_allowed = allow_retry() if allow_retry is not None else True
                if not retry_allowed:
                    when = defer_retry(event) if defer_retry is not None else now
                    plan.deferred.append((event, when, "deferred by the retry budget"))
                    self._held.discard(event.id)
                    if run is not None:
                        self._blocked[run] = max(self._blocked.get(run, 0.0), when)
                    continue
            size = len(event.body)
            if plan.send and (
                len(plan.send) >= self.max_events or plan.send_bytes + size > self.max_bytes
            ):
                full = True  # everything after this waits: no later event may overtake
                self._park(event)
                continue
            plan.send.append(event)
            plan.send_bytes += size
            self._held.add(event.id)
        return plan

    def _fresh(self, leased: Iterable[SpooledEvent]) -> Iterable[SpooledEvent]:
        for event in leased:
            # A lease that expired while we still hold the event hands it out again: skip it.
            if event.id not in self._held:
                yield event

    def _may_go(self, event: SpooledEvent, now: float) -> str | None:
        """None when the event may be sent now; _BUSY or the blocked run's id otherwise."""
        run = event.key.run_id
        if run is None:
            return None
        if self._busy_runs.get(run, 0) > 0:
            return _BUSY
        until = self._blocked.get(run)
        if until is None:
            return None
        if until <= now:
            del self._blocked[run]
            return None
        return run

    def _park(self, event: SpooledEvent) -> None:
        self._parked.append(event)
        self._held.add(event.id)

    def _remember(self, key: bytes, event_id: int) -> None:
        self._recent[key] = event_id
        self._recent.move_to_end(key)
        while len(self._recent) > self._recent_limit:
            self._recent.popitem(last=False)

    def dispatched(self, events: Sequence[SpooledEvent]) -> None:
        """The events went into a call: their runs are busy until `finished`."""
        for run in {e.key.run_id for e in events if e.key.run_id is not None}:
            self._busy_runs[run] += 1

    def unplan(self, events: Sequence[SpooledEvent]) -> None:
        """A planned batch was not sent after all (breaker closed the door): park it again."""
        self._parked[:0] = events

    def finished(
        self,
        events: Sequence[SpooledEvent],
        *,
        retry_at: dict[int, float] | None = None,
    ) -> None:
        """The call for `events` ended; `retry_at` maps the ids scheduled again to their time."""
        for run in {e.key.run_id for e in events if e.key.run_id is not None}:
            self._busy_runs[run] -= 1
            if self._busy_runs[run] <= 0:
                del self._busy_runs[run]
        retry_at = retry_at or {}
        blocked: set[str] = set()
        for event in events:
            self._held.discard(event.id)
            when = retry_at.get(event.id)
            if when is None:
                self._failed.discard(event.id)
                continue
            self._failed.add(event.id)
            if event.key.run_id is not None:
                self.block(event.key.run_id, when)
                blocked.add(event.key.run_id)
        if blocked and self._parked:
            # Their earlier event goes back to the spool: they follow it there. Kept parked,
            # they could be sent when the block ends while it is still in the spool.
            self._held_back.extend(e for e in self._parked if e.key.run_id in blocked)
            self._parked = [e for e in self._parked if e.key.run_id not in blocked]

    def block(self, run: str, until: float) -> None:
        self._blocked[run] = max(self._blocked.get(run, 0.0), until)

    def take_parked(self) -> list[SpooledEvent]:
        """Hand back every parked event (shutdown: they are released to the spool)."""
        parked, self._parked = [*self._held_back, *self._parked], []
        self._held_back = []
        for event in parked:
            self._held.discard(event.id)
        return parked
