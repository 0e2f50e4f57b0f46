"""Transaction analysis reproduced for a hand-made set of trades and transactions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.reporting.domain.analysis import analyze
from tests.unit.reporting.reporting_data import sample_account

D = Decimal


def test_win_rate_averages_premium_and_fees() -> None:
    account = sample_account()
    a = analyze(account.trades, account.transactions)
    # Trades +150, -50, +300, -100: two winners of four.
    assert a.trade_count == 4
    assert a.win_rate == 0.5
    assert a.average_winner == D("225.00")
    assert a.average_loser == D("-75.00")
    assert a.realized_pnl == D("300.00")
    # Option sales: +400.00; option purchases: -250.00 - 120.00 = -370.00 (shares and dividends excluded).
    assert a.premium_collected == D("400.00")
    assert a.premium_paid == D("-370.00")
    # Commissions -1.00 - 1.00; fees -0.10 - 0.04 - 0.10 - 0.01 - 0.10 - 0.08 = -0.43.
    assert a.commissions == D("-2.00")
    assert a.fees == D("-0.43")


def test_buckets_by_underlying_strategy_and_month() -> None:
    account = sample_account()
    a = analyze(account.trades, account.transactions)
    spy = next(b for b in a.by_underlying if b.key == "SPY")
    assert (spy.trade_count, spy.win_rate, spy.realized_pnl) == (2, 0.5, D("100.00"))
    assert [b.key for b in a.by_underlying] == ["AAPL", "QQQ", "SPY"]
    assert [b.key for b in a.by_strategy] == ["iron condor", "long call", "short put"]
    # Closes: Mar 11, Mar 6, Apr 2 (30 days after Mar 3), Mar 6 (New York dates).
    assert [(b.key, b.trade_count) for b in a.by_month] == [("2024-03", 3), ("2024-04", 1)]
    assert spy.fees == D("-2.00")


def test_days_held_mean_and_median() -> None:
    account = sample_account()
    a = analyze(account.trades, account.transactions)
    assert a.average_days_held == pytest.approx((10 + 4 + 30 + 2.5) / 4)
    assert a.median_days_held == pytest.approx(7.0)


def test_no_trades_gives_zero_rates_not_errors() -> None:
    a = analyze([], [])
    assert (a.trade_count, a.win_rate, a.average_winner, a.average_days_held) == (0, 0.0, D(0), 0.0)
