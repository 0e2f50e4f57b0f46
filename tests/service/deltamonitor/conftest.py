"""A real delta monitor server on port 0: in-memory store and broker, in-process bus, JWT auth, NumPy pricer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc.aio
import pytest
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2_grpc as pb_grpc

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.platform.identity import JwtAuthenticator, StaticKeySource
from services.deltamonitor.adapters.memory_store import InMemoryStore
from services.deltamonitor.adapters.peers import InMemoryBroker
from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.app import AppSettings
from services.deltamonitor.wiring import Assembly, assemble
from services.platform.bus import InProcessBus
from services.platform.clock import SystemClock
from services.platform.testing import client_channel, running_server
from tests.fakes.access_tokens import TokenIssuer


@dataclass
class DeltaMonitorRig:
    """The running service and its seams."""

    stub: pb_grpc.DeltaMonitorServiceStub
    tokens: TokenIssuer
    broker: InMemoryBroker
    bus: InProcessBus
    assembly: Assembly
    channel: grpc.aio.Channel

    def auth(self, user_id: str) -> tuple[tuple[str, str], ...]:
        """Call metadata of ``user_id``."""
        return self.tokens.metadata(user_id)


@pytest.fixture
async def dm() -> AsyncIterator[DeltaMonitorRig]:
    """The service on a free port."""
    tokens = TokenIssuer()
    clock = SystemClock()
    bus = InProcessBus()
    broker = InMemoryBroker()
    assembly = assemble(
        settings=AppSettings(heartbeat_seconds=0.2, stale_check_seconds=3600, live_flush_seconds=0.2, watch_limit=3),
        store=InMemoryStore(),
        bus=bus,
        clock=clock,
        positions=broker,
        inputs=broker,
        authenticator=JwtAuthenticator(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience=tokens.audience, clock=clock),
        pricer=NumpyBlackScholesPricer(),
        calendar=ExchangeCalendar(around=datetime.now(UTC)),
        tick_patterns=("marketdata.quotes.*", "marketdata.greeks.*"),
    )
    async with running_server([assembly.registration]) as server:
        channel = client_channel(server)
        try:
            yield DeltaMonitorRig(pb_grpc.DeltaMonitorServiceStub(channel), tokens, broker, bus, assembly, channel)
        finally:
            await channel.close()
    await bus.close()
