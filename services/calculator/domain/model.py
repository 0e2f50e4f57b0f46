"""Value types of the calculator domain: option kinds and styles, single-option inputs, batch columns, results."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_LISTED_VIOLATIONS",
    "ExerciseStyle",
    "Greeks",
    "GreeksBatch",
    "GreeksBatchResult",
    "GreeksInputs",
    "ImpliedVolatilityBatch",
    "ImpliedVolatilityBatchResult",
    "ImpliedVolatilityInputs",
    "OptionKind",
]

# The documented limit of every batch RPC (elements per call); part of the contract, not a setting.
MAX_BATCH_SIZE = 100_000
# Violations listed in one error; the rest are counted in its metadata.
MAX_LISTED_VIOLATIONS = 100

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
StatusArray = npt.NDArray[np.uint8]


class OptionKind(enum.IntEnum):
    """Call or put (numbered as ``tastyplat.type.v1.OptionKind``; 0 means not given)."""

    CALL = 1
    PUT = 2

    @property
    def kernel_name(self) -> str:
        """The ``kind`` argument ``core_ext`` takes."""
        return "call" if self is OptionKind.CALL else "put"


class ExerciseStyle(enum.IntEnum):
    """European or American exercise (numbered as ``tastyplat.type.v1.ExerciseStyle``; 0 means not given)."""

    EUROPEAN = 1
    AMERICAN = 2

    @property
    def kernel_name(self) -> str:
        """The ``style`` argument ``core_ext`` takes."""
        return "european" if self is ExerciseStyle.EUROPEAN else "american"


@dataclass(frozen=True, slots=True)
class GreeksInputs:
    """One option to price, as received: enums as raw codes (0 = not given), numbers unchecked.

    Attributes:
        kind: ``OptionKind`` code.
        spot_price: Underlying price per share.
        strike_price: Strike per share.
        expiry_years: Time to expiry in years (ACT/365).
        volatility: Annualized volatility as a fraction.
        rate: Continuously compounded risk-free rate.
        dividend_yield: Continuously compounded dividend yield.
        style: ``ExerciseStyle`` code.
    """

    kind: int
    spot_price: float
    strike_price: float
    expiry_years: float
    volatility: float
    rate: float
    dividend_yield: float
    style: int


@dataclass(frozen=True, slots=True)
class ImpliedVolatilityInputs:
    """One option and its observed price, as received (enums as raw codes, numbers unchecked).

    Attributes:
        kind: ``OptionKind`` code.
        option_price: Observed option price per share.
        spot_price: Underlying price per share.
        strike_price: Strike per share.
        expiry_years: Time to expiry in years; must be > 0.
        rate: Continuously compounded risk-free rate.
        dividend_yield: Continuously compounded dividend yield.
        style: ``ExerciseStyle`` code.
    """

    kind: int
    option_price: float
    spot_price: float
    strike_price: float
    expiry_years: float
    rate: float
    dividend_yield: float
    style: int


@dataclass(frozen=True, slots=True)
class Greeks:
    """Model price and Greeks of one option, per share (units of ``tastyplat.type.v1.Greeks``).

    Attributes:
        price: Model value.
        delta: Change of value per 1 unit of the underlying price.
        gamma: Change of delta per 1 unit of the underlying price.
        vega: Change of value per 1 volatility point.
        theta: Change of value per calendar day passing.
        rho: Change of value per 1 percentage point of the rate.
        vanna: Change of delta per 1 volatility point.
        charm: Change of delta per calendar day passing.
    """

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float
    vanna: float
    charm: float


# Input columns of a Greeks batch, in contract order, with the rule each element must meet.
GREEKS_BATCH_COLUMNS = ("is_call", "spot_prices", "strike_prices", "expiry_years", "volatilities", "rates",
                        "dividend_yields")
IV_BATCH_COLUMNS = ("is_call", "option_prices", "spot_prices", "strike_prices", "expiry_years", "rates",
                    "dividend_yields")
GREEKS_OUTPUTS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm")


@dataclass(frozen=True, slots=True)
class GreeksBatch:
    """A Greeks batch as received: columns of length n, 1 (broadcast) or 0, not yet checked.

    Attributes:
        is_call: True for a call.
        spot_prices: Underlying prices.
        strike_prices: Strikes.
        expiry_years: Times to expiry in years.
        volatilities: Annualized volatilities.
        rates: Risk-free rates (empty means 0.0).
        dividend_yields: Dividend yields (empty means 0.0).
        style: ``ExerciseStyle`` code of the whole batch.
        mark_invalid_elements: Report invalid elements per element instead of failing the call.
    """

    is_call: BoolArray
    spot_prices: FloatArray
    strike_prices: FloatArray
    expiry_years: FloatArray
    volatilities: FloatArray
    rates: FloatArray
    dividend_yields: FloatArray
    style: int
    mark_invalid_elements: bool = False

    @property
    def size(self) -> int:
        """n: the length of the longest column."""
        return max(len(getattr(self, name)) for name in GREEKS_BATCH_COLUMNS)


@dataclass(frozen=True, slots=True)
class ImpliedVolatilityBatch:
    """An implied-volatility batch as received (columns of length n, 1 or 0, not yet checked).

    Attributes:
        is_call: True for a call.
        option_prices: Observed option prices.
        spot_prices: Underlying prices.
        strike_prices: Strikes.
        expiry_years: Times to expiry in years.
        rates: Risk-free rates (empty means 0.0).
        dividend_yields: Dividend yields (empty means 0.0).
        style: ``ExerciseStyle`` code of the whole batch.
        mark_invalid_elements: Report invalid elements per element instead of failing the call.
    """

    is_call: BoolArray
    option_prices: FloatArray
    spot_prices: FloatArray
    strike_prices: FloatArray
    expiry_years: FloatArray
    rates: FloatArray
    dividend_yields: FloatArray
    style: int
    mark_invalid_elements: bool = False

    @property
    def size(self) -> int:
        """n: the length of the longest column."""
        return max(len(getattr(self, name)) for name in IV_BATCH_COLUMNS)


@dataclass(frozen=True, slots=True)
class GreeksBatchResult:
    """Outputs of a Greeks batch, each a float64 array of length n; NaN wherever ``status`` is not OK.

    Attributes:
        price: Model prices.
        delta: Deltas.
        gamma: Gammas.
        vega: Vegas per vol point.
        theta: Thetas per calendar day.
        rho: Rhos per percentage point.
        vanna: Vannas per vol point.
        charm: Charms per calendar day.
        status: ``core_ext.Status`` value of each element (uint8).
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray
    vanna: FloatArray
    charm: FloatArray
    status: StatusArray

    @property
    def size(self) -> int:
        """Number of elements."""
        return len(self.status)


@dataclass(frozen=True, slots=True)
class ImpliedVolatilityBatchResult:
    """Outputs of an implied-volatility batch.

    Attributes:
        implied_volatility: Solved volatilities; NaN wherever ``status`` is not OK.
        status: ``core_ext.Status`` value of each element (uint8).
    """

    implied_volatility: FloatArray
    status: StatusArray

    @property
    def size(self) -> int:
        """Number of elements."""
        return len(self.status)
