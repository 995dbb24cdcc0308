"""Backoff and the retry budget: pure, on a fake clock."""

from __future__ import annotations

import random

import pytest

from relay._forward.retry import Backoff, RetryBudget
from relay.testing.fakes import FakeClock


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    assert [backoff.ceiling_s(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.ceiling_s(10_000) == 60.0  # no overflow on absurd attempt counts
    assert backoff.delay_s(3, rand=lambda: 0.0) == 0.0
    assert backoff.delay_s(3, rand=lambda: 0.5) == 4.0
    rng = random.Random(7)
    delays = [backoff.delay_s(4, rand=rng.random) for _ in range(2000)]
    assert all(0 <= d <= 16 for d in delays)
    # Spread over the whole window, not clustered at the ceiling.
    assert min(delays) < 1 and max(delays) > 15
    assert 6 < sum(delays) / len(delays) < 10


def test_retry_budget_keeps_retries_near_the_ratio(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.2, reserve=3.0, min_per_s=0.0, clock=clock)
    # The reserve lets a few isolated retries through at once.
    assert [budget.try_retry() for _ in range(4)] == [True, True, True, False]
    # Then each first-attempt call earns a fifth of a retry.
    allowed = 0
    for _ in range(1000):
        budget.record_first_attempt()
        if budget.try_retry():
            allowed += 1
    assert allowed == 200


def test_retry_budget_refills_its_reserve_over_time(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.2, reserve=3.0, min_per_s=0.5, clock=clock)
    while budget.try_retry():
        pass
    assert not budget.try_retry()
    clock.advance(1.0)
    assert not budget.try_retry()  # half a token
    clock.advance(1.0)
    assert budget.try_retry()
    clock.advance(3600.0)
    assert budget.tokens == 3.0  # the time allowance stops at the reserve


def test_retry_budget_rejects_a_wrong_ratio() -> None:
    with pytest.raises(ValueError, match="ratio"):
        RetryBudget(ratio=1.5, clock=FakeClock())


def test_retry_budget_says_how_long_until_the_next_token(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.2, reserve=2.0, min_per_s=0.5, clock=clock)
    assert budget.wait_s() == 0.05  # a token is there now
    while budget.try_retry():
        pass
    assert budget.wait_s() == pytest.approx(2.0)
    clock.advance(1.0)
    assert budget.wait_s() == pytest.approx(1.0)
