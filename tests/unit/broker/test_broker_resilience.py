"""Circuit breaker transitions and the shared request budget, on a manual clock."""

from __future__ import annotations

import pytest

from services.broker.adapters.resilience import BreakerState, CircuitBreaker, Outcome, RequestBudget
from services.broker.domain.errors import CircuitOpen, RequestBudgetExhausted


class Manual:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def _breaker(clock: Manual) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, reset_timeout=10.0, monotonic=clock)


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.acquire()
        breaker.release(Outcome.FAILURE)


def test_breaker_opens_after_consecutive_failures() -> None:
    breaker = _breaker(Manual())
    _fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    _fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN


def test_success_resets_the_failure_count() -> None:
    breaker = _breaker(Manual())
    _fail(breaker, 2)
    breaker.acquire()
    breaker.release(Outcome.SUCCESS)
    _fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


def test_open_breaker_fails_fast_with_retry_after() -> None:
    clock = Manual()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.t += 4
    with pytest.raises(CircuitOpen) as caught:
        breaker.acquire()
    assert caught.value.retry_after == pytest.approx(6.0)


def test_after_reset_timeout_one_probe_is_admitted() -> None:
    clock = Manual()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.t += 10
    breaker.acquire()
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen, match="probed"):
        breaker.acquire()


def test_successful_probe_closes_the_breaker() -> None:
    clock = Manual()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.t += 10
    breaker.acquire()
    breaker.release(Outcome.SUCCESS)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.open_for() is None


def test_failed_probe_reopens_for_another_timeout() -> None:
    clock = Manual()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.t += 10
    breaker.acquire()
    breaker.release(Outcome.FAILURE)
    assert breaker.state is BreakerState.OPEN
    clock.t += 9
    with pytest.raises(CircuitOpen):
        breaker.acquire()


def test_neutral_probe_frees_the_slot_without_closing() -> None:
    clock = Manual()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.t += 10
    breaker.acquire()
    breaker.release(Outcome.NEUTRAL)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.acquire()  # the next caller becomes the probe


def _budget(clock: Manual, **kw: float) -> RequestBudget:
    values = {"rate": 2.0, "capacity": 2.0, "max_wait": 1.0, "penalty": 3.0, **kw}
    return RequestBudget(monotonic=clock, sleep=clock.sleep, **values)


async def test_budget_allows_a_burst_then_paces_callers() -> None:
    clock = Manual()
    budget = _budget(clock)
    await budget.acquire()
    await budget.acquire()
    assert clock.slept == []
    await budget.acquire()
    assert clock.slept == [pytest.approx(0.5)]


async def test_budget_refuses_a_wait_beyond_max_wait() -> None:
    clock = Manual()
    budget = _budget(clock, max_wait=0.2)
    await budget.acquire()
    await budget.acquire()
    with pytest.raises(RequestBudgetExhausted) as caught:
        await budget.acquire()
    assert caught.value.retry_after == pytest.approx(0.5)


async def test_budget_refills_at_its_rate() -> None:
    clock = Manual()
    budget = _budget(clock)
    await budget.acquire()
    await budget.acquire()
    clock.t += 1.0
    assert budget.available() == pytest.approx(2.0)


async def test_a_429_pauses_the_whole_budget() -> None:
    clock = Manual()
    budget = _budget(clock, max_wait=10.0)
    budget.penalize()
    await budget.acquire()
    assert clock.slept == [pytest.approx(3.0 + 0.5)]
