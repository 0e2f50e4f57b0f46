"""A real portfolio server on port 0: in-memory broker, market data and store, in-process bus, JWT auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import grpc.aio
import pytest
from tastyplat.portfolio.v1 import portfolio_service_pb2_grpc as pb_grpc

from services.platform.bus import InProcessBus
from services.platform.clock import FakeClock
from services.platform.testing import client_channel, running_server
from services.platform.identity import JwtAuthenticator, StaticKeySource
from services.portfolio.adapters.memory_peers import MemoryBroker, MemoryMarketData
from services.portfolio.adapters.memory_store import MemoryStore
from services.portfolio.app import AppSettings
from services.portfolio.domain.model import Action, HeldPosition, InstrumentKind
from services.portfolio.wiring import Assembly, assemble
from tests.fakes.access_tokens import TokenIssuer
from tests.unit.portfolio.portfolio_history import at, option, trade

ACCOUNT = "5WW00001"
NOW = datetime(2024, 3, 6, 15, 0, tzinfo=UTC)
D = Decimal
P480 = option("SPY   240419P00480000", "SPY", False, 480.0, "2024-04-19")
C520 = option("SPY   240419C00520000", "SPY", True, 520.0, "2024-04-19")


def demo_book() -> tuple[list[HeldPosition], list]:
    """Positions and the history that explains them."""
    positions = [
        HeldPosition("AAPL", "AAPL", InstrumentKind.EQUITY, D(-50), D(1), D("185.00"), close_price=D("186.00")),
        HeldPosition("SPY", "SPY", InstrumentKind.EQUITY, D(100), D(1), D("500.00"), close_price=D("498.00")),
        HeldPosition(C520.symbol, "SPY", InstrumentKind.EQUITY_OPTION, D(1), D(100), D("6.30"), close_price=D("6.00"), option=C520),
        HeldPosition(P480.symbol, "SPY", InstrumentKind.EQUITY_OPTION, D(-2), D(100), D("3.10"), close_price=D("3.30"), option=P480),
    ]
    history = [
        trade(at("2024-01-10"), "SPY", Action.BUY_TO_OPEN, "100", "480.00", fees="-0.08", order="1"),
        trade(at("2024-02-01"), "AAPL", Action.SELL_TO_OPEN, "50", "190.00", fees="-0.06", order="4"),
        trade(at("2024-03-01"), P480.symbol, Action.SELL_TO_OPEN, "2", "4.00", terms=P480, commission="-2.00",
              fees="-0.27", order="2"),
        trade(at("2024-03-01"), C520.symbol, Action.BUY_TO_OPEN, "1", "5.00", terms=C520, commission="-1.00",
              fees="-0.11", order="3"),
    ]
    return positions, history


@dataclass
class PortfolioRig:
    """The running service and its seams."""

    stub: pb_grpc.PortfolioServiceStub
    tokens: TokenIssuer
    broker: MemoryBroker
    market: MemoryMarketData
    store: MemoryStore
    bus: InProcessBus
    clock: FakeClock
    assembly: Assembly

    def auth(self, user_id: str = "alice") -> tuple[tuple[str, str], ...]:
        """Call metadata of ``user_id``."""
        return self.tokens.metadata(user_id)


@pytest.fixture
async def rig() -> AsyncIterator[PortfolioRig]:
    """The service on a free port with the demo book in account 5WW00001 of alice."""
    tokens = TokenIssuer()
    clock = FakeClock(NOW)
    bus = InProcessBus()
    broker = MemoryBroker()
    positions, history = demo_book()
    broker.set_account(ACCOUNT, "alice", positions, history, cash=D("20000.00"))
    broker.betas = {"AAPL": 1.2}
    broker.dividend_yields = {"SPY": 0.013, "AAPL": 0.005}
    broker.rate = 0.045
    market = MemoryMarketData()
    market.quotes = {"SPY": 500.0, "AAPL": 185.0}
    store = MemoryStore()
    assembly = assemble(
        broker=broker,
        market_data=market,
        store=store,
        bus=bus,
        clock=clock,
        authenticator=JwtAuthenticator(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience=tokens.audience, clock=clock),
        settings=AppSettings(snapshot_interval_seconds=0.0, risk_check_seconds=3600.0),
    )
    async with running_server([assembly.registration]) as server:
        channel: grpc.aio.Channel = client_channel(server)
        try:
            yield PortfolioRig(pb_grpc.PortfolioServiceStub(channel), tokens, broker, market, store, bus, clock, assembly)
        finally:
            await channel.close()
    await bus.close()
