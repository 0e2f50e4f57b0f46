"""Portfolio and reporting as the embedded runner wires them, next to the real paper broker, the market data
simulator and the delta monitor on one server: the demo account's P&L reconciles, its Greeks and scenario
grid price, a risk limit breach is stored once, and a full XLSX report streams."""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest
from openpyxl import load_workbook
from tastyplat.broker.v1 import broker_service_pb2 as broker_pb
from tastyplat.broker.v1 import broker_service_pb2_grpc as broker_grpc
from tastyplat.portfolio.v1 import portfolio_service_pb2 as pb
from tastyplat.portfolio.v1 import portfolio_service_pb2_grpc as pb_grpc
from tastyplat.reporting.v1 import reporting_service_pb2 as rpb
from tastyplat.reporting.v1 import reporting_service_pb2_grpc as rpb_grpc
from tastyplat.user.v1 import user_service_pb2_grpc

from services.broker.wiring import embedded as broker_embedded
from services.deltamonitor.wiring import embedded as deltamonitor_embedded
from services.embedded.resources import EmbeddedResources
from services.marketdata.wiring import embedded as marketdata_embedded
from services.platform.bus import InProcessBus
from services.platform.cache import InProcessCache
from services.platform.clock import SystemClock
from services.platform.server import ServiceRegistration
from services.platform.testing import client_channel, running_server
from services.portfolio.wiring import embedded as portfolio_embedded
from services.reporting.wiring import embedded as reporting_embedded
from tests.integration.broker.test_broker_embedded import JwksOnlyUserService
from tests.service.broker.broker_harness import bearer

pytestmark = pytest.mark.integration
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"portfolio_embedded_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dec(m) -> Decimal:
    return Decimal(m.units) + Decimal(m.nanos).scaleb(-9)


async def test_paper_account_through_portfolio_and_reporting(database: str) -> None:
    port = _free_port()
    bus = InProcessBus()
    resources = EmbeddedResources(
        postgres_dsn=database, bus=bus, cache=InProcessCache(), clock=SystemClock(), grpc_target=f"127.0.0.1:{port}"
    )
    users = ServiceRegistration(
        add_to_server=user_service_pb2_grpc.add_UserServiceServicer_to_server,
        servicer=JwksOnlyUserService(),
        service_name="tastyplat.user.v1.UserService",
    )
    registrations = [
        users,
        await broker_embedded(resources),
        await marketdata_embedded(resources),
        await deltamonitor_embedded(resources, {}),
        await portfolio_embedded(resources, {}),
        await reporting_embedded(resources, {}),
    ]
    auth = bearer("dana")
    async with running_server(registrations, port=port, request_id_in_initial_metadata=False) as server:
        channel = client_channel(server)
        try:
            broker = broker_grpc.BrokerServiceStub(channel)
            [account] = (await broker.ListAccounts(broker_pb.ListAccountsRequest(), metadata=auth)).accounts
            number = account.account_number
            stub = pb_grpc.PortfolioServiceStub(channel)

            portfolio = (await stub.GetPortfolio(pb.GetPortfolioRequest(account_number=number), metadata=auth)).portfolio
            assert {p.underlying_symbol for p in portfolio.positions} == {"SPY", "QQQ", "AAPL", "TSLA"}
            spy = next(p for p in portfolio.positions if p.symbol == "SPY")
            assert _dec(spy.cost_basis) == Decimal("52137.00")  # 100 shares bought at 521.37

            pnl = await stub.GetProfitAndLoss(pb.GetProfitAndLossRequest(account_number=number), metadata=auth)
            # Dividends while held: SPY 1.7466 x 100 = 174.66 and AAPL 0.25 x 50 = 12.50.
            assert _dec(pnl.account.dividends_since_open) == Decimal("187.16")
            assert sum(_dec(r.unrealized_since_open) for r in pnl.positions) == _dec(pnl.account.unrealized_since_open)

            greeks = await stub.GetPortfolioGreeks(pb.GetPortfolioGreeksRequest(account_number=number), metadata=auth)
            assert greeks.benchmark_symbol == "SPY" and greeks.benchmark_price > 0
            assert {u.underlying_symbol: u.beta_source for u in greeks.underlyings}["AAPL"] == pb.BETA_SOURCE_BROKER

            grid = pb.ScenarioGrid(underlying_moves=[-0.1, 0.0, 0.1], volatility_shifts=[0.0, 0.05], days_forward=[0, 5])
            scenario = await stub.RunScenario(pb.RunScenarioRequest(account_number=number, grid=grid), metadata=auth)
            assert scenario.pnls[1] == 0.0 and scenario.values[1] == float(_dec(scenario.base_value))

            limits = pb.RiskLimits(max_abs_vega=1.0, max_concentration=0.05)
            await stub.SetRiskLimits(pb.SetRiskLimitsRequest(account_number=number, risk_limits=limits), metadata=auth)
            await stub.GetRiskLimits(pb.GetRiskLimitsRequest(account_number=number), metadata=auth)
            alerts = (await stub.ListRiskAlerts(pb.ListRiskAlertsRequest(account_number=number), metadata=auth)).alerts
            kinds = sorted((a.risk_limit_breach.limit, a.risk_limit_breach.underlying_symbol) for a in alerts)
            assert len(kinds) == len(set(kinds)) >= 2  # one alert per breach, none repeated by the second check

            reports = rpb_grpc.ReportingServiceStub(channel)
            call = reports.CreateReport(rpb.CreateReportRequest(account_number=number, format=rpb.REPORT_FORMAT_XLSX), metadata=auth)
            headers = dict(await call.initial_metadata())
            data = b"".join([m.data async for m in call])
            assert headers["content-disposition"].startswith(f'attachment; filename="{number}-')
            workbook = load_workbook(io.BytesIO(data))
            assert workbook["Positions"].max_row == len(portfolio.positions) + 1
            analysis = await reports.AnalyzeTransactions(rpb.AnalyzeTransactionsRequest(account_number=number), metadata=auth)
            assert analysis.trade_count > 0
        finally:
            await channel.close()
    await bus.close()
