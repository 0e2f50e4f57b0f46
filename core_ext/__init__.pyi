"""Compiled option pricing core: Black-Scholes-Merton and Bjerksund-Stensland (2002) prices, Greeks, implied vols."""

from core_ext._bsm import Greeks as Greeks
from core_ext._bsm import GreeksArray as GreeksArray
from core_ext._bsm import NoConvergence as NoConvergence
from core_ext._bsm import PriceAboveMaximum as PriceAboveMaximum
from core_ext._bsm import PriceBelowIntrinsic as PriceBelowIntrinsic
from core_ext._bsm import Status as Status
from core_ext._bsm import get_threads as get_threads
from core_ext._bsm import greeks as greeks
from core_ext._bsm import greeks_array as greeks_array
from core_ext._bsm import greeks_into as greeks_into
from core_ext._bsm import greeks_kernel as greeks_kernel
from core_ext._bsm import implied_volatility as implied_volatility
from core_ext._bsm import implied_volatility_array as implied_volatility_array
from core_ext._bsm import set_threads as set_threads

__all__ = [
    "Greeks",
    "GreeksArray",
    "NoConvergence",
    "PriceAboveMaximum",
    "PriceBelowIntrinsic",
    "Status",
    "get_threads",
    "greeks",
    "greeks_array",
    "greeks_into",
    "greeks_kernel",
    "implied_volatility",
    "implied_volatility_array",
    "set_threads",
]
