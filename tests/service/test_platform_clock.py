"""The deterministic FakeClock the services' tests run on, and the system clock's contract."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.platform.clock import Clock, FakeClock, SystemClock


def test_both_clocks_satisfy_the_protocol(fake_clock: FakeClock) -> None:
    assert isinstance(SystemClock(), Clock) and isinstance(fake_clock, Clock)
    assert SystemClock().now().tzinfo is UTC


def test_fake_clock_moves_only_when_advanced(fake_clock: FakeClock) -> None:
    start, mono = fake_clock.now(), fake_clock.monotonic()
    assert fake_clock.now() == start
    fake_clock.advance(90)
    assert fake_clock.now() - start == timedelta(seconds=90)
    assert fake_clock.monotonic() - mono == 90


async def test_sleepers_wake_in_deadline_order_only_when_their_time_comes(fake_clock: FakeClock) -> None:
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await fake_clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 10)), asyncio.create_task(sleeper("early", 5))]
    await asyncio.sleep(0)
    assert fake_clock.sleepers == 2
    fake_clock.advance(4.999)
    await asyncio.sleep(0)
    assert woke == []
    fake_clock.advance(10)
    await asyncio.gather(*tasks)
    assert woke == ["early", "late"]


def test_fake_clock_refuses_to_go_back_or_be_naive(fake_clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        fake_clock.advance(-1)
    with pytest.raises(ValueError):
        FakeClock(datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        fake_clock.set_now(datetime(2024, 1, 1))


def test_set_now_jumps_wall_time_but_not_monotonic(fake_clock: FakeClock) -> None:
    mono = fake_clock.monotonic()
    fake_clock.set_now(datetime(2025, 6, 1, tzinfo=UTC))
    assert fake_clock.now() == datetime(2025, 6, 1, tzinfo=UTC) and fake_clock.monotonic() == mono
