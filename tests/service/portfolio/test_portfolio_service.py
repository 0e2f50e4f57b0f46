"""PortfolioService through its generated stubs on a real server: Greeks, P&L, scenarios, risk limits, errors."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import grpc
import pytest
from tastyplat.portfolio.v1 import portfolio_service_pb2 as pb
from tastyplat.type.v1 import alert_pb2, money_pb2

from services.platform.error_mapping import decode_error
from services.portfolio.ports import ALERT_TOPIC
from tests.service.portfolio.conftest import ACCOUNT, PortfolioRig


def dec(m: money_pb2.Money) -> Decimal:
    return Decimal(m.units) + Decimal(m.nanos).scaleb(-9)


async def test_portfolio_lists_positions_with_fifo_cost_and_marks(rig: PortfolioRig) -> None:
    response = await rig.stub.GetPortfolio(pb.GetPortfolioRequest(account_number=ACCOUNT), metadata=rig.auth())
    by_symbol = {p.symbol: p for p in response.portfolio.positions}
    put = by_symbol["SPY   240419P00480000"]
    # Two short puts sold at 4.00, marked 3.10: value -620.00, cost -800.00, unrealized +180.00.
    assert dec(put.market_value) == Decimal("-620.00")
    assert dec(put.cost_basis) == Decimal("-800.00")
    assert dec(put.unrealized_pnl) == Decimal("180.00")
    assert put.strategy_group == "SPY 2024-04-19 short put"
    assert [p.underlying_symbol for p in response.portfolio.positions] == ["AAPL", "SPY", "SPY", "SPY"]
    # Short 50 AAPL at 190.00, marked 185.00: +250.00.
    assert dec(by_symbol["AAPL"].unrealized_pnl) == Decimal("250.00")


async def test_greeks_total_is_the_sum_of_the_positions(rig: PortfolioRig) -> None:
    response = await rig.stub.GetPortfolioGreeks(pb.GetPortfolioGreeksRequest(account_number=ACCOUNT), metadata=rig.auth())
    assert response.benchmark_symbol == "SPY"
    assert response.total.delta_dollars == pytest.approx(sum(p.delta_dollars for p in response.positions), rel=1e-12)
    assert response.total.vega == pytest.approx(sum(p.vega for p in response.positions), rel=1e-12)
    assert response.total.theta == pytest.approx(sum(p.theta for p in response.positions), rel=1e-12)
    assert response.total.beta_weighted_delta == pytest.approx(
        sum(p.beta_weighted_delta for p in response.positions), rel=1e-12
    )
    aapl = next(u for u in response.underlyings if u.underlying_symbol == "AAPL")
    spy = next(u for u in response.underlyings if u.underlying_symbol == "SPY")
    assert aapl.beta_source == pb.BETA_SOURCE_BROKER and aapl.beta == pytest.approx(1.2)
    assert spy.beta_source == pb.BETA_SOURCE_BENCHMARK
    # Short 50 AAPL: delta -50 shares, beta-weighted 1.2 x 185 x -50 / 500 = -22.2 SPY shares.
    assert aapl.delta_shares == pytest.approx(-50.0)
    assert aapl.beta_weighted_delta == pytest.approx(-22.2)
    put = next(p for p in response.positions if p.symbol.startswith("SPY   240419P"))
    # The implied vol was solved from the 3.10 mark, so the model price reproduces it.
    assert put.model_greeks.price == pytest.approx(3.10, abs=1e-6)


async def test_scenario_at_zero_equals_the_marks(rig: PortfolioRig) -> None:
    moves = [-0.2 + 0.01 * i for i in range(41)]
    moves[20] = 0.0
    grid = pb.ScenarioGrid(underlying_moves=moves, volatility_shifts=[-0.05, 0.0, 0.05], days_forward=[0, 7])
    response = await rig.stub.RunScenario(pb.RunScenarioRequest(account_number=ACCOUNT, grid=grid), metadata=rig.auth())
    base = dec(response.base_value)
    # 100 SPY x 500 - 50 AAPL x 185 + 1 x 6.30 x 100 - 2 x 3.10 x 100 = 50,000 - 9,250 + 630 - 620.
    assert base == Decimal("40760.00")
    zero = (0 * 3 + 1) * 41 + 20
    assert response.pnls[zero] == 0.0
    assert response.values[zero] == float(base)
    assert len(response.values) == 41 * 3 * 2


async def test_profit_and_loss_through_the_api(rig: PortfolioRig) -> None:
    response = await rig.stub.GetProfitAndLoss(pb.GetProfitAndLossRequest(account_number=ACCOUNT), metadata=rig.auth())
    rows = {r.key: r for r in response.positions}
    # SPY: 100 x (500 - 480) = 2,000.00 unrealized; day: 100 x (500 - 498) = 200.00; fees -0.08 realized.
    assert dec(rows["SPY"].unrealized_since_open) == Decimal("2000.00")
    assert dec(rows["SPY"].unrealized_today) == Decimal("200.00")
    assert dec(rows["SPY"].realized_since_open) == Decimal("-0.08")
    # Account fees: -0.08 - 0.06 - 2.27 - 1.11 = -3.52.
    assert dec(response.account.fees_since_open) == Decimal("-3.52")
    assert {s.key for s in response.strategies} == {"SPY 2024-04-19 short put", "SPY 2024-04-19 long call"}


async def test_a_risk_limit_breach_publishes_exactly_one_alert(rig: PortfolioRig) -> None:
    subscription = await rig.bus.subscribe(ALERT_TOPIC)
    limits = pb.RiskLimits(max_abs_delta_dollars=10_000.0)
    response = await rig.stub.SetRiskLimits(
        pb.SetRiskLimitsRequest(account_number=ACCOUNT, risk_limits=limits), metadata=rig.auth()
    )
    assert abs(response.measures.delta_dollars) > 10_000.0
    for _ in range(2):
        await rig.stub.GetPortfolioGreeks(pb.GetPortfolioGreeksRequest(account_number=ACCOUNT), metadata=rig.auth())
    delivery = await asyncio.wait_for(subscription.__anext__(), 5)
    await delivery.ack()
    alert = alert_pb2.Alert.FromString(delivery.payload)
    assert alert.kind == alert_pb2.ALERT_KIND_RISK_LIMIT_BREACH
    assert alert.risk_limit_breach.limit == 2  # RISK_LIMIT_KIND_MAX_DELTA_DOLLARS
    assert alert.account_number == ACCOUNT and alert.user_id == "alice"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(subscription.__anext__(), 0.5)
    listed = await rig.stub.ListRiskAlerts(pb.ListRiskAlertsRequest(account_number=ACCOUNT), metadata=rig.auth())
    assert [a.alert_id for a in listed.alerts] == [alert.alert_id]
    await subscription.close()


async def _error(call) -> tuple[grpc.StatusCode, str, list]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    rich = decode_error(raised.value)
    return rich.code, rich.reason, rich.field_violations


async def test_another_users_account_is_not_found(rig: PortfolioRig) -> None:
    code, reason, _ = await _error(
        rig.stub.GetPortfolioGreeks(pb.GetPortfolioGreeksRequest(account_number=ACCOUNT), metadata=rig.auth("mallory"))
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")


async def test_missing_token_and_empty_account_are_rejected(rig: PortfolioRig) -> None:
    code, reason, _ = await _error(rig.stub.GetPortfolio(pb.GetPortfolioRequest(account_number=ACCOUNT)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "AUTHENTICATION_REQUIRED")
    code, reason, violations = await _error(rig.stub.GetPortfolio(pb.GetPortfolioRequest(), metadata=rig.auth()))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED")
    assert violations[0][0] == "account_number"


async def test_bad_grid_names_the_element(rig: PortfolioRig) -> None:
    grid = pb.ScenarioGrid(underlying_moves=[0.0, -1.5])
    code, reason, violations = await _error(
        rig.stub.RunScenario(pb.RunScenarioRequest(account_number=ACCOUNT, grid=grid), metadata=rig.auth())
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
    assert violations[0][0] == "underlying_moves[1]"
    code, reason, _ = await _error(
        rig.stub.RunScenario(
            pb.RunScenarioRequest(account_number=ACCOUNT, grid=pb.ScenarioGrid(days_forward=[0.0] * 31)), metadata=rig.auth()
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "GRID_TOO_LARGE")


async def test_unexplained_position_is_history_incomplete(rig: PortfolioRig) -> None:
    from tests.service.portfolio.conftest import demo_book

    positions, history = demo_book()
    rig.broker.set_account(ACCOUNT, "alice", positions, history[1:])
    code, reason, _ = await _error(
        rig.stub.GetProfitAndLoss(pb.GetProfitAndLossRequest(account_number=ACCOUNT), metadata=rig.auth())
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "HISTORY_INCOMPLETE")


async def test_a_cleared_breach_alerts_again_when_it_returns(rig: PortfolioRig) -> None:
    subscription = await rig.bus.subscribe(ALERT_TOPIC)
    limits = pb.RiskLimits(max_concentration=0.9)
    request = pb.GetPortfolioGreeksRequest(account_number=ACCOUNT)
    await rig.stub.SetRiskLimits(pb.SetRiskLimitsRequest(account_number=ACCOUNT, risk_limits=limits), metadata=rig.auth())
    # SPY's absolute market values are 50,000 + 630 + 620 = 51,250 of 60,760 net liq: 0.84, within 0.9.
    listed = await rig.stub.ListRiskAlerts(pb.ListRiskAlertsRequest(account_number=ACCOUNT), metadata=rig.auth())
    assert list(listed.alerts) == []
    from tests.service.portfolio.conftest import demo_book

    positions, history = demo_book()
    rig.broker.set_account(ACCOUNT, "alice", positions[1:], history[:1] + history[2:], cash=D_ZERO)
    await rig.stub.GetPortfolioGreeks(request, metadata=rig.auth())  # SPY alone: concentration 1.0 > 0.9
    first = alert_pb2.Alert.FromString((await asyncio.wait_for(subscription.__anext__(), 5)).payload)
    rig.broker.set_account(ACCOUNT, "alice", positions, history, cash=Decimal("20000.00"))
    await rig.stub.GetPortfolioGreeks(request, metadata=rig.auth())  # back within: the breach clears
    rig.broker.set_account(ACCOUNT, "alice", positions[1:], history[:1] + history[2:], cash=D_ZERO)
    await rig.stub.GetPortfolioGreeks(request, metadata=rig.auth())
    second = alert_pb2.Alert.FromString((await asyncio.wait_for(subscription.__anext__(), 5)).payload)
    assert first.risk_limit_breach.underlying_symbol == second.risk_limit_breach.underlying_symbol == "SPY"
    assert second.alert_id > first.alert_id
    await subscription.close()


D_ZERO = Decimal(0)


async def test_the_monitor_rechecks_limits_without_a_call_while_the_token_is_valid(rig: PortfolioRig) -> None:
    subscription = await rig.bus.subscribe(ALERT_TOPIC)
    limits = pb.RiskLimits(max_abs_vega=1_000.0)
    response = await rig.stub.SetRiskLimits(
        pb.SetRiskLimitsRequest(account_number=ACCOUNT, risk_limits=limits), metadata=rig.auth()
    )
    assert abs(response.measures.vega) < 1_000.0
    from tests.service.portfolio.conftest import demo_book

    positions, history = demo_book()
    bigger = [p if p.option is None else dataclasses.replace(p, quantity=p.quantity * 100) for p in positions]
    rig.broker.set_account(ACCOUNT, "alice", bigger, history)
    rig.clock.advance(3600.0)  # the monitor's period in this rig
    delivery = await asyncio.wait_for(subscription.__anext__(), 5)
    alert = alert_pb2.Alert.FromString(delivery.payload)
    assert alert.risk_limit_breach.limit == 3  # RISK_LIMIT_KIND_MAX_VEGA
    await subscription.close()


async def test_closed_trades_page_newest_first_and_history_sums_by_day(rig: PortfolioRig) -> None:
    from tests.service.portfolio.conftest import C520, demo_book
    from tests.unit.portfolio.portfolio_history import at, trade
    from services.portfolio.domain.model import Action

    positions, history = demo_book()
    history += [
        trade(at("2024-03-02"), C520.symbol, Action.BUY_TO_OPEN, "1", "5.50", terms=C520, order="7"),
        trade(at("2024-03-04"), C520.symbol, Action.SELL_TO_CLOSE, "1", "6.00", terms=C520, fees="-0.10", order="8"),
        trade(at("2024-03-04", 16), "QQQ", Action.BUY, "10", "400.00", order="9"),
        trade(at("2024-03-05"), "QQQ", Action.SELL, "10", "390.00", order="10"),
    ]
    rig.broker.set_account(ACCOUNT, "alice", positions, history, cash=Decimal("20000.00"))
    first = await rig.stub.ListClosedTrades(pb.ListClosedTradesRequest(account_number=ACCOUNT, page_size=1), metadata=rig.auth())
    # QQQ: 10 x (390 - 400) = -100.00, closed last.
    assert [t.trade_id for t in first.closed_trades] == ["9"] and dec(first.closed_trades[0].realized_pnl) == Decimal("-100")
    assert first.closed_trades[0].strategy == "long stock"
    second = await rig.stub.ListClosedTrades(
        pb.ListClosedTradesRequest(account_number=ACCOUNT, page_size=1, page_token=first.next_page_token), metadata=rig.auth()
    )
    # The call bought at 5.50 (the FIFO lot of order 3 at 5.00 was opened first, so the sale closes it): order 3's
    # lot closes at 6.00: +100.00 - 1.11 (its opening fees) - 0.10 = +98.79, and order 7's lot stays open.
    assert [t.trade_id for t in second.closed_trades] == ["3"]
    assert dec(second.closed_trades[0].realized_pnl) == Decimal("98.79")
    assert second.next_page_token == ""
    history_response = await rig.stub.GetPortfolioHistory(
        pb.GetPortfolioHistoryRequest(account_number=ACCOUNT), metadata=rig.auth()
    )
    days = [(d.day_end_time.ToDatetime().date().isoformat(), dec(d.realized_pnl)) for d in history_response.daily_pnl]
    assert days[-2:] == [("2024-03-04", Decimal("99.90")), ("2024-03-05", Decimal("-100"))]
    assert dec(history_response.daily_pnl[-1].cumulative_realized_pnl) == sum(d for _, d in days)
