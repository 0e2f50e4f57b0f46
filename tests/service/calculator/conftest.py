"""A real calculator server on a free loopback port, and clients to it (generated stub and raw bytes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc.aio
import pytest

from services.calculator.wiring import registration
from services.platform.server import PlatformServer
from services.platform.testing import client_channel, running_server
from tastyplat.calculator.v1 import calculator_service_pb2_grpc as pb_grpc

METHOD = "/tastyplat.calculator.v1.CalculatorService/"


@dataclass
class Calculator:
    """The running server and its clients."""

    server: PlatformServer
    channel: grpc.aio.Channel
    stub: pb_grpc.CalculatorServiceStub

    def raw(self, rpc: str) -> Any:
        """A bytes-in, bytes-out callable for ``rpc`` (how a NumPy client sends packed columns)."""
        return self.channel.unary_unary(METHOD + rpc)


@pytest.fixture
async def calculator() -> AsyncIterator[Calculator]:
    """Start the calculator exactly as the embedded runner and ``__main__`` wire it."""
    async with running_server([registration()]) as server:
        channel = client_channel(server)
        try:
            yield Calculator(server, channel, pb_grpc.CalculatorServiceStub(channel))
        finally:
            await channel.close()
