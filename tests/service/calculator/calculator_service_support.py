"""The running calculator and its clients, as the service tests see them (kept out of conftest.py so the
tests can import the type under a name no other test directory uses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc.aio

from services.platform.server import PlatformServer
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
