"""Type stubs for the compiled kernels (hand-written; checked by ``python -m mypy.stubtest core_ext``)."""

import enum
from typing import Literal

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_Kind = Literal["call", "put"]
_Style = Literal["european", "american"]
_FloatIn = float | npt.NDArray[np.float64]
_BoolIn = bool | npt.NDArray[np.bool_]
_F64 = npt.NDArray[np.float64]

# C-level entry points for ``cimport core_ext._bsm`` (capsules).
__pyx_capi__: dict[str, object]

class Status(enum.IntEnum):
    """Per-option result code of the array API; every output of an option that is not OK is NaN."""

    OK = 0
    INVALID_INPUT = 1
    BELOW_INTRINSIC = 2
    ABOVE_MAXIMUM = 3
    NO_CONVERGENCE = 4

class PriceBelowIntrinsic(ValueError): ...
class PriceAboveMaximum(ValueError): ...
class NoConvergence(ArithmeticError): ...

@disjoint_base
class Greeks:
    """Price and Greeks of one option (immutable); units as documented on the class."""

    def __init__(
        self,
        price: float,
        delta: float,
        gamma: float,
        vega: float,
        theta: float,
        rho: float,
        vanna: float,
        charm: float,
    ) -> None: ...
    @property
    def price(self) -> float: ...
    @property
    def delta(self) -> float: ...
    @property
    def gamma(self) -> float: ...
    @property
    def vega(self) -> float: ...
    @property
    def theta(self) -> float: ...
    @property
    def rho(self) -> float: ...
    @property
    def vanna(self) -> float: ...
    @property
    def charm(self) -> float: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[type[Greeks], tuple[float, float, float, float, float, float, float, float]]: ...

@disjoint_base
class GreeksArray:
    """Prices and Greeks of many options: one float64 array per output plus an int8 status array."""

    def __init__(
        self,
        price: _F64,
        delta: _F64,
        gamma: _F64,
        vega: _F64,
        theta: _F64,
        rho: _F64,
        vanna: _F64,
        charm: _F64,
        status: npt.NDArray[np.int8],
    ) -> None: ...
    @property
    def price(self) -> _F64: ...
    @property
    def delta(self) -> _F64: ...
    @property
    def gamma(self) -> _F64: ...
    @property
    def vega(self) -> _F64: ...
    @property
    def theta(self) -> _F64: ...
    @property
    def rho(self) -> _F64: ...
    @property
    def vanna(self) -> _F64: ...
    @property
    def charm(self) -> _F64: ...
    @property
    def status(self) -> npt.NDArray[np.int8]: ...
    def __len__(self) -> int: ...
    def __reduce__(self) -> tuple[type[GreeksArray], tuple[npt.NDArray[np.generic], ...]]: ...

def greeks(
    kind: _Kind,
    spot: float,
    strike: float,
    expiry_years: float,
    volatility: float,
    rate: float = 0.0,
    dividend_yield: float = 0.0,
    style: _Style = "european",
) -> Greeks: ...
def implied_volatility(
    kind: _Kind,
    price: float,
    spot: float,
    strike: float,
    expiry_years: float,
    rate: float = 0.0,
    dividend_yield: float = 0.0,
    style: _Style = "european",
) -> float: ...
def set_threads(threads: int) -> None:
    """Set how many threads the American array kernels may use (results do not depend on it)."""

def get_threads() -> int:
    """How many threads the American array kernels may use."""

def greeks_array(
    is_call: _BoolIn,
    spot: _FloatIn,
    strike: _FloatIn,
    expiry_years: _FloatIn,
    volatility: _FloatIn,
    rate: _FloatIn,
    dividend_yield: _FloatIn,
    style: _Style = "european",
) -> GreeksArray: ...
def greeks_into(
    is_call: _BoolIn,
    spot: _FloatIn,
    strike: _FloatIn,
    expiry_years: _FloatIn,
    volatility: _FloatIn,
    rate: _FloatIn,
    dividend_yield: _FloatIn,
    out: _F64,
    status: npt.NDArray[np.int8] | None = None,
    style: _Style = "european",
) -> None: ...
def greeks_kernel(style: _Style = "european", *, parallel: bool = True) -> object: ...
def implied_volatility_array(
    is_call: _BoolIn,
    price: _FloatIn,
    spot: _FloatIn,
    strike: _FloatIn,
    expiry_years: _FloatIn,
    rate: _FloatIn,
    dividend_yield: _FloatIn,
    style: _Style = "european",
) -> tuple[_F64, npt.NDArray[np.int8]]: ...
def _implied_volatility_iterations(
    is_call: _BoolIn,
    price: _FloatIn,
    spot: _FloatIn,
    strike: _FloatIn,
    expiry_years: _FloatIn,
    rate: _FloatIn,
    dividend_yield: _FloatIn,
    style: _Style = "european",
) -> tuple[_F64, npt.NDArray[np.int8], _F64]: ...
