"""Circuit breaker and request budget guarding the calls to one Tastytrade host.

Theory of operation. Every HTTP attempt first asks the breaker for a permit, then takes a token from the
budget, then goes out; its outcome is reported back to the breaker.

Circuit breaker: CLOSED lets calls through and counts consecutive failures (5xx, timeouts, connection
errors). At ``failure_threshold`` it TRIPs to OPEN, where calls fail fast with ``CircuitOpen`` and nothing
reaches Tastytrade. Once ``reset_timeout`` has passed, the next caller COOLs it to HALF_OPEN and becomes
the single probe; the probe's success closes the circuit, its failure re-opens it for another
``reset_timeout``. A NEUTRAL outcome (a 4xx answer, a 429, a cancelled call) proves nothing about the
host's health: it changes no count and, in HALF_OPEN, frees the probe slot for the next caller.

Request budget: a token bucket shared by every user of the host (the IP is what Tastytrade blocks).
Callers reserve a token at once and sleep until it is theirs, so waiters are served in arrival order; a
caller who would wait longer than ``max_wait`` gets ``RequestBudgetExhausted`` instead. A 429 from
Tastytrade also pauses the whole budget for ``penalty`` seconds, so a burst backs off together.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable

from services.broker.domain.errors import CircuitOpen, RequestBudgetExhausted


class BreakerState(enum.StrEnum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(enum.Enum):
    """What one attempt told us about the host's health."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


class _Event(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    TRIP = "trip"
    COOL = "cool"


_TRANSITIONS: dict[tuple[BreakerState, _Event], BreakerState] = {
    (BreakerState.CLOSED, _Event.SUCCESS): BreakerState.CLOSED,
    (BreakerState.CLOSED, _Event.FAILURE): BreakerState.CLOSED,
    (BreakerState.CLOSED, _Event.TRIP): BreakerState.OPEN,
    (BreakerState.OPEN, _Event.COOL): BreakerState.HALF_OPEN,
    # Calls admitted before the circuit opened may still report; they do not change an open circuit.
    (BreakerState.OPEN, _Event.SUCCESS): BreakerState.OPEN,
    (BreakerState.OPEN, _Event.FAILURE): BreakerState.OPEN,
    (BreakerState.OPEN, _Event.TRIP): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, _Event.SUCCESS): BreakerState.CLOSED,
    (BreakerState.HALF_OPEN, _Event.FAILURE): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, _Event.TRIP): BreakerState.OPEN,
}


class CircuitBreaker:
    """A consecutive-failure circuit breaker on an injected monotonic clock.

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        reset_timeout: Seconds the circuit stays open before one probe is let through.
        monotonic: Seconds from a monotonic clock.
        name: Shown in the CircuitOpen message.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        reset_timeout: float,
        monotonic: Callable[[], float],
        name: str = "tastytrade",
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout > 0")
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._monotonic = monotonic
        self._name = name
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The current state (an open circuit whose timeout has passed still reads OPEN until probed)."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def open_for(self) -> float | None:
        """Seconds since the circuit opened, or None when it is not open."""
        if self._state is BreakerState.CLOSED:
            return None
        return self._monotonic() - self._opened_at

    def acquire(self) -> None:
        """Ask to make one attempt.

        Raises:
            CircuitOpen: The circuit is open (or half-open with its probe already out).
        """
        if self._state is BreakerState.OPEN:
            waited = self._monotonic() - self._opened_at
            if waited < self._reset_timeout:
                raise CircuitOpen(
                    f"{self._name} is failing; calls are suspended for another "
                    f"{self._reset_timeout - waited:.1f} s",
                    retry_after=self._reset_timeout - waited,
                )
            self._fire(_Event.COOL)
        if self._state is BreakerState.HALF_OPEN:
            if self._probe_in_flight:
                raise CircuitOpen(f"{self._name} is being probed after an outage; retry shortly", retry_after=1.0)
            self._probe_in_flight = True

    def release(self, outcome: Outcome) -> None:
        """Report how an admitted attempt went."""
        was_probe = self._state is BreakerState.HALF_OPEN and self._probe_in_flight
        if was_probe:
            self._probe_in_flight = False
        if outcome is Outcome.NEUTRAL:
            return
        if outcome is Outcome.SUCCESS:
            self._failures = 0
            self._fire(_Event.SUCCESS)
            return
        self._failures += 1
        if self._state is BreakerState.CLOSED and self._failures < self._threshold:
            self._fire(_Event.FAILURE)
        elif self._state is not BreakerState.OPEN or was_probe:
            self._fire(_Event.TRIP)

    def _fire(self, event: _Event) -> None:
        new_state = _TRANSITIONS[(self._state, event)]
        if new_state is BreakerState.OPEN and self._state is not BreakerState.OPEN:
            self._opened_at = self._monotonic()
        if new_state is BreakerState.CLOSED:
            self._probe_in_flight = False
        self._state = new_state


class RequestBudget:
    """A token bucket shared by every caller of one host.

    Args:
        rate: Tokens added per second (sustained requests per second).
        capacity: Bucket size (the burst allowed after a quiet spell).
        max_wait: Longest a caller waits for its token before getting RequestBudgetExhausted.
        penalty: Seconds the whole budget pauses after Tastytrade answers 429.
        monotonic: Seconds from a monotonic clock.
        sleep: Awaitable sleep (asyncio.sleep in production).
    """

    def __init__(
        self,
        *,
        rate: float,
        capacity: float,
        max_wait: float,
        penalty: float,
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1 or max_wait < 0 or penalty < 0:
            raise ValueError("rate > 0, capacity >= 1, max_wait >= 0 and penalty >= 0 are required")
        self._rate = rate
        self._capacity = capacity
        self._max_wait = max_wait
        self._penalty = penalty
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = capacity
        self._updated = monotonic()
        self._paused_until = 0.0

    @property
    def penalty(self) -> float:
        """Seconds the budget pauses after a 429."""
        return self._penalty

    def available(self) -> float:
        """Tokens in the bucket now (negative while reservations are outstanding)."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._monotonic()
        start = max(self._updated, self._paused_until)
        if now > start:
            self._tokens = min(self._capacity, self._tokens + (now - start) * self._rate)
        self._updated = max(self._updated, now)

    async def acquire(self) -> None:
        """Take one token, waiting for it if the wait is within ``max_wait``.

        Raises:
            RequestBudgetExhausted: The token would come later than ``max_wait`` from now.
        """
        self._refill()
        now = self._monotonic()
        pause = max(0.0, self._paused_until - now)
        deficit = 1.0 - self._tokens
        wait = pause + (deficit / self._rate if deficit > 0 else 0.0)
        if wait > self._max_wait:
            raise RequestBudgetExhausted(
                f"the request budget to Tastytrade is spent; next slot in {wait:.2f} s", retry_after=wait
            )
        self._tokens -= 1.0
        if wait > 0:
            await self._sleep(wait)

    def penalize(self) -> None:
        """Pause the budget after a 429 (no token accrues during the pause)."""
        self._refill()
        self._paused_until = max(self._paused_until, self._monotonic() + self._penalty)
        self._tokens = min(self._tokens, 0.0)
