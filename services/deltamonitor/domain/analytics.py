"""Vectorised band widths, time-to-breach forecasts and hedge suggestions for many watches at once."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "DAYS_PER_YEAR",
    "adaptive_bounds",
    "expected_move_half_width",
    "time_to_breach_days",
    "whalley_wilmott_half_width",
]

F64 = npt.NDArray[np.float64]

DAYS_PER_YEAR = 365.0
_SQRT_DAY = math.sqrt(1.0 / DAYS_PER_YEAR)


def expected_move_half_width(gamma_price_vol: F64) -> F64:
    """Expected one-day move of the watched delta, in metric units.

    Args:
        gamma_price_vol: Per watch, the sum over its positions of (metric gamma x underlying price x IV): the
            one-year standard deviation of the delta's change. For a single underlying it equals
            |gamma| x S x sigma with sigma the gamma-weighted IV of the positions.

    Returns:
        |gamma x S x sigma| x sqrt(1/365).
    """
    return np.abs(gamma_price_vol) * _SQRT_DAY


def whalley_wilmott_half_width(
    gamma_shares: F64, spot: F64, cost_ratio: F64, risk_aversion: F64, rate: float, years: F64
) -> F64:
    """The Whalley-Wilmott hedging band half-width, in shares of the underlying.

    ``(3/2 x e^(-r T) x cost_ratio x S x gamma^2 / risk_aversion)^(1/3)``, with gamma the position gamma in
    shares per unit move of the underlying and T the gamma-weighted time to expiry in years.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.cbrt(1.5 * np.exp(-rate * years) * cost_ratio * spot * gamma_shares * gamma_shares / risk_aversion)


def adaptive_bounds(
    center: F64, raw_half_width: F64, multiplier: F64, min_half_width: F64, max_half_width: F64
) -> tuple[F64, F64]:
    """Bounds of adaptive bands: ``center`` +/- clip(multiplier x raw, min, max); a zero max means no cap.

    Returns:
        (lower, upper); NaN where the raw width is unknown.
    """
    half = multiplier * raw_half_width
    half = np.maximum(half, min_half_width)
    capped = np.where(max_half_width > 0.0, np.minimum(half, max_half_width), half)
    return center - capped, center + capped


def time_to_breach_days(
    delta: F64,
    lower: F64,
    upper: F64,
    charm_per_day: F64,
    gamma_move_per_sqrt_day: F64,
    vanna: F64,
    vol_of_vol_points_per_sqrt_day: float,
    horizon_days: float,
) -> F64:
    """Forecast of the days until the delta reaches the nearer bound.

    Model: the delta drifts deterministically by ``charm`` per day (time decay of delta) and diffuses with a
    one-day standard deviation ``s = sqrt((gamma x S x sigma x sqrt(1/365))^2 + (vanna x vol-of-vol)^2)`` (price
    moves through gamma, implied-volatility moves through vanna). The forecast is the first time the one-sigma
    envelope reaches a bound: the smallest t with ``d = mu_toward x t + s x sqrt(t)`` over both bounds, where
    ``d`` is the distance to the bound and ``mu_toward`` the drift toward it (0 if it points away).

    Args:
        delta: Watched deltas.
        lower: Band lower bounds.
        upper: Band upper bounds.
        charm_per_day: Delta change per calendar day (metric units).
        gamma_move_per_sqrt_day: |gamma x S x sigma| x sqrt(1/365) (metric units).
        vanna: Delta change per volatility point (metric units).
        vol_of_vol_points_per_sqrt_day: Assumed one-day standard deviation of implied vol, in vol points.
        horizon_days: Forecasts beyond this are reported as none.

    Returns:
        Days per watch; NaN where no breach is forecast within the horizon, the delta is outside its band
        or the inputs are unknown.
    """
    s = np.hypot(gamma_move_per_sqrt_day, vanna * vol_of_vol_points_per_sqrt_day)
    # Both bounds at once: row 0 the upper bound (drift charm), row 1 the lower one (drift -charm).
    distance = np.empty((2, *delta.shape))
    np.subtract(upper, delta, out=distance[0])
    np.subtract(delta, lower, out=distance[1])
    mu = np.empty_like(distance)
    mu[0] = charm_per_day
    np.negative(charm_per_day, out=mu[1])
    np.maximum(mu, 0.0, out=mu)
    # A root far beyond the horizon may overflow when squared: infinity is then the right answer, not a warning.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # mu x^2 + s x - d = 0 with x = sqrt(t); the stable root avoids cancellation when mu is tiny.
        disc = np.sqrt(s * s + 4.0 * mu * distance)
        denominator = s + disc
        root = np.where(denominator > 0.0, 2.0 * distance / denominator, np.inf)
        t = root * root
        t[~(distance >= 0.0)] = np.nan
        best = np.fmin(t[0], t[1])
        best[~np.isfinite(best) | (best > horizon_days) | ~((delta >= lower) & (delta <= upper))] = np.nan
    return best
