"""Portfolio Greeks with core_ext: per position, per underlying and in total, with beta-weighted delta.

Positions are priced as columns: one ``core_ext.greeks_array`` call for the European options and one for the
American ones. Per-share Greeks are in core_ext's units (vega per vol point, theta per calendar day); a
position's Greeks are those times signed quantity x multiplier. Shares have delta 1 and nothing else.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

import core_ext
from services.portfolio.domain.errors import MarketDataUnavailable, PortfolioError
from services.platform.errors import FailedPrecondition
from services.portfolio.domain.model import HeldPosition, MarketInputs, years_between

__all__ = [
    "BetaSource",
    "PortfolioGreeks",
    "PricingBook",
    "PricingFailed",
    "UnderlyingGreeks",
    "build_book",
    "compute_greeks",
    "price_columns",
]

F64 = NDArray[np.float64]


class PricingFailed(PortfolioError, FailedPrecondition):
    """The model could not price a position with the inputs it was given."""

    reason = "PRICING_FAILED"


class BetaSource(enum.IntEnum):
    """Where a beta came from (values mirror tastyplat.portfolio.v1.BetaSource)."""

    BROKER = 1
    ESTIMATED = 2
    DEFAULT = 3
    BENCHMARK = 4


@dataclass(frozen=True)
class PricingBook:
    """Positions as columns, ready for core_ext (one row per position).

    Attributes:
        symbols, underlyings: Per row.
        underlying_index: Row -> index into ``underlying_symbols``.
        underlying_symbols: Distinct underlyings, sorted.
        quantity: Signed quantity.
        multiplier: Shares per unit.
        is_option, is_call, american: Flags.
        strike, expiry_years, volatility, dividend_yield: Option inputs (0 for shares).
        spot: Underlying price per row.
        mark: Mark per share per row (market price; options' model value may differ).
        rate: Risk-free rate.
        broker_greeks: Row -> dxFeed (delta, gamma, theta, vega, rho, volatility), where the feed has them.
    """

    symbols: list[str]
    underlyings: list[str]
    underlying_index: NDArray[np.intp]
    underlying_symbols: list[str]
    quantity: F64
    multiplier: F64
    is_option: NDArray[np.bool_]
    is_call: NDArray[np.bool_]
    american: NDArray[np.bool_]
    strike: F64
    expiry_years: F64
    volatility: F64
    dividend_yield: F64
    spot: F64
    mark: F64
    rate: float
    broker_greeks: dict[int, tuple[float, float, float, float, float, float]]

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def weight(self) -> F64:
        """Signed quantity x multiplier per row."""
        return self.quantity * self.multiplier


def build_book(positions: Sequence[HeldPosition], inputs: MarketInputs, now: datetime) -> PricingBook:
    """Lay positions out as pricing columns.

    Raises:
        MarketDataUnavailable: No price for an underlying, or no volatility for an option (the message names it).
    """
    n = len(positions)
    underlyings = [p.underlying_symbol or p.symbol for p in positions]
    distinct = sorted(set(underlyings))
    index_of = {u: i for i, u in enumerate(distinct)}
    quantity = np.empty(n)
    multiplier = np.empty(n)
    is_option = np.zeros(n, dtype=bool)
    is_call = np.zeros(n, dtype=bool)
    american = np.zeros(n, dtype=bool)
    strike = np.zeros(n)
    expiry = np.zeros(n)
    vol = np.zeros(n)
    dividend = np.zeros(n)
    spot = np.empty(n)
    mark = np.empty(n)
    broker: dict[int, tuple[float, float, float, float, float, float]] = {}
    for i, p in enumerate(positions):
        underlying = underlyings[i]
        price = inputs.prices.get(underlying)
        if price is None and p.option is None and p.mark_price is not None:
            price = float(p.mark_price)
        if price is None or not (math.isfinite(price) and price > 0):
            raise MarketDataUnavailable(f"no price for {underlying}", metadata={"symbol": underlying})
        spot[i] = price
        quantity[i] = float(p.quantity)
        multiplier[i] = float(p.multiplier)
        dividend[i] = inputs.dividend_yields.get(underlying, 0.0)
        mark[i] = float(p.mark_price) if p.mark_price is not None else (price if p.option is None else math.nan)
        if p.option is None:
            continue
        o = p.option
        is_option[i] = True
        is_call[i] = o.is_call
        american[i] = o.american
        strike[i] = o.strike
        expiry[i] = max(years_between(now, o.expiration_time), 0.0)
        sigma = inputs.implied_volatilities.get(p.symbol)
        if sigma is None or not (math.isfinite(sigma) and sigma > 0):
            sigma = inputs.volatility_indices.get(underlying)
        if sigma is None or not (math.isfinite(sigma) and sigma > 0):
            raise MarketDataUnavailable(f"no implied volatility for {p.symbol}", metadata={"symbol": p.symbol})
        vol[i] = sigma
        if p.symbol in inputs.broker_greeks:
            broker[i] = inputs.broker_greeks[p.symbol]
    return PricingBook(
        symbols=[p.symbol for p in positions],
        underlyings=underlyings,
        underlying_index=np.array([index_of[u] for u in underlyings], dtype=np.intp),
        underlying_symbols=distinct,
        quantity=quantity,
        multiplier=multiplier,
        is_option=is_option,
        is_call=is_call,
        american=american,
        strike=strike,
        expiry_years=expiry,
        volatility=vol,
        dividend_yield=dividend,
        spot=spot,
        mark=mark,
        rate=inputs.rate,
        broker_greeks=broker,
    )


def price_columns(
    is_call: NDArray[np.bool_],
    american: NDArray[np.bool_],
    spot: F64,
    strike: F64,
    expiry_years: F64,
    volatility: F64,
    rate: float,
    dividend_yield: F64,
) -> tuple[F64, F64, F64, F64, F64]:
    """Per-share (price, delta, gamma, vega, theta) of options, American rows with Bjerksund-Stensland.

    American calls on a zero yield are never exercised early, so they go to the European kernel (same value,
    a fraction of the cost). Bjerksund-Stensland needs a rate >= 0; a negative rate prices American rows at 0.

    Raises:
        PricingFailed: core_ext reported a row it could not price.
    """
    n = len(spot)
    out = [np.empty(n) for _ in range(5)]
    amer = american & ~(is_call & (dividend_yield <= 0.0))
    styles: tuple[tuple[NDArray[np.bool_], Literal["european", "american"]], ...] = ((~amer, "european"), (amer, "american"))
    for mask, style in styles:
        if not mask.any():
            continue
        r = rate if style == "european" else max(rate, 0.0)
        g = core_ext.greeks_array(
            is_call[mask], spot[mask], strike[mask], expiry_years[mask], volatility[mask], r, dividend_yield[mask], style
        )
        if np.any(g.status != 0):
            bad = int(np.flatnonzero(g.status != 0)[0])
            raise PricingFailed(
                f"core_ext could not price an option (status {int(g.status[bad])}) at spot {spot[mask][bad]!r}, "
                f"strike {strike[mask][bad]!r}, vol {volatility[mask][bad]!r}, {expiry_years[mask][bad]!r} years"
            )
        for target, source in zip(out, (g.price, g.delta, g.gamma, g.vega, g.theta)):
            target[mask] = source
    return out[0], out[1], out[2], out[3], out[4]


@dataclass(frozen=True)
class UnderlyingGreeks:
    """Summed Greeks of the positions on one underlying."""

    underlying_symbol: str
    underlying_price: float
    beta: float
    beta_source: BetaSource
    delta_shares: float
    delta_dollars: float
    gamma: float
    theta: float
    vega: float
    beta_weighted_delta: float


@dataclass(frozen=True)
class PortfolioGreeks:
    """Greeks per position (columns), per underlying and in total.

    Attributes:
        book: The priced positions.
        model: Per-share model (price, delta, gamma, vega, theta) of each row (NaN-free; shares: price = spot,
            delta 1, others 0).
        delta_shares, delta_dollars, gamma, theta, vega, beta_weighted_delta: Per-position columns.
        underlyings: Per underlying, sorted.
        total_*: Account totals.
        benchmark_symbol, benchmark_price: The beta-weighting benchmark.
    """

    book: PricingBook
    model: tuple[F64, F64, F64, F64, F64]
    delta_shares: F64
    delta_dollars: F64
    gamma: F64
    theta: F64
    vega: F64
    beta_weighted_delta: F64
    underlyings: list[UnderlyingGreeks]
    total_delta_dollars: float
    total_theta: float
    total_vega: float
    total_beta_weighted_delta: float
    benchmark_symbol: str
    benchmark_price: float

    @property
    def total_beta_weighted_delta_dollars(self) -> float:
        """Beta-weighted delta times the benchmark price."""
        return self.total_beta_weighted_delta * self.benchmark_price


def compute_greeks(
    book: PricingBook,
    betas: dict[str, tuple[float, BetaSource]],
    benchmark_symbol: str,
    benchmark_price: float,
) -> PortfolioGreeks:
    """Price every position and sum the Greeks.

    Args:
        book: The positions as columns.
        betas: (beta, source) per underlying; a missing one is 1.0 from DEFAULT.
        benchmark_symbol: The benchmark.
        benchmark_price: Its price per share (> 0).

    Raises:
        PricingFailed: core_ext could not price a row.
    """
    n = len(book)
    price = book.spot.copy()
    delta = np.ones(n)
    gamma = np.zeros(n)
    vega = np.zeros(n)
    theta = np.zeros(n)
    opt = book.is_option
    if opt.any():
        p, d, g, v, t = price_columns(
            book.is_call[opt], book.american[opt], book.spot[opt], book.strike[opt], book.expiry_years[opt],
            book.volatility[opt], book.rate, book.dividend_yield[opt],
        )
        price[opt], delta[opt], gamma[opt], vega[opt], theta[opt] = p, d, g, v, t
    w = book.weight
    delta_shares = delta * w
    delta_dollars = delta_shares * book.spot
    pos_gamma = gamma * w
    pos_theta = theta * w
    pos_vega = vega * w
    k = len(book.underlying_symbols)
    beta_list = [betas.get(u, (1.0, BetaSource.DEFAULT)) for u in book.underlying_symbols]
    beta_by_underlying = np.array([b for b, _ in beta_list]) if k else np.zeros(0)
    idx = book.underlying_index
    bwd = beta_by_underlying[idx] * delta_dollars / benchmark_price if n else np.zeros(0)
    sums = [np.bincount(idx, weights=col, minlength=k) for col in (delta_shares, delta_dollars, pos_gamma, pos_theta, pos_vega, bwd)]
    under_price = np.zeros(k)
    under_price[idx] = book.spot
    underlyings = [
        UnderlyingGreeks(
            underlying_symbol=u,
            underlying_price=float(under_price[j]),
            beta=beta_list[j][0],
            beta_source=beta_list[j][1],
            delta_shares=float(sums[0][j]),
            delta_dollars=float(sums[1][j]),
            gamma=float(sums[2][j]),
            theta=float(sums[3][j]),
            vega=float(sums[4][j]),
            beta_weighted_delta=float(sums[5][j]),
        )
        for j, u in enumerate(book.underlying_symbols)
    ]
    return PortfolioGreeks(
        book=book,
        model=(price, delta, gamma, vega, theta),
        delta_shares=delta_shares,
        delta_dollars=delta_dollars,
        gamma=pos_gamma,
        theta=pos_theta,
        vega=pos_vega,
        beta_weighted_delta=bwd,
        underlyings=underlyings,
        total_delta_dollars=float(delta_dollars.sum()),
        total_theta=float(pos_theta.sum()),
        total_vega=float(pos_vega.sum()),
        total_beta_weighted_delta=float(bwd.sum()),
        benchmark_symbol=benchmark_symbol,
        benchmark_price=benchmark_price,
    )


def solve_implied_vols(
    positions: Sequence[HeldPosition], prices: dict[str, float], dividend_yields: dict[str, float], rate: float, now: datetime
) -> dict[str, float]:
    """Implied volatilities solved by core_ext from the positions' marks (options with a mark and a spot).

    Options whose mark no volatility reproduces (at or below intrinsic, above the maximum) are left out, so
    the caller falls back to another source instead of pricing with a sentinel.
    """
    rows = [
        p for p in positions
        if p.option is not None and p.mark_price is not None and p.mark_price > 0
        and prices.get(p.underlying_symbol, 0.0) > 0 and p.option.expiration_time > now
    ]
    out: dict[str, float] = {}
    for american in (False, True):
        chosen = [p for p in rows if p.option is not None and p.option.american == american]
        if not chosen:
            continue
        style: Literal["european", "american"] = "american" if american else "european"
        r = max(rate, 0.0) if american else rate
        vols, status = core_ext.implied_volatility_array(
            np.array([p.option.is_call for p in chosen if p.option]),
            np.array([float(p.mark_price) for p in chosen if p.mark_price is not None]),
            np.array([prices[p.underlying_symbol] for p in chosen]),
            np.array([p.option.strike for p in chosen if p.option]),
            np.array([years_between(now, p.option.expiration_time) for p in chosen if p.option]),
            r,
            np.array([dividend_yields.get(p.underlying_symbol, 0.0) for p in chosen]),
            style,
        )
        for p, vol, st in zip(chosen, vols, status):
            if st == 0 and math.isfinite(vol) and vol > 0:
                out[p.symbol] = float(vol)
    return out
