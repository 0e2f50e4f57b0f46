"""Option model values through core_ext: implied vols from market prices, then price and Greeks, in batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

import core_ext

__all__ = ["ModelValues", "implied_vols", "price_and_greeks"]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ModelValues:
    """Model price and Greeks per option (per share; vega per vol point, theta and charm per calendar day,
    rho per percentage point), NaN where the model had no answer."""

    price: Array
    delta: Array
    gamma: Array
    vega: Array
    theta: Array
    rho: Array
    vanna: Array
    charm: Array


def _style(american: bool) -> Literal["european", "american"]:
    return "american" if american else "european"


def price_and_greeks(
    is_call: npt.NDArray[np.bool_],
    spot: Array,
    strike: Array,
    expiry_years: Array,
    volatility: Array,
    rate: Array,
    dividend_yield: Array,
    *,
    american: bool,
) -> ModelValues:
    """Price and Greeks of each option; entries with a NaN input come back NaN instead of failing the batch."""
    valid = (
        np.isfinite(spot) & np.isfinite(volatility) & (volatility > 0) & (expiry_years > 0) & (spot > 0)
    )
    out = {name: np.full(len(spot), np.nan) for name in ModelValues.__slots__}
    if valid.any():
        result = core_ext.greeks_array(
            is_call=np.ascontiguousarray(is_call[valid]),
            spot=np.ascontiguousarray(spot[valid]),
            strike=np.ascontiguousarray(strike[valid]),
            expiry_years=np.ascontiguousarray(expiry_years[valid]),
            volatility=np.ascontiguousarray(volatility[valid]),
            rate=np.ascontiguousarray(rate[valid]),
            dividend_yield=np.ascontiguousarray(dividend_yield[valid]),
            style=_style(american),
        )
        ok = np.asarray(result.status) == 0
        for name in ModelValues.__slots__:
            column = np.asarray(getattr(result, name), dtype=np.float64)
            out[name][valid] = np.where(ok, column, np.nan)
    return ModelValues(**out)


def implied_vols(
    option_price: Array,
    is_call: npt.NDArray[np.bool_],
    spot: Array,
    strike: Array,
    expiry_years: Array,
    rate: Array,
    dividend_yield: Array,
    *,
    american: bool,
) -> Array:
    """Implied volatility (a fraction) of each option from its market price; NaN where none exists."""
    vols = np.full(len(option_price), np.nan)
    valid = np.isfinite(option_price) & (option_price > 0) & np.isfinite(spot) & (spot > 0) & (expiry_years > 0)
    if valid.any():
        solved, status = core_ext.implied_volatility_array(
            price=np.ascontiguousarray(option_price[valid]),
            is_call=np.ascontiguousarray(is_call[valid]),
            spot=np.ascontiguousarray(spot[valid]),
            strike=np.ascontiguousarray(strike[valid]),
            expiry_years=np.ascontiguousarray(expiry_years[valid]),
            rate=np.ascontiguousarray(rate[valid]),
            dividend_yield=np.ascontiguousarray(dividend_yield[valid]),
            style=_style(american),
        )
        vols[valid] = np.where(np.asarray(status) == 0, np.asarray(solved, dtype=np.float64), np.nan)
    return vols
