"""Calculator pricing rules: single-option validation, batch shape and element rules, kernel results vouched for."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import core_ext
import numpy as np
import pytest

from services.calculator.domain import pricing
from services.calculator.domain.errors import (
    BatchTooLarge,
    ColumnLengthMismatch,
    FieldInvalid,
    FieldRequired,
    PriceAboveMaximum,
    PriceBelowIntrinsic,
)
from services.calculator.domain.model import (
    GREEKS_OUTPUTS,
    MAX_BATCH_SIZE,
    GreeksBatch,
    GreeksInputs,
    ImpliedVolatilityBatch,
    ImpliedVolatilityInputs,
)

CALL, PUT = 1, 2
EUROPEAN, AMERICAN = 1, 2

HULL_CALL = GreeksInputs(kind=CALL, spot_price=42.0, strike_price=40.0, expiry_years=0.5, volatility=0.2,
                         rate=0.1, dividend_yield=0.0, style=EUROPEAN)


def f64(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def greeks_batch(n: int = 4, **overrides: Any) -> GreeksBatch:
    rng = np.random.default_rng(n)
    columns: dict[str, Any] = {
        "is_call": np.arange(n) % 2 == 0,
        "spot_prices": rng.uniform(80.0, 120.0, n),
        "strike_prices": rng.uniform(80.0, 120.0, n),
        "expiry_years": rng.uniform(0.05, 2.0, n),
        "volatilities": rng.uniform(0.1, 0.6, n),
        "rates": rng.uniform(0.0, 0.05, n),
        "dividend_yields": rng.uniform(0.0, 0.03, n),
        "style": EUROPEAN,
    }
    columns.update(overrides)
    return GreeksBatch(**columns)


def iv_batch(n: int = 4, **overrides: Any) -> ImpliedVolatilityBatch:
    source = greeks_batch(n)
    prices = core_ext.greeks_array(
        source.is_call, source.spot_prices, source.strike_prices, source.expiry_years, source.volatilities,
        source.rates, source.dividend_yields,
    ).price
    columns: dict[str, Any] = {
        "is_call": source.is_call,
        "option_prices": np.asarray(prices, dtype=np.float64),
        "spot_prices": source.spot_prices,
        "strike_prices": source.strike_prices,
        "expiry_years": source.expiry_years,
        "rates": source.rates,
        "dividend_yields": source.dividend_yields,
        "style": EUROPEAN,
    }
    columns.update(overrides)
    return ImpliedVolatilityBatch(**columns)


def fields(exc: pytest.ExceptionInfo[Any]) -> list[str]:
    return [v.field for v in exc.value.field_violations]


# Single option


def test_greeks_equal_core_ext_called_directly() -> None:
    got = pricing.compute_greeks(HULL_CALL)
    direct = core_ext.greeks("call", 42.0, 40.0, 0.5, 0.2, rate=0.1, dividend_yield=0.0, style="european")
    for name in GREEKS_OUTPUTS:
        assert getattr(got, name) == getattr(direct, name), name
    assert got.price == pytest.approx(4.76, abs=0.005)  # Hull's example


def test_greeks_american_style_uses_the_american_model() -> None:
    put = replace(HULL_CALL, kind=PUT, style=AMERICAN, strike_price=50.0)
    got = pricing.compute_greeks(put)
    direct = core_ext.greeks("put", 42.0, 50.0, 0.5, 0.2, rate=0.1, dividend_yield=0.0, style="american")
    european = core_ext.greeks("put", 42.0, 50.0, 0.5, 0.2, rate=0.1, dividend_yield=0.0, style="european")
    assert got.price == direct.price
    assert got.price >= european.price


@pytest.mark.parametrize(("field", "value"), [("kind", 0), ("style", 0)])
def test_greeks_unspecified_enum_is_field_required(field: str, value: int) -> None:
    with pytest.raises(FieldRequired) as exc:
        pricing.compute_greeks(replace(HULL_CALL, **{field: value}))
    assert fields(exc) == [field]


def test_greeks_unknown_enum_value_is_field_invalid() -> None:
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks(replace(HULL_CALL, kind=7))
    assert fields(exc) == ["kind"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spot_price", 0.0),
        ("spot_price", -1.0),
        ("strike_price", math.nan),
        ("volatility", 0.0),
        ("volatility", math.inf),
        ("expiry_years", -1e-9),
        ("rate", math.nan),
        ("dividend_yield", -math.inf),
    ],
)
def test_greeks_bad_number_is_field_invalid_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks(replace(HULL_CALL, **{field: value}))
    assert fields(exc) == [field]
    assert exc.value.reason == "FIELD_INVALID"


def test_greeks_lists_every_bad_field_and_reports_required_first() -> None:
    with pytest.raises(FieldRequired) as exc:
        pricing.compute_greeks(replace(HULL_CALL, style=0, spot_price=math.nan, volatility=-1.0))
    assert fields(exc) == ["spot_price", "volatility", "style"]
    assert [v.reason for v in exc.value.field_violations] == ["FIELD_INVALID", "FIELD_INVALID", "FIELD_REQUIRED"]


def test_greeks_expiring_now_is_intrinsic_value() -> None:
    got = pricing.compute_greeks(replace(HULL_CALL, expiry_years=0.0))
    assert got.price == pytest.approx(2.0)
    assert got.delta == 1.0
    assert got.gamma == 0.0


def test_greeks_overflowing_the_model_is_field_invalid_not_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    def overflowing(*args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(**{name: (math.inf if name == "price" else 0.0) for name in GREEKS_OUTPUTS})

    monkeypatch.setattr(pricing.core_ext, "greeks", overflowing)
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks(HULL_CALL)
    assert "spot_price" in fields(exc)


IV_INPUTS = ImpliedVolatilityInputs(kind=CALL, option_price=4.759422392871532, spot_price=42.0, strike_price=40.0,
                                    expiry_years=0.5, rate=0.1, dividend_yield=0.0, style=EUROPEAN)


def test_implied_volatility_recovers_sigma() -> None:
    price = core_ext.greeks("call", 42.0, 40.0, 0.5, 0.2, rate=0.1).price
    assert pricing.compute_implied_volatility(replace(IV_INPUTS, option_price=price)) == pytest.approx(0.2, rel=1e-10)


def test_implied_volatility_below_intrinsic_raises_on_option_price() -> None:
    with pytest.raises(PriceBelowIntrinsic) as exc:
        pricing.compute_implied_volatility(replace(IV_INPUTS, option_price=1.5))
    assert fields(exc) == ["option_price"]


def test_implied_volatility_above_maximum_raises_on_option_price() -> None:
    with pytest.raises(PriceAboveMaximum) as exc:
        pricing.compute_implied_volatility(replace(IV_INPUTS, option_price=42.5))
    assert fields(exc) == ["option_price"]
    assert "discounted spot" in exc.value.message


@pytest.mark.parametrize(("field", "value"), [("expiry_years", 0.0), ("option_price", 0.0), ("option_price", -1.0)])
def test_implied_volatility_needs_positive_price_and_expiry(field: str, value: float) -> None:
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_implied_volatility(replace(IV_INPUTS, **{field: value}))
    assert fields(exc) == [field]


# Batch shape


def test_batch_over_the_limit_names_the_limit() -> None:
    n = MAX_BATCH_SIZE + 1
    batch = greeks_batch(1, spot_prices=np.full(n, 100.0))
    with pytest.raises(BatchTooLarge) as exc:
        pricing.compute_greeks_batch(batch)
    assert "100,000" in exc.value.message
    assert exc.value.metadata == {"limit": "100000", "size": str(n)}


def test_batch_at_the_limit_is_computed() -> None:
    result = pricing.compute_greeks_batch(greeks_batch(MAX_BATCH_SIZE))
    assert result.size == MAX_BATCH_SIZE
    assert not result.status.any()


def test_batch_style_unspecified_is_field_required() -> None:
    with pytest.raises(FieldRequired) as exc:
        pricing.compute_greeks_batch(greeks_batch(style=0))
    assert fields(exc) == ["style"]


def test_batch_column_of_wrong_length_is_a_mismatch_naming_the_column() -> None:
    with pytest.raises(ColumnLengthMismatch) as exc:
        pricing.compute_greeks_batch(greeks_batch(4, volatilities=f64(0.2, 0.3)))
    assert fields(exc) == ["volatilities"]


def test_batch_empty_required_column_is_field_required() -> None:
    with pytest.raises(FieldRequired) as exc:
        pricing.compute_greeks_batch(greeks_batch(4, strike_prices=f64()))
    assert fields(exc) == ["strike_prices"]


def test_batch_broadcasts_length_one_columns_and_empty_rates_mean_zero() -> None:
    spots = f64(90.0, 100.0, 110.0)
    batch = GreeksBatch(is_call=np.array([True]), spot_prices=spots, strike_prices=f64(100.0),
                        expiry_years=f64(0.5), volatilities=f64(0.25), rates=f64(), dividend_yields=f64(),
                        style=EUROPEAN)
    result = pricing.compute_greeks_batch(batch)
    for i, spot in enumerate(spots):
        direct = core_ext.greeks("call", float(spot), 100.0, 0.5, 0.25, rate=0.0, dividend_yield=0.0)
        assert result.price[i] == direct.price
        assert result.charm[i] == direct.charm


def test_empty_batch_answers_empty_columns() -> None:
    empty = f64()
    batch = GreeksBatch(is_call=np.array([], dtype=np.bool_), spot_prices=empty, strike_prices=empty,
                        expiry_years=empty, volatilities=empty, rates=empty, dividend_yields=empty, style=EUROPEAN)
    result = pricing.compute_greeks_batch(batch)
    assert result.size == 0 and len(result.price) == 0


# Batch elements


def test_batch_values_equal_core_ext_greeks_array() -> None:
    batch = greeks_batch(1000, style=AMERICAN)
    result = pricing.compute_greeks_batch(batch)
    direct = core_ext.greeks_array(batch.is_call, batch.spot_prices, batch.strike_prices, batch.expiry_years,
                                   batch.volatilities, batch.rates, batch.dividend_yields, style="american")
    for name in GREEKS_OUTPUTS:
        np.testing.assert_array_equal(getattr(result, name), getattr(direct, name), err_msg=name)
    assert not result.status.any()


def test_bad_elements_are_named_with_column_and_index_in_element_order() -> None:
    batch = greeks_batch(50)
    batch.volatilities[42] = 0.0
    batch.spot_prices[17] = math.nan
    batch.expiry_years[17] = -1.0
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks_batch(batch)
    assert fields(exc) == ["spot_prices[17]", "expiry_years[17]", "volatilities[42]"]
    assert exc.value.metadata["invalid_inputs"] == "3"


def test_only_the_first_hundred_bad_elements_are_listed() -> None:
    batch = greeks_batch(500)
    batch.strike_prices[::2] = -1.0
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks_batch(batch)
    assert len(exc.value.field_violations) == 100
    assert fields(exc)[:2] == ["strike_prices[0]", "strike_prices[2]"]
    assert exc.value.metadata["invalid_inputs"] == "250"


def test_bad_broadcast_value_is_named_at_index_zero() -> None:
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks_batch(greeks_batch(8, rates=f64(math.nan)))
    assert fields(exc) == ["rates[0]"]


def test_marked_invalid_elements_get_status_and_nan_the_rest_are_computed() -> None:
    batch = greeks_batch(6, mark_invalid_elements=True)
    batch.spot_prices[1] = -5.0
    batch.volatilities[4] = math.inf
    result = pricing.compute_greeks_batch(batch)
    invalid = int(core_ext.Status.INVALID_INPUT)
    assert result.status.tolist() == [0, invalid, 0, 0, invalid, 0]
    for name in GREEKS_OUTPUTS:
        column = getattr(result, name)
        assert np.isnan(column[[1, 4]]).all(), name
        assert np.isfinite(column[[0, 2, 3, 5]]).all(), name


def leaky_kernel(monkeypatch: pytest.MonkeyPatch, element: int, *, refuse: bool) -> None:
    """Make greeks_array misbehave on one element: refuse it (INVALID_INPUT) or give an infinite vega as OK."""
    real = core_ext.greeks_array

    def leaky(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        values = {name: np.array(getattr(out, name), dtype=np.float64) for name in GREEKS_OUTPUTS}
        status = np.zeros(len(values["price"]), dtype=np.int8)
        if refuse:
            status[element] = int(core_ext.Status.INVALID_INPUT)
            for column in values.values():
                column[element] = math.nan
        else:
            values["vega"][element] = math.inf
        return SimpleNamespace(status=status, **values)

    monkeypatch.setattr(pricing.core_ext, "greeks_array", leaky)


@pytest.mark.parametrize("refuse", [True, False], ids=["kernel-refuses", "kernel-overflows"])
def test_element_beyond_the_model_fails_the_call_naming_it(monkeypatch: pytest.MonkeyPatch, refuse: bool) -> None:
    leaky_kernel(monkeypatch, 2, refuse=refuse)
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks_batch(greeks_batch(4))
    assert fields(exc) == ["spot_prices[2]"]
    assert "double precision" in exc.value.field_violations[0].description


@pytest.mark.parametrize("refuse", [True, False], ids=["kernel-refuses", "kernel-overflows"])
def test_element_beyond_the_model_is_marked_never_passed_off_as_ok(
    monkeypatch: pytest.MonkeyPatch, refuse: bool
) -> None:
    leaky_kernel(monkeypatch, 2, refuse=refuse)
    result = pricing.compute_greeks_batch(greeks_batch(4, mark_invalid_elements=True))
    assert result.status.tolist() == [0, 0, int(core_ext.Status.INVALID_INPUT), 0]
    assert all(math.isnan(getattr(result, name)[2]) for name in GREEKS_OUTPUTS)


def test_american_options_need_a_non_negative_rate() -> None:
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks(replace(HULL_CALL, style=AMERICAN, rate=-0.01))
    assert fields(exc) == ["rate"]
    assert "American" in exc.value.field_violations[0].description
    assert pricing.compute_greeks(replace(HULL_CALL, style=EUROPEAN, rate=-0.01)).price > 0.0


def test_american_batch_with_a_negative_rate_names_the_element() -> None:
    batch = greeks_batch(3, style=AMERICAN)
    batch.rates[1] = -0.001
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_greeks_batch(batch)
    assert fields(exc) == ["rates[1]"]


def test_iv_batch_recovers_sigma_and_reports_impossible_prices_per_element() -> None:
    batch = iv_batch(5)
    batch.option_prices[1] = batch.spot_prices[1] * 2.0  # above any call's or put's maximum
    batch.option_prices[3] = 1e-3  # below intrinsic: element 3 is made a deep in-the-money call
    batch.is_call[3] = True
    batch.strike_prices[3] = batch.spot_prices[3] / 2.0
    result = pricing.compute_implied_volatility_batch(batch)
    source = greeks_batch(5)
    assert result.status[1] == int(core_ext.Status.ABOVE_MAXIMUM)
    assert result.status[3] == int(core_ext.Status.BELOW_INTRINSIC)
    assert np.isnan(result.implied_volatility[[1, 3]]).all()
    for i in (0, 2, 4):
        assert result.status[i] == 0
        assert result.implied_volatility[i] == pytest.approx(source.volatilities[i], rel=1e-9)


def test_iv_batch_zero_expiry_is_an_invalid_element() -> None:
    batch = iv_batch(3)
    batch.expiry_years[2] = 0.0
    with pytest.raises(FieldInvalid) as exc:
        pricing.compute_implied_volatility_batch(batch)
    assert fields(exc) == ["expiry_years[2]"]


def test_iv_batch_marks_invalid_elements() -> None:
    batch = iv_batch(3, mark_invalid_elements=True)
    batch.option_prices[0] = math.nan
    result = pricing.compute_implied_volatility_batch(batch)
    assert result.status[0] == int(core_ext.Status.INVALID_INPUT)
    assert math.isnan(result.implied_volatility[0])
    assert (result.status[1:] == 0).all()
