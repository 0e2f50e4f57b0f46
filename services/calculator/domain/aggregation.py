"""Portfolio Greeks: positions (option legs and shares) to per-position, per-underlying and total Greeks.

A position's Greeks are the per-share Greeks scaled by ``quantity * multiplier`` (shares of exposure):
share deltas, gammas, vannas and charms stay in shares of the underlying; value, theta, vega and rho become
dollars. Share figures of different underlyings do not add up, so the portfolio total carries dollars and
the beta-weighted delta, which expresses every underlying in shares of one benchmark:
``beta * underlying_price * delta_shares / benchmark_price``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import core_ext
import numpy as np
import numpy.typing as npt

from services.calculator.domain.errors import (
    FieldInvalid,
    FieldRequired,
    UnderlyingPriceMismatch,
    invalid_argument,
)
from services.calculator.domain.model import GREEKS_OUTPUTS, MAX_LISTED_VIOLATIONS, ExerciseStyle, OptionKind
from services.calculator.domain.pricing import (
    AMERICAN_RATE,
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    STATUS_OK,
    Rule,
    check_batch_size,
)
from services.platform.errors import FieldViolation

__all__ = [
    "Instrument",
    "PortfolioGreeks",
    "PortfolioRequest",
    "PortfolioTotal",
    "PositionGreeks",
    "Positions",
    "UnderlyingGreeks",
    "aggregate_portfolio_greeks",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Instrument(enum.IntEnum):
    """What a position holds (0 means the request named nothing)."""

    OPTION = 1
    EQUITY = 2


@dataclass(frozen=True, slots=True)
class Positions:
    """The positions of a request as parallel columns, element i for position i, as received.

    Option fields are 0 for equity positions and ignored there.

    Attributes:
        ids: Caller's identifiers, echoed.
        underlying_symbols: Underlying of each position.
        instrument: ``Instrument`` code (0 when none was given).
        quantity: Signed quantity (contracts or shares).
        multiplier: Shares per unit of quantity (options: required, > 0; equity: 0 reads as 1).
        underlying_price: Underlying price per share.
        beta: Beta to the benchmark, where ``has_beta``.
        has_beta: Whether the position gave a beta (1.0 otherwise).
        kind: ``OptionKind`` code of an option leg.
        style: ``ExerciseStyle`` code of an option leg.
        strike_price: Strike of an option leg.
        expiry_years: Time to expiry of an option leg in years.
        volatility: Volatility of an option leg.
        rate: Risk-free rate of an option leg.
        dividend_yield: Dividend yield of an option leg.
    """

    ids: Sequence[str]
    underlying_symbols: Sequence[str]
    instrument: IntArray
    quantity: FloatArray
    multiplier: FloatArray
    underlying_price: FloatArray
    beta: FloatArray
    has_beta: BoolArray
    kind: IntArray
    style: IntArray
    strike_price: FloatArray
    expiry_years: FloatArray
    volatility: FloatArray
    rate: FloatArray
    dividend_yield: FloatArray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class PortfolioRequest:
    """Positions to aggregate and the benchmark of the beta weighting.

    Attributes:
        positions: The positions.
        benchmark_symbol: Benchmark name, echoed.
        benchmark_price: Benchmark price per share; > 0.
    """

    positions: Positions
    benchmark_symbol: str
    benchmark_price: float


@dataclass(frozen=True, slots=True)
class PositionGreeks:
    """Greeks of every position, as parallel columns in request order (units of ``PositionGreeks``).

    Attributes:
        ids: The positions' ids.
        underlying_symbols: The positions' underlyings.
        market_value: Model value in dollars.
        delta_shares: Share-equivalent delta.
        delta_dollars: ``delta_shares * underlying_price``.
        gamma: Change of ``delta_shares`` per 1 unit of the underlying price.
        theta: Dollars per calendar day.
        vega: Dollars per volatility point.
        rho: Dollars per percentage point of the rate.
        vanna: Change of ``delta_shares`` per volatility point.
        charm: Change of ``delta_shares`` per calendar day.
        beta_weighted_delta: Delta in shares of the benchmark.
    """

    ids: Sequence[str]
    underlying_symbols: Sequence[str]
    market_value: FloatArray
    delta_shares: FloatArray
    delta_dollars: FloatArray
    gamma: FloatArray
    theta: FloatArray
    vega: FloatArray
    rho: FloatArray
    vanna: FloatArray
    charm: FloatArray
    beta_weighted_delta: FloatArray


@dataclass(frozen=True, slots=True)
class UnderlyingGreeks:
    """Greeks of all positions on one underlying, summed (units of ``PositionGreeks``)."""

    underlying_symbol: str
    underlying_price: float
    beta: float
    position_count: int
    market_value: float
    delta_shares: float
    delta_dollars: float
    gamma: float
    theta: float
    vega: float
    rho: float
    vanna: float
    charm: float
    beta_weighted_delta: float


@dataclass(frozen=True, slots=True)
class PortfolioTotal:
    """The figures that add up across underlyings."""

    position_count: int
    market_value: float
    delta_dollars: float
    theta: float
    vega: float
    rho: float
    beta_weighted_delta: float
    beta_weighted_delta_dollars: float


@dataclass(frozen=True, slots=True)
class PortfolioGreeks:
    """The aggregation: per position (request order), per underlying (sorted by symbol) and in total."""

    positions: PositionGreeks
    underlyings: tuple[UnderlyingGreeks, ...]
    total: PortfolioTotal
    benchmark_symbol: str
    benchmark_price: float


# Numeric fields of a position: (column, field path below positions[i], rule, only for option legs).
_NUMBERS: tuple[tuple[str, str, Rule, bool], ...] = (
    ("quantity", "quantity", FINITE, False),
    ("multiplier", "multiplier", NON_NEGATIVE, False),
    ("underlying_price", "underlying_price", POSITIVE, False),
    ("strike_price", "option.strike_price", POSITIVE, True),
    ("expiry_years", "option.expiry_years", NON_NEGATIVE, True),
    ("volatility", "option.volatility", POSITIVE, True),
    ("rate", "option.rate", FINITE, True),
    ("dividend_yield", "option.dividend_yield", FINITE, True),
)


class _Violations:
    """Violations keyed by (position index, field order) so the listed ones are the first positions'."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, FieldViolation]] = []
        self.count = 0

    def add_mask(self, order: int, mask: BoolArray, build: Callable[[int], FieldViolation]) -> None:
        indexes = np.flatnonzero(mask)
        self.count += len(indexes)
        for index in indexes[:MAX_LISTED_VIOLATIONS]:
            self.items.append((int(index), order, build(int(index))))

    def raise_if_any(self, what: str) -> None:
        if not self.items:
            return
        self.items.sort(key=lambda item: (item[0], item[1]))
        listed = [v for _, _, v in self.items[:MAX_LISTED_VIOLATIONS]]
        more = f"; the first {len(listed)} are listed" if self.count > len(listed) else ""
        raise invalid_argument(
            f"{self.count} invalid {what}{more}", listed, invalid_fields=str(self.count), listed=str(len(listed))
        )


