"""A real calculator server on a free loopback port, and clients to it (generated stub and raw bytes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from calculator_service_support import Calculator

from services.calculator.wiring import registration
from services.platform.testing import client_channel, running_server
from tastyplat.calculator.v1 import calculator_service_pb2_grpc as pb_grpc


@pytest.fixture
async def calculator() -> AsyncIterator[Calculator]:
    """Start the calculator exactly as the embedded runner and ``__main__`` wire it."""
    async with running_server([registration()]) as server:
        channel = client_channel(server)
        try:
            yield Calculator(server, channel, pb_grpc.CalculatorServiceStub(channel))
        finally:
            await channel.close()
