"""Compiled option pricing core: Black-Scholes-Merton and Bjerksund-Stensland (2002) prices, Greeks, implied vols."""

from core_ext._bsm import (
    Greeks,
    GreeksArray,
    NoConvergence,
    PriceAboveMaximum,
    PriceBelowIntrinsic,
    Status,
    greeks,
    greeks_array,
    implied_volatility,
    implied_volatility_array,
)

__all__ = [
    "Greeks",
    "GreeksArray",
    "NoConvergence",
    "PriceAboveMaximum",
    "PriceBelowIntrinsic",
    "Status",
    "greeks",
    "greeks_array",
    "implied_volatility",
    "implied_volatility_array",
]
