"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from relay._config import BreakerConfig
from relay._forward.breaker import BreakerState, CircuitBreaker, Permit
from relay._observe.metrics import Metrics
from relay.testing.fakes import FakeClock


def make(clock: FakeClock, metrics: Metrics | None = None, **config: float) -> CircuitBreaker:
    return CircuitBreaker(
        BreakerConfig(**config),  # type: ignore[arg-type]
        clock=clock,
        gauge=metrics.circuit_state if metrics else None,
    )


def state(breaker: CircuitBreaker) -> BreakerState:
    """The state, read through a call so mypy does not narrow it across actions."""
    return breaker.state


def call(breaker: CircuitBreaker, ok: bool) -> Permit:
    permit = breaker.acquire()
    assert permit is not None
    if ok:
        breaker.record_success(permit)
    else:
        breaker.record_failure(permit)
    return permit


def test_opens_after_consecutive_failures(clock: FakeClock) -> None:
    metrics = Metrics()
    breaker = make(clock, metrics, failure_threshold=5)
    for _ in range(4):
        call(breaker, ok=False)
    assert state(breaker) is BreakerState.CLOSED
    call(breaker, ok=True)  # a success resets the streak
    for _ in range(4):
        call(breaker, ok=False)
    assert state(breaker) is BreakerState.CLOSED
    call(breaker, ok=False)
    assert state(breaker) is BreakerState.OPEN
    assert metrics.circuit_state._value.get() == 2
    assert breaker.acquire() is None
    assert breaker.ready_in_s() == pytest.approx(30.0)


def test_opens_on_failure_rate_over_the_window(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=100, window=20, failure_rate=0.5)
    # Alternating failures never make a streak, but half of the calls fail.
    calls = 0
    for ok in [False, True] * 10:
        call(breaker, ok)
        calls += 1
        if state(breaker) is BreakerState.OPEN:
            break
    assert state(breaker) is BreakerState.OPEN
    # Not before half the window has been seen: early failures alone do not trip it.
    assert calls == 11  # the 10th call completes half a window at 50 %; it opens on a failure


def test_rate_below_threshold_stays_closed(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=100, window=20, failure_rate=0.5)
    for i in range(200):
        call(breaker, ok=i % 3 != 0)  # a third fail
    assert state(breaker) is BreakerState.CLOSED


def test_half_open_lets_exactly_one_probe_through(clock: FakeClock) -> None:
    metrics = Metrics()
    breaker = make(clock, metrics, failure_threshold=1, recovery_timeout_s=30)
    call(breaker, ok=False)
    clock.advance(29.9)
    assert breaker.acquire() is None
    clock.advance(0.1)
    probe = breaker.acquire()
    assert probe is not None and probe.probe
    assert state(breaker) is BreakerState.HALF_OPEN
    assert metrics.circuit_state._value.get() == 1
    assert breaker.acquire() is None  # no second call while the probe is out
    assert breaker.ready_in_s() is None
    breaker.record_success(probe)
    assert state(breaker) is BreakerState.CLOSED
    assert metrics.circuit_state._value.get() == 0
    assert breaker.acquire() is not None


def test_failed_probes_double_the_timeout_up_to_the_maximum(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout_s=30, max_recovery_timeout_s=300)
    call(breaker, ok=False)
    waits = []
    for _ in range(6):
        waits.append(breaker.ready_in_s())
        clock.advance(breaker.ready_in_s() or 0.0)
        probe = breaker.acquire()
        assert probe is not None and probe.probe
        breaker.record_failure(probe)
        assert state(breaker) is BreakerState.OPEN
    assert waits == [30, 60, 120, 240, 300, 300]
    clock.advance(300)
    probe = breaker.acquire()
    assert probe is not None
    breaker.record_success(probe)
    # Closed again: the next opening starts from the base timeout.
    call(breaker, ok=False)
    assert breaker.ready_in_s() == 30


def test_late_outcomes_of_calls_from_before_the_opening_are_ignored(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, recovery_timeout_s=10)
    slow = breaker.acquire()
    assert slow is not None
    call(breaker, ok=False)
    call(breaker, ok=False)
    assert state(breaker) is BreakerState.OPEN
    breaker.record_success(slow)  # an old call answering late does not close the breaker
    assert state(breaker) is BreakerState.OPEN
    clock.advance(10)
    probe = breaker.acquire()
    assert probe is not None
    breaker.record_failure(slow)  # nor does an old failure count against the probe
    assert state(breaker) is BreakerState.HALF_OPEN
    breaker.record_success(probe)
    assert state(breaker) is BreakerState.CLOSED


def test_an_abandoned_probe_frees_the_slot(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout_s=5)
    call(breaker, ok=False)
    clock.advance(5)
    probe = breaker.acquire()
    assert probe is not None and probe.probe
    breaker.abandon(probe)  # nothing to send after all
    again = breaker.acquire()
    assert again is not None and again.probe
