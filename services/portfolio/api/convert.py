"""Translation between the contract's messages and the domain, at the edge (also the bus form of risk alerts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from google.protobuf import timestamp_pb2
from tastyplat.portfolio.v1 import portfolio_service_pb2 as pb
from tastyplat.type.v1 import alert_pb2, greeks_pb2, money_pb2, option_pb2

from services.portfolio.app import Valuation
from services.portfolio.domain.errors import FieldInvalid
from services.portfolio.domain.ledger import Trade
from services.portfolio.domain.model import OptionTerms
from services.portfolio.domain.pnl import PnlRow
from services.portfolio.domain.risk import RiskLimits, RiskMeasures, Severity
from services.portfolio.domain.scenario import Grid, ScenarioResult
from services.portfolio.ports import RiskAlert, Snapshot

__all__ = [
    "decimal_from_money",
    "encode_alert",
    "limits_from_proto",
    "limits_to_proto",
    "measures_to_proto",
    "money",
    "timestamp",
]

_NANO = Decimal("0.000000001")


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime."""
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def optional_time(message: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    """A request's optional Timestamp as an aware datetime, or None when unset."""
    return message.ToDatetime(tzinfo=UTC) if present else None


def money(amount: Decimal, currency: str = "USD") -> money_pb2.Money:
    """A Money of an exact Decimal (half-even to the nano; nanos carry the sign of units)."""
    q = amount.quantize(_NANO, rounding=ROUND_HALF_EVEN)
    units = int(q)
    nanos = int((q - units) * 1_000_000_000)
    return money_pb2.Money(currency_code=currency, units=units, nanos=nanos)


def decimal_value(amount: Decimal) -> money_pb2.Decimal:
    """A tastyplat.type.v1.Decimal of an exact Decimal."""
    m = money(amount)
    return money_pb2.Decimal(units=m.units, nanos=m.nanos)


def decimal_from_money(value: money_pb2.Money, field: str) -> Decimal:
    """A request Money as a Decimal.

    Raises:
        FieldInvalid: nanos out of range or of the other sign than units.
    """
    if not -999_999_999 <= value.nanos <= 999_999_999 or (value.units > 0 > value.nanos) or (value.units < 0 < value.nanos):
        raise FieldInvalid(field, "nanos must be in [-999999999, 999999999] with the sign of units")
    return Decimal(value.units) + Decimal(value.nanos).scaleb(-9)


def _option(o: OptionTerms) -> option_pb2.OptionContract:
    return option_pb2.OptionContract(
        symbol=o.symbol,
        underlying_symbol=o.underlying_symbol,
        kind=option_pb2.OPTION_KIND_CALL if o.is_call else option_pb2.OPTION_KIND_PUT,
        strike_price=o.strike,
        expiration_time=timestamp(o.expiration_time),
        style=option_pb2.EXERCISE_STYLE_AMERICAN if o.american else option_pb2.EXERCISE_STYLE_EUROPEAN,
        multiplier=o.multiplier,
        streamer_symbol=o.streamer_symbol,
    )


def portfolio_to_proto(v: Valuation) -> pb.Portfolio:
    """The GetPortfolio answer."""
    out = pb.Portfolio(
        account_number=v.account_number,
        cash_balance=money(v.balances.cash_balance),
        net_liquidating_value=money(v.balances.net_liquidating_value),
        market_value=money(sum((x.market_value for x in v.valuations), Decimal(0))),
        mark_time=timestamp(v.now),
    )
    for x in v.valuations:
        p = x.position
        item = out.positions.add(
            symbol=p.symbol,
            instrument_type=int(p.instrument),
            underlying_symbol=p.underlying_symbol,
            quantity=decimal_value(p.quantity),
            multiplier=float(p.multiplier),
            strategy_group=x.strategy_group,
            mark_price=money(x.mark),
            average_open_price=money(x.average_open_price),
            market_value=money(x.market_value),
            cost_basis=money(x.cost_basis),
            unrealized_pnl=money(x.unrealized_pnl),
            day_pnl=money(x.day_pnl),
        )
        if p.option is not None:
            item.option.CopyFrom(_option(p.option))
        if x.open_time is not None:
            item.open_time.CopyFrom(timestamp(x.open_time))
    return out


def greeks_to_proto(v: Valuation) -> pb.GetPortfolioGreeksResponse:
    """The GetPortfolioGreeks answer."""
    g = v.greeks
    book = g.book
    price, delta, gamma, vega, theta = g.model
    out = pb.GetPortfolioGreeksResponse(
        benchmark_symbol=g.benchmark_symbol,
        benchmark_price=g.benchmark_price,
        compute_time=timestamp(v.now),
        total=pb.TotalGreeks(
            delta_dollars=g.total_delta_dollars,
            theta=g.total_theta,
            vega=g.total_vega,
            beta_weighted_delta=g.total_beta_weighted_delta,
            beta_weighted_delta_dollars=g.total_beta_weighted_delta_dollars,
        ),
    )
    for i, symbol in enumerate(book.symbols):
        item = out.positions.add(
            symbol=symbol,
            underlying_symbol=book.underlyings[i],
            quantity=float(book.quantity[i]),
            delta_shares=float(g.delta_shares[i]),
            delta_dollars=float(g.delta_dollars[i]),
            gamma=float(g.gamma[i]),
            theta=float(g.theta[i]),
            vega=float(g.vega[i]),
            beta_weighted_delta=float(g.beta_weighted_delta[i]),
        )
        if book.is_option[i]:
            item.implied_volatility = float(book.volatility[i])
            item.model_greeks.CopyFrom(
                greeks_pb2.Greeks(price=float(price[i]), delta=float(delta[i]), gamma=float(gamma[i]),
                                  vega=float(vega[i]), theta=float(theta[i]))
            )
            feed = book.broker_greeks.get(i)
            if feed is not None:
                d, gm, th, vg, rho, _ = feed
                item.broker_greeks.CopyFrom(
                    greeks_pb2.Greeks(delta=d, gamma=gm, theta=th, vega=vg, rho=rho if math.isfinite(rho) else 0.0)
                )
    for u in g.underlyings:
        out.underlyings.add(
            underlying_symbol=u.underlying_symbol,
            underlying_price=u.underlying_price,
            beta=u.beta,
            beta_source=int(u.beta_source),
            delta_shares=u.delta_shares,
            delta_dollars=u.delta_dollars,
            gamma=u.gamma,
            theta=u.theta,
            vega=u.vega,
            beta_weighted_delta=u.beta_weighted_delta,
        )
    return out


def pnl_row(row: PnlRow) -> pb.ProfitAndLoss:
    """One P&L group."""
    return pb.ProfitAndLoss(
        key=row.key,
        realized_today=money(row.realized_today),
        unrealized_today=money(row.unrealized_today),
        realized_since_open=money(row.realized_since_open),
        unrealized_since_open=money(row.unrealized_since_open),
        fees_since_open=money(row.fees_since_open),
        dividends_since_open=money(row.dividends_since_open),
    )


def _grid(g: Grid) -> pb.ScenarioGrid:
    return pb.ScenarioGrid(underlying_moves=list(g.moves), volatility_shifts=list(g.shifts), days_forward=list(g.days))


def limits_from_proto(message: pb.RiskLimits) -> RiskLimits:
    """Request limits as domain limits (validated later by the domain)."""
    scenario = None
    if message.HasField("scenario"):
        s = message.scenario
        scenario = Grid(
            tuple(s.underlying_moves) or (0.0,), tuple(s.volatility_shifts) or (0.0,), tuple(s.days_forward) or (0.0,)
        )
    loss = None
    if message.HasField("max_scenario_loss"):
        loss = decimal_from_money(message.max_scenario_loss, "risk_limits.max_scenario_loss")
    severity = Severity(message.breach_severity) if message.breach_severity in (1, 2, 3) else Severity.CRITICAL
    return RiskLimits(
        max_abs_beta_weighted_delta=message.max_abs_beta_weighted_delta if message.HasField("max_abs_beta_weighted_delta") else None,
        max_abs_delta_dollars=message.max_abs_delta_dollars if message.HasField("max_abs_delta_dollars") else None,
        max_abs_vega=message.max_abs_vega if message.HasField("max_abs_vega") else None,
        max_theta_decay=message.max_theta_decay if message.HasField("max_theta_decay") else None,
        max_scenario_loss=loss,
        scenario=scenario,
        max_concentration=message.max_concentration if message.HasField("max_concentration") else None,
        benchmark_symbol=message.benchmark_symbol or "SPY",
        breach_severity=severity,
    )


def limits_to_proto(limits: RiskLimits) -> pb.RiskLimits:
    """Domain limits as the contract's message."""
    out = pb.RiskLimits(benchmark_symbol=limits.benchmark_symbol, breach_severity=int(limits.breach_severity))
    for name in ("max_abs_beta_weighted_delta", "max_abs_delta_dollars", "max_abs_vega", "max_theta_decay", "max_concentration"):
        value = getattr(limits, name)
        if value is not None:
            setattr(out, name, value)
    if limits.max_scenario_loss is not None:
        out.max_scenario_loss.CopyFrom(money(limits.max_scenario_loss))
    if limits.scenario is not None:
        out.scenario.CopyFrom(_grid(limits.scenario))
    return out


def measures_to_proto(m: RiskMeasures) -> pb.RiskMeasures:
    """Current measures."""
    out = pb.RiskMeasures(
        beta_weighted_delta=m.beta_weighted_delta,
        delta_dollars=m.delta_dollars,
        vega=m.vega,
        theta=m.theta,
        max_concentration=m.max_concentration,
        max_concentration_underlying=m.max_concentration_underlying,
        compute_time=timestamp(m.compute_time),
    )
    if m.worst_scenario_pnl is not None:
        out.worst_scenario_pnl = m.worst_scenario_pnl
    return out


def scenario_to_proto(result: ScenarioResult, base: Decimal, mark_time: datetime) -> pb.RunScenarioResponse:
    """The RunScenario answer (packed columns)."""
    return pb.RunScenarioResponse(
        grid=_grid(result.grid),
        base_value=money(base),
        values=result.values.tolist(),
        pnls=result.pnls.tolist(),
        delta_dollars=result.delta_dollars.tolist(),
        dollar_gammas=result.dollar_gammas.tolist(),
        vegas=result.vegas.tolist(),
        thetas=result.thetas.tolist(),
        mark_time=timestamp(mark_time),
    )


def trade_to_proto(t: Trade) -> pb.ClosedTrade:
    """A closed trade."""
    assert t.close_time is not None and t.close_reason is not None
    return pb.ClosedTrade(
        trade_id=t.trade_id,
        underlying_symbol=t.underlying,
        strategy=t.strategy,
        strategy_group=t.group,
        symbols=t.symbols,
        open_time=timestamp(t.open_time),
        close_time=timestamp(t.close_time),
        close_reason=int(t.close_reason),
        realized_pnl=money(t.realized),
        commissions=money(t.commissions),
        fees=money(t.fees),
        dividends=money(t.dividends),
    )


def alert_to_proto(a: RiskAlert) -> alert_pb2.Alert:
    """A risk alert as tastyplat.type.v1.Alert (kind RISK_LIMIT_BREACH, state OPEN)."""
    b = a.breach
    return alert_pb2.Alert(
        alert_id=a.alert_id,
        user_id=a.user_id,
        account_number=a.account_number,
        kind=alert_pb2.ALERT_KIND_RISK_LIMIT_BREACH,
        severity=int(a.severity),
        state=alert_pb2.ALERT_STATE_OPEN,
        title=a.title,
        message=a.message,
        raise_time=timestamp(a.raise_time),
        risk_limit_breach=alert_pb2.RiskLimitBreach(
            limit=int(b.kind),
            limit_value=b.limit_value,
            observed_value=b.observed_value,
            underlying_symbol=b.underlying_symbol,
        ),
    )


def encode_alert(alert: RiskAlert) -> bytes:
    """The bus payload of a risk alert: serialized tastyplat.type.v1.Alert, as the delta monitor sends."""
    return alert_to_proto(alert).SerializeToString()


def snapshot_to_proto(s: Snapshot) -> pb.RiskSnapshot:
    """A recorded valuation."""
    return pb.RiskSnapshot(
        record_time=timestamp(s.record_time),
        net_liquidating_value=money(s.net_liquidating_value),
        unrealized_pnl=money(s.unrealized_pnl),
        delta_dollars=s.delta_dollars,
        beta_weighted_delta=s.beta_weighted_delta,
        theta=s.theta,
        vega=s.vega,
        benchmark_symbol=s.benchmark_symbol,
    )


