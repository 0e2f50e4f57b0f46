"""The PortfolioService servicer: authenticate, convert, call the application, convert back."""

from __future__ import annotations

from typing import Any

import grpc.aio
from tastyplat.portfolio.v1 import portfolio_service_pb2 as pb
from tastyplat.portfolio.v1 import portfolio_service_pb2_grpc as pb_grpc

from services.portfolio.api import convert
from services.portfolio.app import PortfolioApp
from services.portfolio.domain.errors import FieldRequired
from services.portfolio.ports import Authenticator, Caller

__all__ = ["PortfolioServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


def _authorization(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None


class PortfolioServicer(pb_grpc.PortfolioServiceServicer):
    """Implements tastyplat.portfolio.v1.PortfolioService on ``PortfolioApp``."""

    def __init__(self, app: PortfolioApp, authenticator: Authenticator) -> None:
        """Serve ``app``; every call is authenticated by ``authenticator``."""
        self._app = app
        self._auth = authenticator

    async def _caller(self, context: Context, account_number: str) -> Caller:
        caller = await self._auth.authenticate(_authorization(context))
        if not account_number:
            raise FieldRequired("account_number")
        return caller

    async def GetPortfolio(self, request: pb.GetPortfolioRequest, context: Context) -> pb.GetPortfolioResponse:
        """GetPortfolio."""
        caller = await self._caller(context, request.account_number)
        valuation = await self._app.portfolio(request.account_number, caller)
        return pb.GetPortfolioResponse(portfolio=convert.portfolio_to_proto(valuation))

    async def GetPortfolioGreeks(
        self, request: pb.GetPortfolioGreeksRequest, context: Context
    ) -> pb.GetPortfolioGreeksResponse:
        """GetPortfolioGreeks."""
        caller = await self._caller(context, request.account_number)
        valuation = await self._app.greeks(request.account_number, caller, request.benchmark_symbol)
        return convert.greeks_to_proto(valuation)

    async def GetProfitAndLoss(self, request: pb.GetProfitAndLossRequest, context: Context) -> pb.GetProfitAndLossResponse:
        """GetProfitAndLoss."""
        caller = await self._caller(context, request.account_number)
        report, now = await self._app.profit_and_loss(request.account_number, caller)
        return pb.GetProfitAndLossResponse(
            positions=[convert.pnl_row(r) for r in report.positions],
            underlyings=[convert.pnl_row(r) for r in report.underlyings],
            strategies=[convert.pnl_row(r) for r in report.strategies],
            account=convert.pnl_row(report.account),
            mark_time=convert.timestamp(now),
        )

    async def GetRiskLimits(self, request: pb.GetRiskLimitsRequest, context: Context) -> pb.GetRiskLimitsResponse:
        """GetRiskLimits."""
        caller = await self._caller(context, request.account_number)
        limits, measures = await self._app.get_limits(request.account_number, caller)
        return pb.GetRiskLimitsResponse(
            risk_limits=convert.limits_to_proto(limits), measures=convert.measures_to_proto(measures)
        )

    async def SetRiskLimits(self, request: pb.SetRiskLimitsRequest, context: Context) -> pb.SetRiskLimitsResponse:
        """SetRiskLimits."""
        caller = await self._caller(context, request.account_number)
        limits = convert.limits_from_proto(request.risk_limits)
        stored, measures = await self._app.set_limits(request.account_number, caller, limits)
        return pb.SetRiskLimitsResponse(
            risk_limits=convert.limits_to_proto(stored), measures=convert.measures_to_proto(measures)
        )

    async def RunScenario(self, request: pb.RunScenarioRequest, context: Context) -> pb.RunScenarioResponse:
        """RunScenario."""
        caller = await self._caller(context, request.account_number)
        g = request.grid
        result, base, now = await self._app.scenario(
            request.account_number, caller, list(g.underlying_moves), list(g.volatility_shifts), list(g.days_forward)
        )
        return convert.scenario_to_proto(result, base, now)

    async def ListClosedTrades(self, request: pb.ListClosedTradesRequest, context: Context) -> pb.ListClosedTradesResponse:
        """ListClosedTrades."""
        caller = await self._caller(context, request.account_number)
        trades, token = await self._app.closed_trades(
            request.account_number,
            caller,
            convert.optional_time(request.start_time, request.HasField("start_time")),
            convert.optional_time(request.end_time, request.HasField("end_time")),
            request.page_size,
            request.page_token,
        )
        return pb.ListClosedTradesResponse(closed_trades=[convert.trade_to_proto(t) for t in trades], next_page_token=token)

    async def ListRiskAlerts(self, request: pb.ListRiskAlertsRequest, context: Context) -> pb.ListRiskAlertsResponse:
        """ListRiskAlerts."""
        caller = await self._caller(context, request.account_number)
        alerts, token = await self._app.risk_alerts(
            request.account_number,
            caller,
            convert.optional_time(request.start_time, request.HasField("start_time")),
            convert.optional_time(request.end_time, request.HasField("end_time")),
            request.page_size,
            request.page_token,
        )
        return pb.ListRiskAlertsResponse(alerts=[convert.alert_to_proto(a) for a in alerts], next_page_token=token)

    async def GetPortfolioHistory(
        self, request: pb.GetPortfolioHistoryRequest, context: Context
    ) -> pb.GetPortfolioHistoryResponse:
        """GetPortfolioHistory."""
        caller = await self._caller(context, request.account_number)
        daily, snapshots = await self._app.history(
            request.account_number,
            caller,
            convert.optional_time(request.start_time, request.HasField("start_time")),
            convert.optional_time(request.end_time, request.HasField("end_time")),
        )
        return pb.GetPortfolioHistoryResponse(
            daily_pnl=[
                pb.DailyProfitAndLoss(
                    day_end_time=convert.timestamp(day), realized_pnl=convert.money(amount),
                    cumulative_realized_pnl=convert.money(running),
                )
                for day, amount, running in daily
            ],
            snapshots=[convert.snapshot_to_proto(s) for s in snapshots],
        )
