"""Portfolio Greeks are the sum of core_ext's position Greeks; the scenario grid re-prices from the marks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

import core_ext
from services.portfolio.domain.errors import FieldInvalid, GridTooLarge
from services.portfolio.domain.greeks import BetaSource, build_book, compute_greeks
from services.portfolio.domain.model import HeldPosition, InstrumentKind, MarketInputs, OptionTerms
from services.portfolio.domain.scenario import run_scenario, validate_grid

NOW = datetime(2024, 3, 1, 15, tzinfo=UTC)
D = Decimal


def _option(symbol: str, underlying: str, is_call: bool, strike: float, days: int, quantity: str, mark: str,
            american: bool = True) -> HeldPosition:
    terms = OptionTerms(symbol, underlying, is_call, strike, NOW + timedelta(days=days), american, 100.0)
    return HeldPosition(symbol, underlying, InstrumentKind.EQUITY_OPTION, D(quantity), D(100), D(mark), option=terms)


def _book_positions() -> list[HeldPosition]:
    return [
        HeldPosition("SPY", "SPY", InstrumentKind.EQUITY, D(100), D(1), D("500.00")),
        _option("SPY P480", "SPY", False, 480.0, 30, "-2", "4.10"),
        _option("SPY C520", "SPY", True, 520.0, 45, "1", "6.30"),
        _option("SPX C5000", "SPX", True, 5000.0, 60, "-1", "90.00", american=False),
        _option("AAPL P180", "AAPL", False, 180.0, 20, "3", "2.20"),
        HeldPosition("AAPL", "AAPL", InstrumentKind.EQUITY, D(-50), D(1), D("185.00")),
    ]


INPUTS = MarketInputs(
    prices={"SPY": 500.0, "SPX": 5010.0, "AAPL": 185.0},
    dividend_yields={"SPY": 0.013, "SPX": 0.014, "AAPL": 0.005},
    rate=0.045,
    implied_volatilities={"SPY P480": 0.17, "SPY C520": 0.13, "SPX C5000": 0.15, "AAPL P180": 0.26},
)
BETAS = {"SPY": (1.0, BetaSource.BENCHMARK), "AAPL": (1.2, BetaSource.BROKER)}


def test_portfolio_greeks_equal_the_sum_of_core_ext_position_greeks() -> None:
    positions = _book_positions()
    greeks = compute_greeks(build_book(positions, INPUTS, NOW), BETAS, "SPY", 500.0)
    expected = {"delta": 0.0, "delta_dollars": 0.0, "gamma": 0.0, "theta": 0.0, "vega": 0.0, "bwd": 0.0}
    for p in positions:
        spot = INPUTS.prices[p.underlying_symbol]
        weight = float(p.quantity * p.multiplier)
        if p.option is None:
            d, g, t, v = 1.0, 0.0, 0.0, 0.0
        else:
            o = p.option
            one = core_ext.greeks(
                "call" if o.is_call else "put", spot, o.strike, (o.expiration_time - NOW) / timedelta(days=365),
                INPUTS.implied_volatilities[p.symbol], INPUTS.rate, INPUTS.dividend_yields[p.underlying_symbol],
                "american" if o.american else "european",
            )
            d, g, t, v = one.delta, one.gamma, one.theta, one.vega
        beta = BETAS.get(p.underlying_symbol, (1.0, BetaSource.DEFAULT))[0]
        expected["delta"] += d * weight
        expected["delta_dollars"] += d * weight * spot
        expected["gamma"] += g * weight
        expected["theta"] += t * weight
        expected["vega"] += v * weight
        expected["bwd"] += beta * d * weight * spot / 500.0
    assert greeks.total_delta_dollars == pytest.approx(expected["delta_dollars"], rel=1e-9, abs=1e-9)
    assert float(greeks.delta_shares.sum()) == pytest.approx(expected["delta"], rel=1e-9, abs=1e-9)
    assert float(greeks.gamma.sum()) == pytest.approx(expected["gamma"], rel=1e-9, abs=1e-12)
    assert greeks.total_theta == pytest.approx(expected["theta"], rel=1e-9, abs=1e-9)
    assert greeks.total_vega == pytest.approx(expected["vega"], rel=1e-9, abs=1e-9)
    assert greeks.total_beta_weighted_delta == pytest.approx(expected["bwd"], rel=1e-9, abs=1e-9)
    by_underlying = {u.underlying_symbol: u for u in greeks.underlyings}
    assert sum(u.delta_dollars for u in by_underlying.values()) == pytest.approx(greeks.total_delta_dollars)
    assert by_underlying["SPX"].beta_source is BetaSource.DEFAULT


def test_an_option_without_any_volatility_is_market_data_unavailable() -> None:
    positions = [_option("QQQ P400", "QQQ", False, 400.0, 30, "1", "3.00")]
    with pytest.raises(Exception) as raised:
        build_book(positions, MarketInputs(prices={"QQQ": 410.0}), NOW)
    assert getattr(raised.value, "reason", "") == "MARKET_DATA_UNAVAILABLE"


def _base_value(positions: list[HeldPosition]) -> Decimal:
    return sum((p.mark_price * p.quantity * p.multiplier for p in positions), D(0))  # type: ignore[operator]


def test_scenario_at_zero_move_shift_and_days_equals_the_marks() -> None:
    positions = _book_positions()
    book = build_book(positions, INPUTS, NOW)
    moves = [round(-0.2 + 0.01 * i, 10) for i in range(41)]
    shifts = [round(-0.1 + 0.01 * i, 10) for i in range(21)]
    grid = validate_grid(moves, shifts, [0, 1, 5, 10, 20], book)
    base = _base_value(positions)
    result = run_scenario(book, grid, float(base))
    zero = (0 * len(shifts) + shifts.index(0.0)) * len(moves) + moves.index(0.0)
    assert result.pnls[zero] == 0.0
    assert result.values[zero] == float(base)
    assert result.values.shape == (41 * 21 * 5,)
    assert np.all(np.isfinite(result.values))


def test_scenario_point_matches_a_direct_reprice_with_core_ext() -> None:
    positions = _book_positions()
    book = build_book(positions, INPUTS, NOW)
    grid = validate_grid([0.0, -0.1], [0.0, 0.05], [0.0, 7.0], book)
    result = run_scenario(book, grid, float(_base_value(positions)), threads=1)
    # Point (day 7, shift +0.05, move -10 %): index (1 x 2 + 1) x 2 + 1 = 7.
    expected_pnl = 0.0
    for p in positions:
        spot = INPUTS.prices[p.underlying_symbol]
        weight = float(p.quantity * p.multiplier)
        if p.option is None:
            expected_pnl += weight * spot * -0.1
            continue
        o = p.option
        t = (o.expiration_time - NOW) / timedelta(days=365)
        args = dict(kind="call" if o.is_call else "put", strike=o.strike, rate=INPUTS.rate,
                    dividend_yield=INPUTS.dividend_yields[p.underlying_symbol],
                    style="american" if o.american else "european")
        sigma = INPUTS.implied_volatilities[p.symbol]
        now_value = core_ext.greeks(spot=spot, expiry_years=t, volatility=sigma, **args).price
        then = core_ext.greeks(spot=spot * 0.9, expiry_years=t - 7 / 365, volatility=sigma + 0.05, **args).price
        expected_pnl += weight * (then - now_value)
    assert result.pnls[7] == pytest.approx(expected_pnl, rel=1e-9)


def test_grid_limits_and_bad_elements_are_rejected_with_the_element_named() -> None:
    book = build_book(_book_positions(), INPUTS, NOW)
    with pytest.raises(GridTooLarge):
        validate_grid([0.0] * 102, [], [], book)
    with pytest.raises(FieldInvalid) as bad_move:
        validate_grid([0.1, -1.0], [], [], book)
    assert bad_move.value.field == "underlying_moves[1]"
    with pytest.raises(FieldInvalid) as bad_shift:
        validate_grid([], [0.0, -0.2], [], book)
    assert bad_shift.value.field == "volatility_shifts[1]"
    with pytest.raises(FieldInvalid) as bad_day:
        validate_grid([], [], [math.nan], book)
    assert bad_day.value.field == "days_forward[0]"
