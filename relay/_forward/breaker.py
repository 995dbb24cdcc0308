"""The circuit breaker in front of OpenMetadata: closed, open, half-open.

Opens on `failure_threshold` consecutive failures or when at least `failure_rate` of
the last `window` calls failed (judged once half the window is filled, so two early
failures cannot trip it). While open, no call goes out. After the recovery timeout one
probe is let through (half-open): success closes the breaker, failure re-opens it with
the timeout doubled, up to `max_recovery_timeout_s`.

Time comes from the injected `Clock` (monotonic), so tests drive it without sleeping.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Gauge

from .._clock import Clock
from .._config import BreakerConfig

__all__ = ["BreakerState", "CircuitBreaker", "Permit"]

log = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    """Values match the `lineage_relay_circuit_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call; `probe` marks the single half-open trial."""

    probe: bool
    generation: int  # the breaker's cycle when granted: late outcomes of old calls are ignored


class CircuitBreaker:
    def __init__(
        self,
        config: BreakerConfig,
        *,
        clock: Clock,
        gauge: Gauge | None = None,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._gauge = gauge
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._window: deque[bool] = deque(maxlen=config.window)  # True = failure
        self._consecutive = 0
        self._timeout_s = config.recovery_timeout_s
        self._open_until = 0.0
        self._probe_out = False
        self._generation = 0
        self.opened_count = 0
        self.last_opened_at: float | None = None  # epoch, for /health
        if gauge is not None:
            gauge.set(BreakerState.CLOSED)

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def recovery_timeout_s(self) -> float:
        """The current open period (doubles while probes fail)."""
        return self._timeout_s

    def ready_in_s(self) -> float | None:
        """0 when a call may go now; seconds until the next probe; None while a probe is out."""
        if self._state is BreakerState.CLOSED:
            return 0.0
        if self._state is BreakerState.HALF_OPEN or self._probe_out:
            return None
        return max(0.0, self._open_until - self._clock.monotonic())

    def acquire(self) -> Permit | None:
        """A permit for one call now, or None (open, or the half-open probe is out)."""
        if self._state is BreakerState.CLOSED:
            return Permit(probe=False, generation=self._generation)
        if self._state is BreakerState.OPEN and self._clock.monotonic() >= self._open_until:
            self._transition(BreakerState.HALF_OPEN)
            self._probe_out = True
            return Permit(probe=True, generation=self._generation)
        return None

    def record_success(self, permit: Permit) -> None:
        if permit.generation != self._generation:
            return
        if permit.probe:
            self._probe_out = False
            self._timeout_s = self._config.recovery_timeout_s
            self._reset_counts()
            self._transition(BreakerState.CLOSED)
            return
        if self._state is BreakerState.CLOSED:
            self._consecutive = 0
            self._window.append(False)

    def record_failure(self, permit: Permit) -> None:
        if permit.generation != self._generation:
            return
        if permit.probe:
            self._probe_out = False
            self._timeout_s = min(self._timeout_s * 2, self._config.max_recovery_timeout_s)
            self._open()
            return
        if self._state is not BreakerState.CLOSED:
            return
        self._consecutive += 1
        self._window.append(True)
        if self._consecutive >= self._config.failure_threshold or self._rate_exceeded():
            self._open()

    def abandon(self, permit: Permit) -> None:
        """The call was not made (nothing to send, shutdown): free the probe slot."""
        if permit.probe and permit.generation == self._generation:
            self._probe_out = False
            # Back to open with the deadline already passed: the next caller probes.
            self._transition(BreakerState.OPEN)

    def _rate_exceeded(self) -> bool:
        calls = len(self._window)
        if calls < max(1, self._config.window // 2):
            return False
        return sum(self._window) / calls >= self._config.failure_rate

    def _reset_counts(self) -> None:
        self._consecutive = 0
        self._window.clear()

    def _open(self) -> None:
        self._open_until = self._clock.monotonic() + self._timeout_s
        self._reset_counts()
        self.opened_count += 1
        self.last_opened_at = self._clock.time()
        self._generation += 1
        self._transition(BreakerState.OPEN)

    def _transition(self, state: BreakerState) -> None:
        if state is self._state:
            return
        previous, self._state = self._state, state
        if state is BreakerState.OPEN:
            log.warning(
                "circuit breaker open: no calls to OpenMetadata for %.1f s (was %s)",
                self._timeout_s, previous.name.lower(),
            )  # fmt: skip
        else:
            log.info("circuit breaker %s", state.name.lower().replace("_", "-"))
        if self._gauge is not None:
            self._gauge.set(state)
        if self._on_change is not None:
            self._on_change(state)
