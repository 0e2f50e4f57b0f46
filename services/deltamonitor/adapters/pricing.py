"""Array pricers behind the ``Pricer`` port: core_ext (production) and a NumPy Black-Scholes-Merton one.

The NumPy pricer is exact for European options and is the explicit choice (``DELTAMONITOR_PRICER=numpy``)
where the compiled core is not built; it is never picked silently.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from services.deltamonitor.domain.pricing import GREEK_ROWS, GreeksArrays

__all__ = ["CoreExtPricer", "NumpyBlackScholesPricer", "make_pricer"]

F64 = npt.NDArray[np.float64]
_DAY = 1.0 / 365.0


class CoreExtPricer:
    """Prices through ``core_ext.greeks_array`` (Black-Scholes-Merton / Bjerksund-Stensland 2002)."""

    def __init__(self, *, parallel_ticks: bool = False) -> None:
        """Bind the compiled core.

        Args:
            parallel_ticks: Whether the book's compiled ticks may spread an American underlying's options over
                core_ext's threads (``TASTYPLAT_CORE_THREADS``). Off by default: an underlying's tick prices a
                few hundred options at most, and waiting for the second thread to get a core the database and
                the other services also need gave alert maxima of 38-303 ms (p99 over 25 ms in 7 of 17 runs),
                against 12-84 ms (2 of 12) on the event loop's thread alone (``benchmarks/deltamonitor``,
                American, 10,000 positions).
                Calls from Python (``greeks``, ``greeks_into``) follow core_ext's thread setting either way.

        Raises:
            RuntimeError: core_ext is not built or lacks ``greeks_array``.
        """
        import core_ext

        function = getattr(core_ext, "greeks_array", None)
        if function is None:
            raise RuntimeError("core_ext.greeks_array is missing: build the extension (setup.py build_ext --inplace)")
        self._greeks_array = function
        self._greeks_into = core_ext.greeks_into
        self._kernels = (core_ext.greeks_kernel("european"), core_ext.greeks_kernel("american", parallel=parallel_ticks))
        self._styles = self._style_values(core_ext)
        self._ok = self._ok_value(core_ext)

    @staticmethod
    def _style_values(module: Any) -> tuple[Any, Any]:
        style = getattr(module, "ExerciseStyle", None) or getattr(module, "Style", None)
        if style is not None:
            return getattr(style, "EUROPEAN"), getattr(style, "AMERICAN")
        return "european", "american"

    @staticmethod
    def _ok_value(module: Any) -> int:
        status = getattr(module, "Status", None)
        return int(getattr(status, "OK", 0)) if status is not None else 0

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
        """Price every element in one core_ext call."""
        # greeks_array converts its inputs itself (float64, contiguous) and returns float64 arrays.
        result = self._greeks_array(
            is_call=np.asarray(is_call, dtype=np.bool_),
            spot=spot,
            strike=strike,
            expiry_years=expiry_years,
            volatility=volatility,
            rate=rate,
            dividend_yield=dividend_yield,
            style=self._styles[1] if american else self._styles[0],
        )
        return GreeksArrays(
            delta=result.delta,
            gamma=result.gamma,
            theta=result.theta,
            vega=result.vega,
            vanna=result.vanna,
            charm=result.charm,
            ok=result.status == self._ok,
        )

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
        """Price every element into ``out`` in one core_ext call (its row order is GREEK_ROWS)."""
        self._greeks_into(
            is_call, spot, strike, expiry_years, volatility, rate, dividend_yield, out,
            style=self._styles[1] if american else self._styles[0],
        )

    def greeks_kernel(self, american: bool) -> object | None:
        """core_ext's array kernel of the style (a ``tastyplat.greeks_kernel`` capsule)."""
        return self._kernels[1] if american else self._kernels[0]


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _ncdf(x: F64) -> F64:
    # erfc keeps full relative precision in the lower tail, where 1 + erf(x) would cancel.
    return np.asarray(_ERFC(-x / math.sqrt(2.0)), dtype=np.float64) * 0.5


class NumpyBlackScholesPricer:
    """Generalized Black-Scholes-Merton Greeks in NumPy (European exercise; American priced as European).

    Units as tastyplat.type.v1.Greeks: vega and vanna per volatility point, theta and charm per calendar day.
    """

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
        """Price every element; invalid inputs (T <= 0, vol <= 0, NaN) give NaN with ``ok`` False."""
        s, k, t, v, r, q = spot, strike, expiry_years, volatility, rate, dividend_yield
        ok = (s > 0) & (k > 0) & (t > 0) & (v > 0) & np.isfinite(s + k + t + v + r + q)
        with np.errstate(all="ignore"):
            sq = np.sqrt(t)
            vs = v * sq
            d1 = (np.log(s / k) + (r - q + 0.5 * v * v) * t) / vs
            d2 = d1 - vs
            pdf = np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
            dq = np.exp(-q * t)
            dr = np.exp(-r * t)
            nd1 = _ncdf(d1)
            call = is_call
            delta = np.where(call, dq * nd1, dq * (nd1 - 1.0))
            gamma = dq * pdf / (s * vs)
            vega = s * dq * pdf * sq * 0.01
            nd2 = _ncdf(d2)
            common = -s * dq * pdf * v / (2.0 * sq)
            theta_call = common - r * k * dr * nd2 + q * s * dq * nd1
            theta_put = common + r * k * dr * _ncdf(-d2) - q * s * dq * _ncdf(-d1)
            theta = np.where(call, theta_call, theta_put) * _DAY
            vanna = -dq * pdf * d2 / v * 0.01
            charm_core = dq * pdf * (2.0 * (r - q) * t - d2 * vs) / (2.0 * t * vs)
            charm_call = q * dq * nd1 - charm_core
            charm_put = charm_call - q * dq
            # These are dDelta/dt with t the calendar time passing (= -dDelta/dT), per year; per day below.
            charm = np.where(call, charm_call, charm_put) * _DAY
        nan = np.nan
        return GreeksArrays(
            delta=np.where(ok, delta, nan),
            gamma=np.where(ok, gamma, nan),
            theta=np.where(ok, theta, nan),
            vega=np.where(ok, vega, nan),
            vanna=np.where(ok, vanna, nan),
            charm=np.where(ok, charm, nan),
            ok=ok,
        )

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
        """``greeks`` written into ``out`` (rows GREEK_ROWS); price and rho, which this pricer does not compute, are NaN."""
        g = self.greeks(
            is_call=is_call, spot=spot, strike=strike, expiry_years=expiry_years, volatility=volatility, rate=rate,
            dividend_yield=dividend_yield, american=american,
        )
        for row, name in enumerate(GREEK_ROWS):
            out[row] = getattr(g, name, np.nan)

    def greeks_kernel(self, american: bool) -> object | None:
        """None: this pricer has no C kernel."""
        return None


def make_pricer(name: str, *, parallel_ticks: bool = False) -> CoreExtPricer | NumpyBlackScholesPricer:
    """Return the pricer named by the settings: ``core_ext`` or ``numpy``.

    ``parallel_ticks`` is ``CoreExtPricer``'s (the NumPy pricer has no threads).

    Raises:
        ValueError: An unknown name.
        RuntimeError: ``core_ext`` was asked for and is not built.
    """
    if name == "core_ext":
        return CoreExtPricer(parallel_ticks=parallel_ticks)
    if name == "numpy":
        return NumpyBlackScholesPricer()
    raise ValueError(f"unknown pricer {name!r}; expected 'core_ext' or 'numpy'")