def _check_benchmark(price: float) -> None:
    if price == 0.0:
        raise FieldRequired(
            "benchmark_price is required for the beta-weighted delta",
            field_violations=[FieldViolation("benchmark_price", "required: a price > 0", FieldRequired.reason)],
        )
    if not POSITIVE.holds(price):
        raise FieldInvalid(
            f"benchmark_price must be a finite number > 0, got {price!r}",
            field_violations=[
                FieldViolation("benchmark_price", f"must be {POSITIVE.text}, got {price!r}", FieldInvalid.reason)
            ],
        )


def _fixed(path: str, description: str, reason: str) -> Callable[[int], FieldViolation]:
    def build(i: int) -> FieldViolation:
        return FieldViolation(f"positions[{i}].{path}", description, reason)

    return build


def _bad_value(path: str, values: npt.NDArray[np.generic], rule_text: str) -> Callable[[int], FieldViolation]:
    def build(i: int) -> FieldViolation:
        return FieldViolation(f"positions[{i}].{path}", f"must be {rule_text}, got {values[i].item()!r}",
                              FieldInvalid.reason)

    return build


def _check_positions(p: Positions) -> None:
    found = _Violations()
    n = len(p)
    instrument_known = np.isin(p.instrument, [int(Instrument.OPTION), int(Instrument.EQUITY)])
    is_option = p.instrument == int(Instrument.OPTION)
    found.add_mask(0, p.instrument == 0, _fixed("instrument", "required: option or equity", FieldRequired.reason))
    found.add_mask(
        0, ~instrument_known & (p.instrument != 0), _fixed("instrument", "unknown instrument", FieldInvalid.reason)
    )
    missing_symbol = np.fromiter((not s.strip() for s in p.underlying_symbols), dtype=np.bool_, count=n)
    found.add_mask(
        1, missing_symbol, _fixed("underlying_symbol", 'required, e.g. "SPY"', FieldRequired.reason)
    )
    for order, (column, path, rule, option_only) in enumerate(_NUMBERS, start=2):
        values = getattr(p, column)
        bad = rule.bad_mask(values)
        if option_only:
            bad &= is_option
        found.add_mask(order, bad, _bad_value(path, values, rule.text))
    found.add_mask(
        7,
        is_option & (p.style == int(ExerciseStyle.AMERICAN)) & (p.rate < 0.0),
        _bad_value("option.rate", p.rate, AMERICAN_RATE.text),
    )
    found.add_mask(
        3,
        is_option & (p.multiplier == 0.0),
        _fixed("multiplier", "required for an option leg: shares per contract, e.g. 100", FieldRequired.reason),
    )
    found.add_mask(20, p.has_beta & ~np.isfinite(p.beta), _bad_value("beta", p.beta, FINITE.text))
    for order, (column, path, known) in enumerate(
        (
            ("kind", "option.kind", [int(v) for v in OptionKind]),
            ("style", "option.style", [int(v) for v in ExerciseStyle]),
        ),
        start=30,
    ):
        codes = getattr(p, column)
        found.add_mask(order, is_option & (codes == 0), _fixed(path, "required", FieldRequired.reason))
        found.add_mask(
            order,
            is_option & (codes != 0) & ~np.isin(codes, known),
            _bad_value(path, codes, f"one of {known}"),
        )
    found.raise_if_any("position fields")


