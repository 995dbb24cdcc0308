"""Fakes for tests: a clock moved by hand and a sink that keeps what it receives.

`FakeClock` drives backoff, breaker and budget logic without sleeping. `MemorySink`
lets forwarder tests run without OpenMetadata, and can be told how to answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .._events import SpooledEvent
from .._exceptions import SinkError
from .._sinks.base import DELIVERED, EventResult

__all__ = ["FakeClock", "MemorySink"]


class FakeClock:
    """A `Clock` whose time moves only when told (`advance`).

    `sleep` waits until `advance` has moved the clock past its end (the end is fixed when
    `sleep` is called, so an `advance` racing a task about to sleep cannot stretch it), and
    `sleeps()` tells a test what the code under test is waiting for.
    """

    def __init__(self, *, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 1_000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward and end every `sleep` that is due by then."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._wall += seconds
        self._mono += seconds
        waiting: list[tuple[float, asyncio.Future[None]]] = []
        for end, waiter in self._sleepers:
            if waiter.done():
                continue
            if end <= self._mono:
                waiter.set_result(None)
            else:
                waiting.append((end, waiter))
        self._sleepers = waiting

    def sleeps(self) -> list[float]:
        """Seconds until each pending `sleep` ends, soonest first."""
        return sorted(end - self._mono for end, waiter in self._sleepers if not waiter.done())

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Wait until the clock was advanced `seconds` from now (no wait for seconds <= 0)."""
        waiter = asyncio.get_running_loop().create_future()
        if seconds <= 0:
            waiter.set_result(None)
        else:
            self._sleepers.append((self._mono + seconds, waiter))
        return self._until(waiter)

    @staticmethod
    async def _until(waiter: asyncio.Future[None]) -> None:
        try:
            await waiter
        finally:
            waiter.cancel()  # a cancelled sleep is no longer pending
        await asyncio.sleep(0)


Responder = Callable[[Sequence[SpooledEvent]], Sequence[EventResult]]


class MemorySink:
    """Keeps every batch it is sent; answers delivered unless told otherwise.

    `fail_with` (an exception raised for the next calls) and `responder` (per-event
    results) shape the answers; `calls` counts every call, successful or not.
    """

    def __init__(self, *, responder: Responder | None = None) -> None:
        self.batches: list[list[SpooledEvent]] = []
        self.calls = 0
        self.fail_with: SinkError | None = None
        self.responder = responder
        self.closed = False

    @property
    def name(self) -> str:
        return "memory"

    @property
    def events(self) -> list[SpooledEvent]:
        return [event for batch in self.batches for event in batch]

    async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        results = self.responder(events) if self.responder else [DELIVERED] * len(events)
        self.batches.append([e for e, r in zip(events, results, strict=True) if r is DELIVERED])
        return results

    async def aclose(self) -> None:
        self.closed = True
