"""The pricing seam the book re-prices through: whole arrays of options per call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["GREEKS_KERNEL_CAPSULE", "GREEK_ROWS", "GreeksArrays", "Pricer"]

F64 = npt.NDArray[np.float64]

# The rows of ``Pricer.greeks_into``'s output, in order (core_ext's order).
GREEK_ROWS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm")

# Name of the PyCapsule a pricer may offer (``Pricer.greeks_kernel``): a C function
# void (*)(Py_ssize_t n, const uint8_t* is_call, const double* spot, const double* strike,
#          const double* expiry_years, const double* volatility, const double* rate, const double* dividend_yield,
#          double** outs, int8_t* status), callable without the GIL, that does what ``greeks_into`` does with
# outs[k] the row GREEK_ROWS[k]. The book then re-prices and evaluates an underlying's tick in one compiled call.
GREEKS_KERNEL_CAPSULE = "tastyplat.greeks_kernel"


@dataclass(frozen=True, slots=True)
class GreeksArrays:
    """Per-share Greeks of a batch (units of tastyplat.type.v1.Greeks); NaN where ``ok`` is False.

    Attributes:
        delta: dV/dS.
        gamma: d2V/dS2.
        theta: Value change per calendar day.
        vega: Value change per volatility point.
        vanna: Delta change per volatility point.
        charm: Delta change per calendar day.
        ok: Whether the element priced.
    """

    delta: F64
    gamma: F64
    theta: F64
    vega: F64
    vanna: F64
    charm: F64
    ok: npt.NDArray[np.bool_]


class Pricer(Protocol):
    """Prices arrays of options of one exercise style in one call."""

    def greeks(
        self,
        *,
        is_call: npt.NDArray[np.bool_],
        spot: F64,
        strike: F64,
        expiry_years: F64,
        volatility: F64,
        rate: F64,
        dividend_yield: F64,
        american: bool,
    ) -> GreeksArrays:
        """Return the Greeks of every element; an element that cannot be priced is NaN with ``ok`` False."""
        ...

    def greeks_into(
        self,
        *,
        is_call: npt.NDArray[np.bool_],
        spot: F64,
        strike: F64,
        expiry_years: F64,
        volatility: F64,
        rate: F64,
        dividend_yield: F64,
        american: bool,
        out: F64,
    ) -> None:
        """Write every element's outputs into ``out`` (shape (len(GREEK_ROWS), n), last axis contiguous; may be
        a view into the caller's columns), rows in ``GREEK_ROWS`` order; NaN where an element cannot be priced
        (and in a row the pricer does not compute)."""
        ...

    def greeks_kernel(self, american: bool) -> object | None:
        """The pricer's array kernel for one exercise style as a ``GREEKS_KERNEL_CAPSULE`` capsule, or None
        when it has none (the book then calls ``greeks_into``)."""
        ...