def _disagreement(
    name: str, values: FloatArray, symbols: npt.NDArray[np.str_], head: IntArray
) -> Callable[[int], FieldViolation]:
    def build(i: int) -> FieldViolation:
        return FieldViolation(
            f"positions[{i}].{name}",
            f"{float(values[i])!r} differs from {float(values[head[i]])!r} given for {symbols[i]} at "
            f"positions[{int(head[i])}]",
            UnderlyingPriceMismatch.reason,
        )

    return build


def _check_agreement(
    p: Positions, symbols: npt.NDArray[np.str_], first: IntArray, inverse: IntArray, beta: FloatArray
) -> None:
    found = _Violations()
    head = first[inverse]
    for order, (name, values) in enumerate((("underlying_price", p.underlying_price), ("beta", beta))):
        found.add_mask(order, values != values[head], _disagreement(name, values, symbols, head))
    found.raise_if_any("positions disagreeing on their underlying's price or beta")


def _per_share_greeks(p: Positions, is_option: BoolArray) -> dict[str, FloatArray]:
    n = len(p)
    per_share = {name: np.zeros(n, dtype=np.float64) for name in GREEKS_OUTPUTS}
    per_share["price"][:] = p.underlying_price
    per_share["delta"][:] = 1.0
    for style in ExerciseStyle:
        index = np.flatnonzero(is_option & (p.style == int(style)))
        if len(index) == 0:
            continue
        out = core_ext.greeks_array(
            p.kind[index] == int(OptionKind.CALL),
            p.underlying_price[index],
            p.strike_price[index],
            p.expiry_years[index],
            p.volatility[index],
            p.rate[index],
            p.dividend_yield[index],
            style=style.kernel_name,
        )
        values = {name: np.asarray(getattr(out, name), dtype=np.float64) for name in GREEKS_OUTPUTS}
        bad = np.asarray(out.status) != STATUS_OK
        for array in values.values():
            bad |= ~np.isfinite(array)
        if bad.any():
            positions = index[bad][:MAX_LISTED_VIOLATIONS]
            raise invalid_argument(
                f"{int(bad.sum())} option leg(s) give a non-finite model value (outside double precision)",
                [
                    FieldViolation(
                        f"positions[{int(i)}].option",
                        "its inputs take the model outside double precision",
                        FieldInvalid.reason,
                    )
                    for i in positions
                ],
            )
        for name, array in values.items():
            per_share[name][index] = array
    return per_share


def _scale(
    p: Positions, per_share: dict[str, FloatArray], is_option: BoolArray, beta: FloatArray, bench: float
) -> PositionGreeks:
    multiplier = np.where(is_option | (p.multiplier != 0.0), p.multiplier, 1.0)
    shares = p.quantity * multiplier
    spot = p.underlying_price
    # Adding 0.0 turns the -0.0 of "zero Greek times a short quantity" into 0.0.
    scaled = {name: per_share[name] * shares + 0.0 for name in GREEKS_OUTPUTS}
    delta_shares = scaled["delta"]
    return PositionGreeks(
        ids=list(p.ids),
        underlying_symbols=list(p.underlying_symbols),
        market_value=scaled["price"],
        delta_shares=delta_shares,
        delta_dollars=delta_shares * spot + 0.0,
        gamma=scaled["gamma"],
        theta=scaled["theta"],
        vega=scaled["vega"],
        rho=scaled["rho"],
        vanna=scaled["vanna"],
        charm=scaled["charm"],
        beta_weighted_delta=beta * spot * delta_shares / bench + 0.0,
    )


