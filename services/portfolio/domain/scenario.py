"""Scenario grids: the portfolio re-priced on moves x volatility shifts x future dates with core_ext arrays.

Every option is re-priced at every grid point with its own model (Bjerksund-Stensland for American
contracts, Black-Scholes-Merton for European ones). A point's P&L is the model's change of value from the
unshifted point, so the point with zero move, zero shift and zero days has a P&L of exactly 0 and a value
equal to the marks, even where the model value at the option's implied volatility differs from its mark by
a rounding. Shares move linearly. The work runs in slabs of (day, shift), one core_ext call per slab and
style, spread over a small thread pool (core_ext releases the GIL).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.portfolio.domain.errors import FieldInvalid, GridTooLarge
from services.portfolio.domain.greeks import PricingBook, price_columns

__all__ = ["GRID_LIMITS", "Grid", "ScenarioResult", "run_scenario", "validate_grid"]

F64 = NDArray[np.float64]
MAX_MOVES = 101
MAX_SHIFTS = 41
MAX_DAYS = 30
MAX_POSITION_POINTS = 50_000_000
GRID_LIMITS = (MAX_MOVES, MAX_SHIFTS, MAX_DAYS, MAX_POSITION_POINTS)


@dataclass(frozen=True)
class Grid:
    """A validated grid (empty lists already replaced by [0])."""

    moves: tuple[float, ...]
    shifts: tuple[float, ...]
    days: tuple[float, ...]

    @property
    def size(self) -> int:
        """Number of points."""
        return len(self.moves) * len(self.shifts) * len(self.days)


@dataclass(frozen=True)
class ScenarioResult:
    """Results over the grid, flattened [day][shift][move] (index (d x S + s) x M + m).

    Attributes:
        grid: The grid.
        base_value: The value at marks, in dollars (the caller keeps the exact Decimal).
        values, pnls, delta_dollars, dollar_gammas, vegas, thetas: Per point.
    """

    grid: Grid
    base_value: float
    values: F64
    pnls: F64
    delta_dollars: F64
    dollar_gammas: F64
    vegas: F64
    thetas: F64

    def worst_pnl(self) -> float:
        """The lowest P&L over the grid."""
        return float(self.pnls.min())


def validate_grid(
    moves: Sequence[float], shifts: Sequence[float], days: Sequence[float], book: PricingBook | None, prefix: str = ""
) -> Grid:
    """Check a grid against the contract's rules and limits.

    Raises:
        GridTooLarge: Too many moves, shifts, dates or position-points.
        FieldInvalid: A move <= -1 or NaN, a shift that makes a volatility <= 0, or a negative day count.
    """
    m = list(moves) or [0.0]
    s = list(shifts) or [0.0]
    d = list(days) or [0.0]
    if len(m) > MAX_MOVES or len(s) > MAX_SHIFTS or len(d) > MAX_DAYS:
        raise GridTooLarge(
            f"the grid has {len(m)} moves, {len(s)} shifts and {len(d)} dates; the limits are {MAX_MOVES}, "
            f"{MAX_SHIFTS} and {MAX_DAYS}",
            metadata={"max_moves": str(MAX_MOVES), "max_shifts": str(MAX_SHIFTS), "max_dates": str(MAX_DAYS)},
        )
    positions = len(book) if book is not None else 0
    if positions * len(m) * len(s) * len(d) > MAX_POSITION_POINTS:
        raise GridTooLarge(
            f"{positions} positions x {len(m) * len(s) * len(d)} points exceed {MAX_POSITION_POINTS:,} position-points",
            metadata={"max_position_points": str(MAX_POSITION_POINTS)},
        )
    for i, x in enumerate(m):
        if not (math.isfinite(x) and x > -1.0):
            raise FieldInvalid(f"{prefix}underlying_moves[{i}]", f"must be a number > -1, got {x!r}")
    lowest = float(book.volatility[book.is_option].min()) if book is not None and book.is_option.any() else math.inf
    for i, x in enumerate(s):
        if not math.isfinite(x):
            raise FieldInvalid(f"{prefix}volatility_shifts[{i}]", f"must be a number, got {x!r}")
        if lowest + x <= 0.0:
            raise FieldInvalid(
                f"{prefix}volatility_shifts[{i}]", f"{x!r} makes a volatility <= 0 (lowest held is {lowest!r})"
            )
    for i, x in enumerate(d):
        if not (math.isfinite(x) and x >= 0.0):
            raise FieldInvalid(f"{prefix}days_forward[{i}]", f"must be a number >= 0, got {x!r}")
    return Grid(tuple(float(x) for x in m), tuple(float(x) for x in s), tuple(float(x) for x in d))


def _slab(book: PricingBook, opt: NDArray[np.intp], moves: F64, shift: float, day: float) -> tuple[F64, F64, F64, F64, F64]:
    """Option (value, delta$, dollar gamma, vega, theta) sums over the moves of one (day, shift)."""
    k, m = len(opt), len(moves)
    spot0 = book.spot[opt]
    spot = (spot0[:, None] * (1.0 + moves[None, :])).ravel()
    rep = lambda a: np.repeat(a[opt], m)  # noqa: E731  # one option's inputs over every move
    expiry = np.maximum(rep(book.expiry_years) - day / 365.0, 0.0)
    price, delta, gamma, vega, theta = price_columns(
        rep(book.is_call), rep(book.american), spot, rep(book.strike), expiry, rep(book.volatility) + shift,
        book.rate, rep(book.dividend_yield),
    )
    w = book.weight[opt]
    shape = (k, m)
    s2 = spot.reshape(shape)
    d2 = delta.reshape(shape)
    return (
        w @ price.reshape(shape),
        w @ (d2 * s2),
        w @ (0.01 * s2 * (gamma.reshape(shape) * s2 + d2)),
        w @ vega.reshape(shape),
        w @ theta.reshape(shape),
    )


def run_scenario(book: PricingBook, grid: Grid, base_value: float, *, threads: int | None = None) -> ScenarioResult:
    """Re-price the book at every point of ``grid``.

    Args:
        book: The positions as pricing columns.
        grid: A grid from ``validate_grid``.
        base_value: The portfolio's value at marks, in dollars.
        threads: Worker threads (default: the CPU count, at most 4).

    Raises:
        PricingFailed: core_ext could not price a point.
    """
    moves = np.asarray(grid.moves)
    M, S, D = len(grid.moves), len(grid.shifts), len(grid.days)
    out = {name: np.zeros((D, S, M)) for name in ("value", "delta", "gamma", "vega", "theta")}
    stock = ~book.is_option
    stock_exposure = float((book.weight[stock] * book.spot[stock]).sum())
    opt = np.flatnonzero(book.is_option)
    slabs = [(d, s) for d in range(D) for s in range(S)]
    if len(opt):
        zero = (0.0 in grid.days) and (0.0 in grid.shifts) and (0.0 in grid.moves)

        def work(ds: tuple[int, int]) -> None:
            d, s = ds
            value, delta, gamma, vega, theta = _slab(book, opt, moves, grid.shifts[s], grid.days[d])
            out["value"][d, s], out["delta"][d, s], out["gamma"][d, s] = value, delta, gamma
            out["vega"][d, s], out["theta"][d, s] = vega, theta

        workers = threads or min(os.cpu_count() or 1, 4)
        if workers > 1 and len(slabs) > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario") as pool:
                list(pool.map(work, slabs))
        else:
            for ds in slabs:
                work(ds)
        if zero:
            base_model = float(out["value"][grid.days.index(0.0), grid.shifts.index(0.0), grid.moves.index(0.0)])
        else:
            base_model = float(_slab(book, opt, np.zeros(1), 0.0, 0.0)[0][0])
        option_pnl = out["value"] - base_model
    else:
        option_pnl = np.zeros((D, S, M))
    stock_pnl = stock_exposure * moves
    pnls = option_pnl + stock_pnl[None, None, :]
    stock_delta = stock_exposure * (1.0 + moves)
    return ScenarioResult(
        grid=grid,
        base_value=base_value,
        values=(base_value + pnls).ravel(),
        pnls=pnls.ravel(),
        delta_dollars=(out["delta"] + stock_delta[None, None, :]).ravel(),
        dollar_gammas=(out["gamma"] + 0.01 * stock_delta[None, None, :]).ravel(),
        vegas=out["vega"].ravel(),
        thetas=out["theta"].ravel(),
    )
