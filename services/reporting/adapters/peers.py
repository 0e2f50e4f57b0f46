"""Peer adapters over gRPC: the portfolio service, the broker's history and the delta monitor's alerts."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import grpc.aio

from services.platform.error_mapping import decode_error
from services.reporting.domain.errors import (
    AccountNotFound,
    AuthenticationRequired,
    BrokerUnavailable,
    HistoryIncomplete,
    PortfolioUnavailable,
)
from services.reporting.domain.model import (
    AlertRow,
    ClosedTrade,
    DailyPnl,
    PnlRow,
    PositionRow,
    ScenarioGrid,
    SnapshotRow,
    TransactionRow,
)
from services.reporting.ports import Caller

__all__ = ["GrpcBroker", "GrpcDeltaMonitor", "GrpcPortfolio", "alert_row"]

_PAGE = 2000


def _dec(m: Any) -> Decimal:
    return Decimal(m.units) + Decimal(m.nanos).scaleb(-9)


def _time(t: Any) -> datetime:
    return t.ToDatetime(tzinfo=UTC)


def _metadata(caller: Caller) -> tuple[tuple[str, str], ...]:
    return (("authorization", caller.authorization),)


def _translate(
    error: grpc.aio.AioRpcError, account_number: str, unavailable: type[BrokerUnavailable | PortfolioUnavailable], peer: str
) -> Exception:
    code = error.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return AccountNotFound(account_number)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AuthenticationRequired(f"the {peer} service refused the access token")
    if code == grpc.StatusCode.FAILED_PRECONDITION and decode_error(error).reason == "HISTORY_INCOMPLETE":
        return HistoryIncomplete(error.details() or "the history does not reconcile")
    return unavailable(f"the {peer} service failed: {code.name}", metadata={"peer": peer, "code": code.name})


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix)
    except ValueError:
        return str(value)


def alert_row(a: Any) -> AlertRow:
    """A tastyplat.type.v1.Alert as a report row."""
    from tastyplat.type.v1 import alert_pb2, channel_pb2

    common = dict(
        alert_id=a.alert_id,
        raise_time=_time(a.raise_time),
        kind=_enum_name(alert_pb2.AlertKind, a.kind, "ALERT_KIND_"),
        severity=_enum_name(channel_pb2.Severity, a.severity, "SEVERITY_"),
        state=_enum_name(alert_pb2.AlertState, a.state, "ALERT_STATE_"),
        title=a.title,
    )
    which = a.WhichOneof("detail")
    if which == "delta_breach":
        d = a.delta_breach
        return AlertRow(
            **common,
            underlying_symbol=d.underlying_symbol,
            underlying_price=d.underlying_price,
            metric=_enum_name(alert_pb2.DeltaMetric, d.metric, "DELTA_METRIC_"),
            delta_before=d.delta_before,
            delta_after=d.delta_after,
            band_lower=d.band_lower,
            band_upper=d.band_upper,
            implied_volatility=d.implied_volatility,
            beta=d.beta,
            hedge_symbol=d.hedge_symbol,
            suggested_hedge_quantity=d.suggested_hedge_quantity,
        )
    if which == "risk_limit_breach":
        r = a.risk_limit_breach
        return AlertRow(
            **common,
            underlying_symbol=r.underlying_symbol,
            limit=_enum_name(alert_pb2.RiskLimitKind, r.limit, "RISK_LIMIT_KIND_"),
            limit_value=r.limit_value,
            observed_value=r.observed_value,
        )
    if which == "stale_data":
        return AlertRow(**common, underlying_symbol=a.stale_data.symbol)
    return AlertRow(**common)


class GrpcPortfolio:
    """``PortfolioService`` called with the caller's access token."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        """Use ``channel``, a platform peer channel to the portfolio service."""
        from tastyplat.portfolio.v1 import portfolio_service_pb2, portfolio_service_pb2_grpc

        self._pb = portfolio_service_pb2
        self._stub = portfolio_service_pb2_grpc.PortfolioServiceStub(channel)

    async def _call(self, method: str, request: Any, account: str, caller: Caller) -> Any:
        try:
            return await getattr(self._stub, method)(request, metadata=_metadata(caller))
        except grpc.aio.AioRpcError as error:
            raise _translate(error, account, PortfolioUnavailable, "portfolio") from None

    async def positions(self, account_number: str, caller: Caller) -> list[PositionRow]:
        from tastyplat.type.v1 import option_pb2

        pb = self._pb
        portfolio, greeks = await asyncio.gather(
            self._call("GetPortfolio", pb.GetPortfolioRequest(account_number=account_number), account_number, caller),
            self._call("GetPortfolioGreeks", pb.GetPortfolioGreeksRequest(account_number=account_number), account_number, caller),
        )
        by_symbol = {g.symbol: g for g in greeks.positions}
        rows = []
        for p in portfolio.portfolio.positions:
            g = by_symbol.get(p.symbol)
            option = p.option if p.HasField("option") else None
            rows.append(
                PositionRow(
                    symbol=p.symbol,
                    underlying_symbol=p.underlying_symbol,
                    instrument=_enum_name(option_pb2.InstrumentType, p.instrument_type, "INSTRUMENT_TYPE_"),
                    strategy_group=p.strategy_group,
                    quantity=_dec(p.quantity),
                    multiplier=p.multiplier,
                    mark=_dec(p.mark_price),
                    average_open_price=_dec(p.average_open_price),
                    market_value=_dec(p.market_value),
                    cost_basis=_dec(p.cost_basis),
                    unrealized_pnl=_dec(p.unrealized_pnl),
                    day_pnl=_dec(p.day_pnl),
                    implied_volatility=g.implied_volatility if g is not None and option is not None else None,
                    delta_shares=g.delta_shares if g else math.nan,
                    delta_dollars=g.delta_dollars if g else math.nan,
                    gamma=g.gamma if g else math.nan,
                    theta=g.theta if g else math.nan,
                    vega=g.vega if g else math.nan,
                    beta_weighted_delta=g.beta_weighted_delta if g else math.nan,
                    expiration=_time(option.expiration_time) if option is not None else None,
                    strike=option.strike_price if option is not None else None,
                    option_kind=("Call" if option.kind == option_pb2.OPTION_KIND_CALL else "Put") if option is not None else "",
                    broker_delta=g.broker_greeks.delta if g is not None and g.HasField("broker_greeks") else None,
                )
            )
        return rows

    async def pnl(self, account_number: str, caller: Caller) -> list[PnlRow]:
        response = await self._call(
            "GetProfitAndLoss", self._pb.GetProfitAndLossRequest(account_number=account_number), account_number, caller
        )

        def row(level: str, r: Any) -> PnlRow:
            return PnlRow(level, r.key, _dec(r.realized_today), _dec(r.unrealized_today), _dec(r.realized_since_open),
                          _dec(r.unrealized_since_open), _dec(r.fees_since_open), _dec(r.dividends_since_open))

        return [
            *(row("position", r) for r in response.positions),
            *(row("underlying", r) for r in response.underlyings),
            *(row("strategy", r) for r in response.strategies),
            row("account", response.account),
        ]

    def _ranged(self, request: Any, start: datetime | None, end: datetime | None) -> Any:
        if start is not None:
            request.start_time.FromDatetime(start.astimezone(UTC))
        if end is not None:
            request.end_time.FromDatetime(end.astimezone(UTC))
        return request

    async def history(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> tuple[list[DailyPnl], list[SnapshotRow]]:
        request = self._ranged(self._pb.GetPortfolioHistoryRequest(account_number=account_number), start, end)
        response = await self._call("GetPortfolioHistory", request, account_number, caller)
        daily = [DailyPnl(_time(d.day_end_time), _dec(d.realized_pnl), _dec(d.cumulative_realized_pnl)) for d in response.daily_pnl]
        snapshots = [
            SnapshotRow(_time(s.record_time), _dec(s.net_liquidating_value), _dec(s.unrealized_pnl), s.delta_dollars,
                        s.beta_weighted_delta, s.theta, s.vega)
            for s in response.snapshots
        ]
        return daily, snapshots

    async def scenario(
        self, account_number: str, caller: Caller, moves: Sequence[float], shifts: Sequence[float], days: Sequence[float]
    ) -> ScenarioGrid:
        pb = self._pb
        grid = pb.ScenarioGrid(underlying_moves=moves, volatility_shifts=shifts, days_forward=days)
        r = await self._call("RunScenario", pb.RunScenarioRequest(account_number=account_number, grid=grid), account_number, caller)
        return ScenarioGrid(
            tuple(r.grid.underlying_moves), tuple(r.grid.volatility_shifts), tuple(r.grid.days_forward), _dec(r.base_value),
            list(r.values), list(r.pnls), list(r.delta_dollars), list(r.dollar_gammas), list(r.vegas), list(r.thetas),
        )

    async def closed_trades(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[ClosedTrade]:
        from tastyplat.portfolio.v1 import portfolio_service_pb2 as pb

        request = self._ranged(pb.ListClosedTradesRequest(account_number=account_number, page_size=5000), start, end)
        out: list[ClosedTrade] = []
        while True:
            response = await self._call("ListClosedTrades", request, account_number, caller)
            for t in response.closed_trades:
                out.append(
                    ClosedTrade(
                        t.trade_id, t.underlying_symbol, t.strategy, t.strategy_group, tuple(t.symbols), _time(t.open_time),
                        _time(t.close_time), _enum_name(pb.TradeCloseReason, t.close_reason, "TRADE_CLOSE_REASON_"),
                        _dec(t.realized_pnl), _dec(t.commissions), _dec(t.fees), _dec(t.dividends),
                    )
                )
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token

    async def risk_alerts(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[AlertRow]:
        request = self._ranged(self._pb.ListRiskAlertsRequest(account_number=account_number, page_size=1000), start, end)
        out: list[AlertRow] = []
        while True:
            response = await self._call("ListRiskAlerts", request, account_number, caller)
            out.extend(alert_row(a) for a in response.alerts)
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token


class GrpcBroker:
    """``BrokerService.ListTransactions`` with the caller's access token."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        """Use ``channel``, a platform peer channel to the broker service."""
        from tastyplat.broker.v1 import broker_service_pb2, broker_service_pb2_grpc

        self._pb = broker_service_pb2
        self._stub = broker_service_pb2_grpc.BrokerServiceStub(channel)

    async def transactions(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[TransactionRow]:
        from tastyplat.type.v1 import option_pb2

        pb = self._pb
        request = pb.ListTransactionsRequest(account_number=account_number, page_size=_PAGE)
        if start is not None:
            request.start_time.FromDatetime(start.astimezone(UTC))
        if end is not None:
            request.end_time.FromDatetime(end.astimezone(UTC))
        out: list[TransactionRow] = []
        while True:
            try:
                response = await self._stub.ListTransactions(request, metadata=_metadata(caller))
            except grpc.aio.AioRpcError as error:
                raise _translate(error, account_number, BrokerUnavailable, "broker") from None
            for t in response.transactions:
                out.append(
                    TransactionRow(
                        transaction_id=t.transaction_id,
                        executed_at=_time(t.execute_time),
                        transaction_type=_enum_name(pb.TransactionType, t.transaction_type, "TRANSACTION_TYPE_"),
                        sub_type=t.transaction_sub_type,
                        action=_enum_name(pb.TradeAction, t.action, "TRADE_ACTION_") if t.action else "",
                        symbol=t.symbol,
                        underlying_symbol=t.underlying_symbol,
                        instrument=_enum_name(option_pb2.InstrumentType, t.instrument_type, "INSTRUMENT_TYPE_") if t.instrument_type else "",
                        description=t.description,
                        quantity=_dec(t.quantity),
                        price=_dec(t.price) if t.HasField("price") else None,
                        value=_dec(t.value),
                        commission=_dec(t.commission),
                        clearing_fees=_dec(t.clearing_fees),
                        regulatory_fees=_dec(t.regulatory_fees),
                        other_fees=_dec(t.proprietary_index_option_fees),
                        net_value=_dec(t.net_value),
                        is_option=t.instrument_type in (option_pb2.INSTRUMENT_TYPE_EQUITY_OPTION, option_pb2.INSTRUMENT_TYPE_FUTURE_OPTION),
                    )
                )
            if not response.next_page_token:
                out.reverse()
                return out
            request.page_token = response.next_page_token


class GrpcDeltaMonitor:
    """``DeltaMonitorService.ListAlerts`` with the caller's access token."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        """Use ``channel``, a platform peer channel to the delta monitor."""
        from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2, deltamonitor_service_pb2_grpc

        self._pb = deltamonitor_service_pb2
        self._stub = deltamonitor_service_pb2_grpc.DeltaMonitorServiceStub(channel)

    async def alerts(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[AlertRow]:
        request = self._pb.ListAlertsRequest(account_number=account_number, page_size=1000)
        if start is not None:
            request.start_time.FromDatetime(start.astimezone(UTC))
        if end is not None:
            request.end_time.FromDatetime(end.astimezone(UTC))
        out: list[AlertRow] = []
        while True:
            try:
                response = await self._stub.ListAlerts(request, metadata=_metadata(caller))
            except grpc.aio.AioRpcError as error:
                raise _translate(error, account_number, PortfolioUnavailable, "deltamonitor") from None
            out.extend(alert_row(a) for a in response.alerts)
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token
