"""Time, injected: backoff, breaker and leases are tested without sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Protocol

__all__ = ["Clock", "SystemClock", "first_of"]


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (event ages, timestamps)."""

    def monotonic(self) -> float:
        """Monotonic seconds (timeouts, intervals)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def first_of(clock: Clock, timeout_s: float | None, *waits: Awaitable[object]) -> None:
    """Until one of `waits` ends or `timeout_s` (None: no limit) passed on `clock`; the
    waits still running are cancelled."""
    futures = [asyncio.ensure_future(wait) for wait in waits]
    if timeout_s is not None:
        futures.append(asyncio.ensure_future(clock.sleep(timeout_s)))
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
