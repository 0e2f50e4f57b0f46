"""Portfolio Greeks aggregation: scaling, equity legs, grouping, beta weighting, and its validation errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import core_ext
import numpy as np
import pytest

from services.calculator.domain.aggregation import (
    Instrument,
    PortfolioRequest,
    Positions,
    aggregate_portfolio_greeks,
)
from services.calculator.domain.errors import (
    BatchTooLarge,
    FieldInvalid,
    FieldRequired,
    UnderlyingPriceMismatch,
)

CALL, PUT = 1, 2
EUROPEAN, AMERICAN = 1, 2


@dataclass
class Row:
    """One position, written the way a test reads best."""

    id: str
    symbol: str
    quantity: float
    price: float
    instrument: int = int(Instrument.OPTION)
    multiplier: float = 100.0
    beta: float | None = None
    kind: int = CALL
    style: int = AMERICAN
    strike: float = 100.0
    expiry: float = 0.25
    vol: float = 0.3
    rate: float = 0.04
    div: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict)


def equity(id: str, symbol: str, quantity: float, price: float, **kw: Any) -> Row:  # noqa: A002
    kw.setdefault("multiplier", 0.0)
    return Row(id, symbol, quantity, price, instrument=int(Instrument.EQUITY), kind=0, style=0,
               strike=0.0, expiry=0.0, vol=0.0, rate=0.0, div=0.0, **kw)


def request(rows: list[Row], benchmark_price: float = 500.0) -> PortfolioRequest:
    def col(name: str, dtype: Any = np.float64) -> Any:
        return np.array([getattr(r, name) for r in rows], dtype=dtype)

    positions = Positions(
        ids=[r.id for r in rows],
        underlying_symbols=[r.symbol for r in rows],
        instrument=col("instrument", np.int64),
        quantity=col("quantity"),
        multiplier=col("multiplier"),
        underlying_price=col("price"),
        beta=np.array([0.0 if r.beta is None else r.beta for r in rows], dtype=np.float64),
        has_beta=np.array([r.beta is not None for r in rows], dtype=np.bool_),
        kind=col("kind", np.int64),
        style=col("style", np.int64),
        strike_price=col("strike"),
        expiry_years=col("expiry"),
        volatility=col("vol"),
        rate=col("rate"),
        dividend_yield=col("div"),
    )
    return PortfolioRequest(positions=positions, benchmark_symbol="SPY", benchmark_price=benchmark_price)


def fields(exc: pytest.ExceptionInfo[Any]) -> list[str]:
    return [v.field for v in exc.value.field_violations]


def test_option_position_is_per_share_greeks_times_quantity_and_multiplier() -> None:
    result = aggregate_portfolio_greeks(request([Row("p", "AAPL", -3, 190.0, kind=PUT, strike=180.0)]))
    direct = core_ext.greeks("put", 190.0, 180.0, 0.25, 0.3, rate=0.04, dividend_yield=0.01, style="american")
    p = result.positions
    assert p.market_value[0] == pytest.approx(direct.price * -300.0, rel=1e-15)
    assert p.delta_shares[0] == pytest.approx(direct.delta * -300.0, rel=1e-15)
    assert p.delta_dollars[0] == pytest.approx(direct.delta * -300.0 * 190.0, rel=1e-15)
    assert p.gamma[0] == pytest.approx(direct.gamma * -300.0, rel=1e-15)
    assert p.theta[0] == pytest.approx(direct.theta * -300.0, rel=1e-15)
    assert p.vega[0] == pytest.approx(direct.vega * -300.0, rel=1e-15)
    assert p.rho[0] == pytest.approx(direct.rho * -300.0, rel=1e-15)
    assert p.vanna[0] == pytest.approx(direct.vanna * -300.0, rel=1e-15)
    assert p.charm[0] == pytest.approx(direct.charm * -300.0, rel=1e-15)


def test_european_and_american_legs_are_priced_with_their_own_model() -> None:
    rows = [Row("eu", "SPX", 1, 5000.0, style=EUROPEAN, kind=PUT, strike=5500.0),
            Row("am", "SPX", 1, 5000.0, style=AMERICAN, kind=PUT, strike=5500.0)]
    result = aggregate_portfolio_greeks(request(rows))
    for i, style in enumerate(("european", "american")):
        direct = core_ext.greeks("put", 5000.0, 5500.0, 0.25, 0.3, rate=0.04, dividend_yield=0.01, style=style)
        assert result.positions.market_value[i] == pytest.approx(direct.price * 100.0, rel=1e-15)


def test_equity_position_has_delta_one_per_share_and_no_other_greeks() -> None:
    result = aggregate_portfolio_greeks(request([equity("s", "MSFT", -50, 400.0)]))
    p = result.positions
    assert p.market_value[0] == -20_000.0
    assert p.delta_shares[0] == -50.0
    assert p.delta_dollars[0] == -20_000.0
    for name in ("gamma", "theta", "vega", "rho", "vanna", "charm"):
        value = getattr(p, name)[0]
        assert value == 0.0 and math.copysign(1.0, value) == 1.0, name  # no -0.0 for a short position


def test_equity_multiplier_given_is_used() -> None:
    result = aggregate_portfolio_greeks(request([equity("s", "MSFT", 2, 400.0, multiplier=10.0)]))
    assert result.positions.delta_shares[0] == 20.0


def test_beta_weighted_delta_is_beta_times_price_times_delta_over_benchmark() -> None:
    rows = [Row("c", "TSLA", 2, 250.0, beta=2.0), equity("s", "TSLA", 100, 250.0, beta=2.0)]
    result = aggregate_portfolio_greeks(request(rows, benchmark_price=500.0))
    p = result.positions
    for i in range(2):
        assert p.beta_weighted_delta[i] == pytest.approx(2.0 * 250.0 * p.delta_shares[i] / 500.0, rel=1e-15)
    assert p.beta_weighted_delta[1] == 100.0  # 100 shares at beta 2, half the benchmark's price
    (tsla,) = result.underlyings
    assert tsla.beta_weighted_delta == pytest.approx(2.0 * 250.0 * tsla.delta_shares / 500.0, rel=1e-15)
    assert result.total.beta_weighted_delta_dollars == pytest.approx(tsla.beta_weighted_delta * 500.0, rel=1e-15)


def test_unset_beta_means_one() -> None:
    result = aggregate_portfolio_greeks(request([equity("s", "QQQ", 10, 400.0)], benchmark_price=400.0))
    assert result.underlyings[0].beta == 1.0
    assert result.positions.beta_weighted_delta[0] == 10.0


def test_underlyings_are_summed_and_sorted_by_symbol_and_totals_add_dollars() -> None:
    rows = [
        Row("1", "MSFT", 1, 400.0, strike=410.0, beta=0.9),
        equity("2", "AAPL", 100, 190.0, beta=1.2),
        Row("3", "AAPL", -1, 190.0, kind=PUT, strike=180.0, beta=1.2),
        Row("4", "MSFT", 2, 400.0, strike=390.0, beta=0.9),
    ]
    result = aggregate_portfolio_greeks(request(rows))
    assert [u.underlying_symbol for u in result.underlyings] == ["AAPL", "MSFT"]
    aapl, msft = result.underlyings
    p = result.positions
    assert aapl.position_count == 2 and msft.position_count == 2
    assert aapl.delta_shares == pytest.approx(p.delta_shares[1] + p.delta_shares[2], rel=1e-14)
    assert msft.vega == pytest.approx(p.vega[0] + p.vega[3], rel=1e-14)
    assert aapl.delta_dollars == pytest.approx(aapl.delta_shares * 190.0, rel=1e-14)
    assert (aapl.beta, msft.beta) == (1.2, 0.9)
    t = result.total
    assert t.position_count == 4
    assert t.market_value == pytest.approx(sum(p.market_value), rel=1e-14)
    assert t.delta_dollars == pytest.approx(aapl.delta_dollars + msft.delta_dollars, rel=1e-14)
    assert t.beta_weighted_delta == pytest.approx(aapl.beta_weighted_delta + msft.beta_weighted_delta, rel=1e-14)
    assert result.positions.ids == ["1", "2", "3", "4"]


def test_empty_portfolio_has_zero_totals() -> None:
    result = aggregate_portfolio_greeks(request([]))
    assert result.underlyings == () and result.total.position_count == 0 and result.total.market_value == 0.0


def test_different_prices_for_one_underlying_are_a_mismatch() -> None:
    rows = [equity("a", "SPY", 1, 500.0), equity("b", "QQQ", 1, 400.0), equity("c", "SPY", 1, 501.0)]
    with pytest.raises(UnderlyingPriceMismatch) as exc:
        aggregate_portfolio_greeks(request(rows))
    assert fields(exc) == ["positions[2].underlying_price"]
    assert "positions[0]" in exc.value.field_violations[0].description


def test_different_betas_for_one_underlying_are_a_mismatch_unset_meaning_one() -> None:
    rows = [equity("a", "SPY", 1, 500.0), equity("b", "SPY", 1, 500.0, beta=1.0), equity("c", "SPY", 1, 500.0, beta=1.1)]
    with pytest.raises(UnderlyingPriceMismatch) as exc:
        aggregate_portfolio_greeks(request(rows))
    assert fields(exc) == ["positions[2].beta"]


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        ({"instrument": 0}, "positions[0].instrument", FieldRequired),
        ({"symbol": ""}, "positions[0].underlying_symbol", FieldRequired),
        ({"kind": 0}, "positions[0].option.kind", FieldRequired),
        ({"style": 0}, "positions[0].option.style", FieldRequired),
        ({"multiplier": 0.0}, "positions[0].multiplier", FieldRequired),
        ({"multiplier": -100.0}, "positions[0].multiplier", FieldInvalid),
        ({"quantity": math.nan}, "positions[0].quantity", FieldInvalid),
        ({"price": 0.0}, "positions[0].underlying_price", FieldInvalid),
        ({"strike": -1.0}, "positions[0].option.strike_price", FieldInvalid),
        ({"expiry": -0.1}, "positions[0].option.expiry_years", FieldInvalid),
        ({"vol": 0.0}, "positions[0].option.volatility", FieldInvalid),
        ({"rate": math.inf}, "positions[0].option.rate", FieldInvalid),
        ({"beta": math.nan}, "positions[0].beta", FieldInvalid),
        ({"kind": 9}, "positions[0].option.kind", FieldInvalid),
        ({"rate": -0.01}, "positions[0].option.rate", FieldInvalid),
    ],
)
def test_bad_position_field_is_named(change: dict[str, Any], field: str, error: type[Exception]) -> None:
    row = Row("x", "AAPL", 1, 190.0)
    for key, value in change.items():
        setattr(row, key, value)
    with pytest.raises(error) as exc:
        aggregate_portfolio_greeks(request([equity("ok", "AAPL", 1, 190.0), row]))
    assert fields(exc) == [field.replace("[0]", "[1]")]


def test_european_leg_may_have_a_negative_rate() -> None:
    result = aggregate_portfolio_greeks(request([Row("eu", "SPX", 1, 5000.0, style=EUROPEAN, rate=-0.005,
                                                     strike=5000.0)]))
    assert result.positions.market_value[0] > 0.0


def test_equity_leg_ignores_option_fields_and_accepts_zero_multiplier() -> None:
    result = aggregate_portfolio_greeks(request([equity("s", "AAPL", 1, 190.0)]))
    assert result.positions.delta_shares[0] == 1.0


@pytest.mark.parametrize(("price", "error"), [(0.0, FieldRequired), (-1.0, FieldInvalid), (math.nan, FieldInvalid)])
def test_benchmark_price_must_be_given_and_positive(price: float, error: type[Exception]) -> None:
    with pytest.raises(error) as exc:
        aggregate_portfolio_greeks(request([equity("s", "AAPL", 1, 190.0)], benchmark_price=price))
    assert fields(exc) == ["benchmark_price"]


def test_more_than_the_limit_of_positions_is_batch_too_large() -> None:
    n = 100_001
    rows = request([equity("s", "AAPL", 1, 190.0)])
    p = rows.positions
    big = Positions(**{name: (list(getattr(p, name)) * n if isinstance(getattr(p, name), list)
                              else np.repeat(getattr(p, name), n)) for name in Positions.__slots__})
    with pytest.raises(BatchTooLarge) as exc:
        aggregate_portfolio_greeks(PortfolioRequest(big, "SPY", 500.0))
    assert "100,000" in exc.value.message


def test_overflowing_position_is_field_invalid_not_infinity() -> None:
    with pytest.raises(FieldInvalid) as exc:
        aggregate_portfolio_greeks(request([equity("s", "AAPL", 1e300, 1e300)]))
    assert fields(exc) == ["positions[0].quantity"]