def _check_finite(positions: PositionGreeks) -> None:
    bad = np.zeros(len(positions.ids), dtype=np.bool_)
    for name in ("market_value", "delta_dollars", "gamma", "theta", "vega", "rho", "vanna", "charm",
                 "beta_weighted_delta"):
        bad |= ~np.isfinite(getattr(positions, name))
    found = _Violations()
    found.add_mask(
        0,
        bad,
        _fixed(
            "quantity",
            "with the multiplier and prices, takes the position's Greeks outside double precision",
            FieldInvalid.reason,
        ),
    )
    found.raise_if_any("positions too large to evaluate")


def aggregate_portfolio_greeks(request: PortfolioRequest) -> PortfolioGreeks:
    """Compute per-position, per-underlying and total Greeks, with the beta-weighted delta.

    Args:
        request: The positions and the benchmark.

    Returns:
        The aggregation; underlyings sorted by symbol.

    Raises:
        BatchTooLarge: More than 100,000 positions.
        FieldRequired: A position lacks its instrument or underlying symbol, an option leg its kind, style or
            multiplier, or the benchmark price is 0.
        FieldInvalid: A number is NaN, infinite or out of range.
        UnderlyingPriceMismatch: Positions on one underlying disagree on its price or beta.
    """
    p = request.positions
    n = len(p)
    check_batch_size(n, "positions")
    _check_benchmark(request.benchmark_price)
    _check_positions(p)
    bench = request.benchmark_price
    beta = np.where(p.has_beta, p.beta, 1.0)
    symbols = np.asarray(p.underlying_symbols, dtype=np.str_) if n else np.empty(0, dtype=np.str_)
    unique, first, inverse = np.unique(symbols, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    _check_agreement(p, symbols, first, inverse, beta)

    is_option = p.instrument == int(Instrument.OPTION)
    per_share = _per_share_greeks(p, is_option)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by _check_finite below
        positions = _scale(p, per_share, is_option, beta, bench)
    _check_finite(positions)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum is reported below
        underlyings, total = _sum_up(positions, p.underlying_price[first], beta[first], unique, inverse, bench)
    for value in (total.market_value, total.delta_dollars, total.theta, total.vega, total.rho,
                  total.beta_weighted_delta, total.beta_weighted_delta_dollars,
                  *(u.gamma for u in underlyings), *(u.vanna for u in underlyings), *(u.charm for u in underlyings),
                  *(u.delta_shares for u in underlyings)):
        if not math.isfinite(value):
            raise invalid_argument(
                "the portfolio's sums overflow double precision",
                [FieldViolation("positions", "quantities and prices too large to sum", FieldInvalid.reason)],
            )
    return PortfolioGreeks(
        positions=positions,
        underlyings=underlyings,
        total=total,
        benchmark_symbol=request.benchmark_symbol,
        benchmark_price=bench,
    )


def _sum_up(
    positions: PositionGreeks,
    u_spot: FloatArray,
    u_beta: FloatArray,
    unique: npt.NDArray[np.str_],
    inverse: IntArray,
    bench: float,
) -> tuple[tuple[UnderlyingGreeks, ...], PortfolioTotal]:
    k = len(unique)

    def per_underlying(values: FloatArray) -> FloatArray:
        return np.bincount(inverse, weights=values, minlength=k).astype(np.float64) + 0.0

    counts = np.bincount(inverse, minlength=k)
    sums = {name: per_underlying(getattr(positions, name)) for name in (
        "market_value", "delta_shares", "gamma", "theta", "vega", "rho", "vanna", "charm")}
    u_delta_dollars = sums["delta_shares"] * u_spot + 0.0
    u_bwd = u_beta * u_spot * sums["delta_shares"] / bench + 0.0
    underlyings = tuple(
        UnderlyingGreeks(
            underlying_symbol=str(unique[j]),
            underlying_price=float(u_spot[j]),
            beta=float(u_beta[j]),
            position_count=int(counts[j]),
            market_value=float(sums["market_value"][j]),
            delta_shares=float(sums["delta_shares"][j]),
            delta_dollars=float(u_delta_dollars[j]),
            gamma=float(sums["gamma"][j]),
            theta=float(sums["theta"][j]),
            vega=float(sums["vega"][j]),
            rho=float(sums["rho"][j]),
            vanna=float(sums["vanna"][j]),
            charm=float(sums["charm"][j]),
            beta_weighted_delta=float(u_bwd[j]),
        )
        for j in range(k)
    )
    total_bwd = float(u_bwd.sum()) + 0.0
    total = PortfolioTotal(
        position_count=len(positions.ids),
        market_value=float(sums["market_value"].sum()) + 0.0,
        delta_dollars=float(u_delta_dollars.sum()) + 0.0,
        theta=float(sums["theta"].sum()) + 0.0,
        vega=float(sums["vega"].sum()) + 0.0,
        rho=float(sums["rho"].sum()) + 0.0,
        beta_weighted_delta=total_bwd,
        beta_weighted_delta_dollars=total_bwd * bench + 0.0,
    )
    return underlyings, total
