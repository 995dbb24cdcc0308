"""Waiting in a test for something another task, thread or process does: poll a condition,
with a bound that only stops a broken test (nothing is timed; no sleep stands in for it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], *, within_s: float = 20.0
) -> None:
    """Poll `predicate` (plain or async) until it answers True; TimeoutError after `within_s`.

    The spool works in a thread of its own and a relay may be a child process, so their
    progress is polled, not awaited."""
    async with asyncio.timeout(within_s):
        while True:
            answer = predicate()
            if not isinstance(answer, bool):
                answer = await answer
            if answer:
                return
            await asyncio.sleep(0.01)
