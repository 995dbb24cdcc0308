"""Time, injected: backoff, breaker and leases are tested without sleeping."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


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
