"""Fixtures for the user service's unit tests: the real use cases over in-memory adapters and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.platform.audit import AuditSigner
from services.platform.clock import FakeClock
from services.platform.settings import Secret
from services.user.config import UserSettings
from services.user.wiring import UserComponents, build


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> UserSettings:
    return UserSettings.from_env(
        {}, storage="memory", audit_signing_key=Secret(AuditSigner.generate().seed_b64())
    )


@pytest.fixture
async def service(clock: FakeClock, settings: UserSettings) -> AsyncIterator[UserComponents]:
    components = build(settings, clock=clock)
    await components.start()
    try:
        yield components
    finally:
        await components.stop()
