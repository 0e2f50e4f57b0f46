"""Time as a port: the Clock protocol, the system clock, and a deterministic FakeClock for tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Wall time for timestamps, monotonic time for durations, and sleeping."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes back (for durations and deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return ``datetime.now(UTC)``."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when the test calls ``advance``; sleepers wake in deadline order."""

    def __init__(self, start: datetime | None = None, *, monotonic_start: float = 1000.0) -> None:
        """Start at ``start`` (default 2024-01-02T14:30:00Z, a trading day) and ``monotonic_start``.

        Raises:
            ValueError: ``start`` is naive.
        """
        start = start if start is not None else datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._monotonic = monotonic_start
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        """Return the fake wall time."""
        return self._now

    def monotonic(self) -> float:
        """Return the fake monotonic time."""
        return self._monotonic

    async def sleep(self, seconds: float) -> None:
        """Wait until ``advance`` has moved the clock ``seconds`` past now (0 or less: yield once)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._monotonic + seconds, next(self._seq), future))
        await future

    @property
    def sleepers(self) -> int:
        """Number of coroutines currently sleeping on this clock."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move both clocks forward and wake, in deadline order, every sleeper whose time has come.

        Woken coroutines run at the event loop's next turn (``await asyncio.sleep(0)`` in the test).

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"cannot move a clock back ({seconds!r} s)")
        self._monotonic += seconds
        self._now += timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= self._monotonic:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def set_now(self, when: datetime) -> None:
        """Jump the wall clock (as NTP may); the monotonic clock and sleepers are not affected.

        Raises:
            ValueError: ``when`` is naive.
        """
        if when.tzinfo is None:
            raise ValueError("FakeClock time must be timezone-aware")
        self._now = when.astimezone(UTC)
