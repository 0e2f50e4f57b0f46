"""Fixtures for the user service tests: the real server on a free port, called through the generated stubs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tastyplat.user.v1 import user_service_pb2_grpc as pb_grpc

from services.platform.clock import SystemClock
from services.platform.settings import Secret
from services.platform.testing import client_channel, running_server
from services.user.testing import memory_settings
from services.user.wiring import build, registration
from user_service_support import ADMIN_EMAIL, ADMIN_PASSWORD, Running


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    settings = memory_settings(
        bootstrap_admin_email=ADMIN_EMAIL,
        bootstrap_admin_password=Secret(ADMIN_PASSWORD),
        trusted_proxy_hops=1,
    )
    components = build(settings, clock=SystemClock())
    async with running_server([registration(components)]) as server:
        channel = client_channel(server)
        try:
            yield Running(components, pb_grpc.UserServiceStub(channel), channel, server.address)
        finally:
            await channel.close()
