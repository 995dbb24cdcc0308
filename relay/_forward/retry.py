"""When to try again: backoff with jitter and the retry budget.

Pure logic (the budget reads an injected clock and nothing else), so every rule here is tested
without sleeping or sockets. What a status or a `Retry-After` means is the HTTP client's
(`_sinks/status.py`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from .._clock import Clock

__all__ = ["Backoff", "RetryBudget"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempts)).

    Full jitter spreads the retries of many failed batches over the whole window,
    so a recovering server sees no synchronised wave.
    """

    base_s: float = 1.0
    cap_s: float = 60.0

    def ceiling_s(self, attempts: int) -> float:
        """The upper bound of the delay after `attempts` failed attempts (>= 0)."""
        exponent = min(max(attempts, 0), 60)  # 2**60 * base is past any cap
        return min(self.cap_s, self.base_s * math.ldexp(1.0, exponent))

    def delay_s(self, attempts: int, rand: Callable[[], float] = random.random) -> float:
        return rand() * self.ceiling_s(attempts)


class RetryBudget:
    """Keeps retried calls to about `ratio` of all calls (Finagle/Envoy style token bucket).

    Every first-attempt call deposits `ratio` tokens; a retry withdraws one. A small
    time-based allowance (`min_per_s`, up to `reserve` tokens) lets isolated failures be
    retried promptly even when little new traffic flows. A refused retry is deferred, not
    dropped.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        reserve: float = 3.0,
        min_per_s: float = 1.0,
        max_tokens: float = 20.0,
        clock: Clock,
    ) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError(f"retry budget ratio {ratio!r} must be within [0, 1]")
        self._ratio = ratio
        self._reserve = reserve
        self._min_per_s = min_per_s
        self._max_tokens = max(max_tokens, reserve)
        self._clock = clock
        self._tokens = reserve
        self._last = clock.monotonic()

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = max(0.0, now - self._last)
        self._last = now
        if self._tokens < self._reserve:
            self._tokens = min(self._reserve, self._tokens + elapsed * self._min_per_s)

    def record_first_attempt(self) -> None:
        self._refill()
        self._tokens = min(self._max_tokens, self._tokens + self._ratio)

    def wait_s(self) -> float:
        """Seconds until the time allowance alone gives one token (a floor of 50 ms)."""
        missing = 1.0 - self.tokens
        if missing <= 0:
            return 0.05
        if self._min_per_s <= 0:
            return 1.0
        return max(0.05, missing / self._min_per_s)

    def try_retry(self) -> bool:
        """Withdraw a token for one retried call; False means: defer this retry."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
