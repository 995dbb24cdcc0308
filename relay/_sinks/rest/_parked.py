"""Parked edges: lineage whose dataset is not (yet) in OpenMetadata, tried again later.

A table is often created by the job itself and ingested into OpenMetadata afterwards. Its
edges wait in the state store (`_state.py`: they survive a restart), are tried again in the
background with exponential backoff between `retry_delay_ms` and `retry_max_delay_ms`, and
after `unresolved_retention_s` their event goes to the dead letters with reason
`unresolved`, once per event however many of its edges gave up. Each try runs under the
sink's lock (it shares its caches and run states); rounds never count for the breaker: an
OpenMetadata that does not answer ends the round, the edges wait for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from ..._clock import Clock
from ..._config import OpenMetadataConfig
from ..._events import SpooledEvent
from ..._exceptions import AuthError, SinkError
from ..._observe.metrics import Metrics
from ._resolver import Resolution
from ._state import ParkedEdge, StateStore

__all__ = ["Attempt", "DeadLetter", "ParkedEdges"]

log = logging.getLogger(__name__)

# Given by the relay: moves an event to the spool's dead letters with a reason.
DeadLetter = Callable[[SpooledEvent, str], Awaitable[None]]
# One try of a parked edge: True written, False unusable (dropped), else what is missing.
Attempt = Callable[[ParkedEdge], Awaitable[bool | tuple[str, ...]]]

_PER_ROUND = 200
_IDLE_CHECK_S = 5.0


class ParkedEdges:
    def __init__(
        self,
        store: StateStore,
        *,
        config: OpenMetadataConfig,
        metrics: Metrics,
        clock: Clock,
        lock: asyncio.Lock,
        attempt: Attempt,
        dead_letter: DeadLetter | None,
        on_unreachable: Callable[[], None],
    ) -> None:
        self._store = store
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._lock = lock
        self._attempt = attempt
        self._dead_letter = dead_letter
        self._on_unreachable = on_unreachable
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.edges = 0  # parked now (for /health)
        self.datasets = 0  # distinct unresolved datasets among them

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="rest-sink-parked")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def backoff_s(self, attempts: int) -> float:
        base = self._config.retry_delay_ms / 1000
        cap = self._config.retry_max_delay_ms / 1000
        return float(min(cap, base * 2.0 ** min(attempts, 30)))

    async def refresh_gauge(self) -> None:
        edges, datasets = await self._store.unresolved()
        self.edges, self.datasets = edges, datasets
        self._metrics.unresolved_datasets.set(datasets)

    async def park(
        self,
        spooled: SpooledEvent,
        edges: Sequence[tuple[int, int, tuple[str, ...], str]],
        resolved: Mapping[tuple[str, int], Resolution],
    ) -> None:
        """Park (input index, output index, missing datasets, key) edges of an event."""
        now = self._clock.time()
        added = await self._store.park(spooled, edges, now=now, next_try_at=now + self.backoff_s(0))
        if not added:
            return  # a later event of the run or a redelivery: already counted
        for resolution in resolved.values():
            if resolution.entity is None:
                namespace = resolution.lookup.namespace
                self._metrics.unresolved.labels(namespace).inc()
                if resolution.outcome == "ambiguous":
                    self._metrics.ambiguous_datasets.labels(namespace).inc()
        log.info(
            "parked %d lineage edges of %s: not in OpenMetadata (yet): %s",
            added, spooled.key.job_name,
            ", ".join(sorted({d for _, _, missing, _ in edges for d in missing})),
        )  # fmt: skip
        await self.refresh_gauge()
        self._wakeup.set()

    async def _loop(self) -> None:
        while True:
            due = await self._store.next_due()
            wait_s = _IDLE_CHECK_S if due is None else max(0.0, float(due) - self._clock.time())
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), min(wait_s, _IDLE_CHECK_S))
            try:
                await self.retry()
            except asyncio.CancelledError:
                raise
            except Exception:  # a round that failed is tried again; the loop must live on
                log.exception("retrying parked lineage edges failed")

    async def retry(self) -> int:
        """One round over the parked edges that are due; returns how many were written.

        The sink's lock is taken per edge, not per round: a long round never holds back the
        delivery of new batches for more than one edge's calls.
        """
        written = 0
        expired: dict[bytes, list[tuple[ParkedEdge, tuple[str, ...]]]] = {}
        now = self._clock.time()
        for edge in await self._store.due(now, _PER_ROUND):
            try:
                async with self._lock:
                    outcome = await self._attempt(edge)
            except (SinkError, AuthError) as exc:  # OpenMetadata unwell: next round
                log.debug("parked edge %d not retried: %s", edge.id, exc)
                await self._store.reschedule(
                    edge.id, now + self.backoff_s(edge.attempts + 1), edge.datasets
                )
                self._on_unreachable()
                break
            if outcome is True:
                await self._store.remove([edge.id])
                log.info("parked lineage edge of %s written", edge.event.key.job_name)
                written += 1
            elif outcome is False:
                await self._store.remove([edge.id])
            elif now - edge.parked_at >= self._config.unresolved_retention_s:
                expired.setdefault(edge.event.body, []).append((edge, outcome))
            else:
                await self._store.reschedule(
                    edge.id, now + self.backoff_s(edge.attempts + 1), outcome or edge.datasets
                )
        for edges in expired.values():  # one dead letter per event, however many edges
            missing = [d for edge, m in edges for d in (m or edge.datasets)]
            await self._expire([edge for edge, _ in edges], missing)
        await self.refresh_gauge()
        return written

    async def _expire(self, edges: list[ParkedEdge], missing: list[str]) -> None:
        event = edges[0].event
        reason = (
            f"unresolved: {', '.join(sorted(set(missing)))} not found in OpenMetadata "
            "within openmetadata.unresolved_retention_s"
        )
        log.warning("lineage edges of %s given up: %s", event.key.job_name, reason)
        if self._dead_letter is not None:
            await self._dead_letter(event, reason)
        self._metrics.events_dead_lettered.labels("unresolved").inc()
        await self._store.remove([edge.id for edge in edges])
