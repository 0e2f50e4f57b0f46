"""FIFO lots and realized P&L reproduced exactly for hand-worked histories (figures worked out in comments)."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.portfolio.portfolio_history import at, dividend, option, removal, trade

from services.portfolio.domain.ledger import BookingKind, CloseReason, build_ledger
from services.portfolio.domain.model import Action, HeldPosition, InstrumentKind, TransactionType
from services.portfolio.domain.pnl import compute_pnl, value_positions

D = Decimal
SPY_P500 = option("SPY   240419P00500000", "SPY", False, 500.0, "2024-04-19")


def held(symbol: str, underlying: str, quantity: str, mark: str, close: str | None = None, *, opt=None) -> HeldPosition:
    return HeldPosition(
        symbol=symbol,
        underlying_symbol=underlying,
        instrument=InstrumentKind.EQUITY_OPTION if opt else InstrumentKind.EQUITY,
        quantity=D(quantity),
        multiplier=D(100) if opt else D(1),
        mark_price=D(mark),
        close_price=None if close is None else D(close),
        option=opt,
    )


def test_open_and_partial_close_realizes_the_closed_contract_and_keeps_two_open() -> None:
    # Sell 3 puts at 4.00 (commission -3.00, fees -0.35), buy 1 back at 2.50 (fees -0.12).
    # Gain on the closed contract: (2.50 - 4.00) x (-1) x 100 = +150.00; fees -3.47; realized +146.53.
    # Two remain short at 4.00: cost basis 4.00 x -2 x 100 = -800.00; at a 3.10 mark the value is -620.00,
    # so unrealized = -620.00 - (-800.00) = +180.00.
    history = [
        trade(at("2024-03-01"), SPY_P500.symbol, Action.SELL_TO_OPEN, "3", "4.00", terms=SPY_P500,
              commission="-3.00", fees="-0.35", order="1"),
        trade(at("2024-03-05"), SPY_P500.symbol, Action.BUY_TO_CLOSE, "1", "2.50", terms=SPY_P500,
              fees="-0.12", order="2"),
    ]
    ledger = build_ledger(history)
    assert ledger.quantity(SPY_P500.symbol) == D(-2)
    position = held(SPY_P500.symbol, "SPY", "-2", "3.10", close="3.30", opt=SPY_P500)
    [valuation] = value_positions(ledger, [position], at("2024-03-06"))
    assert valuation.cost_basis == D("-800.00")
    assert valuation.average_open_price == D("4.00")
    assert valuation.market_value == D("-620.00")
    assert valuation.unrealized_pnl == D("180.00")
    # Day P&L against the previous close 3.30: (3.10 - 3.30) x -2 x 100 = +40.00.
    assert valuation.day_pnl == D("40.00")
    report = compute_pnl(ledger, [valuation], at("2024-03-06"), "5WW1")
    [row] = report.positions
    assert row.realized_since_open == D("146.53")
    assert row.fees_since_open == D("-3.47")
    assert row.unrealized_since_open == D("180.00")
    assert row.realized_today == D(0)
    assert report.account.realized_since_open == D("146.53")
    assert report.strategies[0].key == "SPY 2024-04-19 short put"


def test_realized_today_counts_only_the_close_booked_today() -> None:
    history = [
        trade(at("2024-03-01"), SPY_P500.symbol, Action.SELL_TO_OPEN, "3", "4.00", terms=SPY_P500,
              commission="-3.00", fees="-0.35", order="1"),
        trade(at("2024-03-05"), SPY_P500.symbol, Action.BUY_TO_CLOSE, "1", "2.50", terms=SPY_P500,
              fees="-0.12", order="2"),
    ]
    ledger = build_ledger(history)
    position = held(SPY_P500.symbol, "SPY", "-2", "3.10", opt=SPY_P500)
    report = compute_pnl(ledger, value_positions(ledger, [position], at("2024-03-05", 19)), at("2024-03-05", 19), "A")
    # Today's close: +150.00 - 0.12 = +149.88.
    assert report.positions[0].realized_today == D("149.88")


def test_roll_closes_the_old_trade_and_opens_a_new_one() -> None:
    # Sell 1 AAPL 200 call at 2.00 (commission -1.00, fees -0.14). Roll in one order: buy it back at 3.00
    # (fees -0.13) and sell the 210 call a month out at 3.50 (commission -1.00, fees -0.14).
    # Old trade: (3.00 - 2.00) x (-1) x 100 = -100.00, fees -1.00 - 0.14 - 0.13 = -1.27: -101.27.
    # New trade: open, cost basis -350.00, its fees -1.14 already realized.
    c200 = option("AAPL  240419C00200000", "AAPL", True, 200.0, "2024-04-19")
    c210 = option("AAPL  240517C00210000", "AAPL", True, 210.0, "2024-05-17")
    history = [
        trade(at("2024-03-01"), c200.symbol, Action.SELL_TO_OPEN, "1", "2.00", terms=c200,
              commission="-1.00", fees="-0.14", order="10"),
        trade(at("2024-03-20"), c200.symbol, Action.BUY_TO_CLOSE, "1", "3.00", terms=c200, fees="-0.13", order="11"),
        trade(at("2024-03-20"), c210.symbol, Action.SELL_TO_OPEN, "1", "3.50", terms=c210,
              commission="-1.00", fees="-0.14", order="11"),
    ]
    ledger = build_ledger(history)
    [old] = ledger.closed_trades()
    assert old.trade_id == "10"
    assert old.realized == D("-101.27")
    assert old.close_reason is CloseReason.CLOSED
    new = ledger.trades["11"]
    assert new.close_time is None
    assert new.strategy == "short call"
    assert new.realized == D("-1.14")
    [valuation] = value_positions(ledger, [held(c210.symbol, "AAPL", "-1", "3.20", opt=c210)], at("2024-03-21"))
    assert valuation.cost_basis == D("-350.00")
    assert valuation.unrealized_pnl == D("30.00")


def test_assignment_realizes_the_premium_and_delivers_shares_at_the_strike() -> None:
    # Sell 1 RIVN 15 put at 0.50 (commission -1.00, fees -0.14); assigned: the put leaves at 0 and 100
    # shares arrive at 15.00. Put trade: +0.50 x 100 = +50.00, fees -1.14: +48.86, closed by assignment.
    p15 = option("RIVN  240315P00015000", "RIVN", False, 15.0, "2024-03-15")
    history = [
        trade(at("2024-03-01"), p15.symbol, Action.SELL_TO_OPEN, "1", "0.50", terms=p15,
              commission="-1.00", fees="-0.14", order="20"),
        removal(at("2024-03-15", 21), p15, "Assignment", "1"),
        trade(at("2024-03-15", 21), "RIVN", Action.BUY_TO_OPEN, "100", "15.00",
              kind=TransactionType.RECEIVE_DELIVER,
              sub_type="Buy to Open"),
    ]
    ledger = build_ledger(history)
    put_trade = ledger.trades["20"]
    assert put_trade.realized == D("48.86")
    assert put_trade.close_reason is CloseReason.ASSIGNED
    assert ledger.quantity("RIVN") == D(100)
    [valuation] = value_positions(ledger, [held("RIVN", "RIVN", "100", "14.20")], at("2024-03-18"))
    assert valuation.cost_basis == D("1500.00")
    assert valuation.unrealized_pnl == D("-80.00")


def test_expiration_worthless_realizes_the_whole_premium_paid() -> None:
    # Buy 2 TSLA 150 puts at 1.25 (commission -2.00, fees -0.21); they expire worthless:
    # (0 - 1.25) x 2 x 100 = -250.00, fees -2.21: -252.21.
    p150 = option("TSLA  240322P00150000", "TSLA", False, 150.0, "2024-03-22")
    history = [
        trade(at("2024-03-11"), p150.symbol, Action.BUY_TO_OPEN, "2", "1.25", terms=p150,
              commission="-2.00", fees="-0.21", order="30"),
        removal(at("2024-03-22", 21), p150, "Expiration", "2"),
    ]
    ledger = build_ledger(history)
    [closed] = ledger.closed_trades()
    assert closed.realized == D("-252.21")
    assert closed.close_reason is CloseReason.EXPIRED
    assert ledger.quantity(p150.symbol) == 0


def test_dividend_counts_in_the_stock_trade_and_since_open() -> None:
    # Buy 100 KO at 60.00 (fees -0.08); a 48.50 dividend; sell at 61.00 (fees -0.10):
    # +100.00 + 48.50 - 0.18 = +148.32.
    history = [
        trade(at("2024-01-10"), "KO", Action.BUY_TO_OPEN, "100", "60.00", fees="-0.08", order="40"),
        dividend(at("2024-02-01"), "KO", "48.50"),
        trade(at("2024-02-20"), "KO", Action.SELL_TO_CLOSE, "100", "61.00", fees="-0.10", order="41"),
    ]
    ledger = build_ledger(history)
    [closed] = ledger.closed_trades()
    assert closed.realized == D("148.32")
    assert closed.dividends == D("48.50")
    report = compute_pnl(ledger, [], at("2024-02-20", 19), "A")
    [row] = report.positions
    assert row.realized_today == D("99.90")
    assert row.realized_since_open == D("148.32")
    assert row.dividends_since_open == D("48.50")


def test_fifo_closes_the_oldest_lot_first_and_splits_fees_by_quantity() -> None:
    # Buy 100 at 10.00 (order A), 100 at 12.00 (order B), sell 150 at 13.00 with fees -0.30:
    # lot A +300.00 and fees -0.20; lot B 50 x +1.00 = +50.00 and fees -0.10; 50 remain at 12.00.
    history = [
        trade(at("2024-01-02"), "XYZ", Action.BUY, "100", "10.00", order="A"),
        trade(at("2024-01-03"), "XYZ", Action.BUY, "100", "12.00", order="B"),
        trade(at("2024-01-04"), "XYZ", Action.SELL, "150", "13.00", fees="-0.30", order="C"),
    ]
    ledger = build_ledger(history)
    assert ledger.trades["A"].realized == D("299.80")
    assert ledger.trades["B"].realized == D("49.90")
    assert ledger.trades["B"].close_time is None
    [lot] = ledger.lots["XYZ"]
    assert (lot.quantity, lot.price) == (D(50), D("12.00"))
    gains = [b.amount for b in ledger.bookings if b.kind is BookingKind.GAIN]
    assert gains == [D("300.00"), D("50.00")]


def test_a_close_without_an_open_position_is_reported_as_incomplete_history() -> None:
    history = [trade(at("2024-01-04"), "XYZ", Action.SELL_TO_CLOSE, "10", "13.00")]
    ledger = build_ledger(history)
    assert ledger.reconcile([]) == ("XYZ", "Sell To Close of 10 closes more than the 0 held")


def test_reconcile_names_the_symbol_whose_quantity_differs_from_the_broker() -> None:
    history = [trade(at("2024-01-02"), "XYZ", Action.BUY, "100", "10.00")]
    ledger = build_ledger(history)
    problem = ledger.reconcile([held("XYZ", "XYZ", "90", "10")])
    assert problem is not None and problem[0] == "XYZ"
