"""Fixtures for the user service's unit tests: the real use cases over in-memory adapters and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.platform.clock import FakeClock
from services.user.config import UserSettings
from services.user.testing import memory_settings
from services.user.wiring import UserComponents, build


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> UserSettings:
    return memory_settings()


@pytest.fixture
async def service(clock: FakeClock, settings: UserSettings) -> AsyncIterator[UserComponents]:
    components = build(settings, clock=clock)
    await components.start()
    try:
        yield components
    finally:
        await components.stop()
