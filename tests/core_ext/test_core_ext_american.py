"""American options: Bjerksund-Stensland (2002) against an independent mpmath implementation and a QuantLib
finite-difference American price; Greeks against differentiation of the mpmath price; implied vols."""

from __future__ import annotations

import itertools
import math

import mpmath as mp
import numpy as np
import pytest
import QuantLib as ql
from bsm_reference import DPS, american_price, bs2002_price, gbsm_price, reference_greeks

from core_ext import Status, greeks, greeks_array, implied_volatility
from core_ext._bsm import _implied_volatility_iterations

FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm")
EPS = 2.220446049250313e-16


def _random_cases(n: int, seed: int) -> list[tuple[str, float, float, float, float, float, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        strike = 100.0 * float(np.exp(rng.uniform(math.log(0.3), math.log(3.0))))
        t = float(np.exp(rng.uniform(math.log(1 / 8760), math.log(5.0))))
        vol = float(np.exp(rng.uniform(math.log(0.01), math.log(2.0))))
        r = float(rng.uniform(0.0, 0.10))
        q = float(rng.uniform(-0.02, 0.10))
        out.append(("call" if i % 2 else "put", 100.0, strike, t, vol, r, q))
    return out


@pytest.mark.parametrize("case", _random_cases(40, 20240611))
def test_price_matches_independent_bs2002(case: tuple[str, float, float, float, float, float, float]) -> None:
    kind, spot, strike, t, vol, r, q = case
    with mp.workdps(DPS):
        ref = float(american_price(kind, spot, strike, t, vol, r, q))
    got = greeks(kind, spot, strike, t, vol, r, q, style="american").price  # type: ignore[arg-type]
    assert abs(got - ref) <= max(1e-10 * abs(ref), 1e-12 * spot), case


@pytest.mark.parametrize(
    "case",
    [
        ("put", 100.0, 110.0, 0.5, 0.3, 0.05, 0.0),
        ("call", 100.0, 95.0, 0.75, 0.25, 0.03, 0.06),
        ("put", 100.0, 90.0, 2.0, 0.15, 0.08, 0.02),
        ("call", 42.0, 40.0, 0.75, 0.35, 0.04, 0.08),
        ("put", 100.0, 101.0, 3 / 365, 0.6, 0.05, 0.01),
        ("call", 100.0, 150.0, 1.5, 0.05, 0.02, 0.05),
    ],
)
def test_greeks_match_differentiated_bs2002(case: tuple[str, float, float, float, float, float, float]) -> None:
    # Greeks come from forward-mode differentiation (jets) in core_ext and from central differences of the
    # 40-digit mpmath price here: two independent routes to the derivatives of the same formula.
    ref = reference_greeks(bs2002_price, *case)
    kind, spot_, strike, t, vol, r, q = case
    got = greeks(kind, spot_, strike, t, vol, r, q, style="american")  # type: ignore[arg-type]
    spot = case[1]
    scales = {"price": spot, "delta": 1.0, "gamma": 1 / spot, "vega": spot, "theta": spot, "rho": spot,
              "vanna": 1.0, "charm": 1.0}
    for f in FIELDS:
        a, b = getattr(got, f), getattr(ref, f)
        assert abs(a - b) <= max(1e-9 * abs(b), 1e-12 * scales[f]), (f, a, b)


@pytest.mark.parametrize(
    ("kind", "r", "q"),
    [("call", 0.05, 0.0), ("call", 0.05, -0.01), ("put", 0.0, 0.03)],
)
def test_american_equals_european_when_early_exercise_never_pays(kind: str, r: float, q: float) -> None:
    am = greeks(kind, 100.0, 95.0, 0.5, 0.3, r, q, style="american")  # type: ignore[arg-type]
    eu = greeks(kind, 100.0, 95.0, 0.5, 0.3, r, q)  # type: ignore[arg-type]
    for f in FIELDS:
        assert getattr(am, f) == pytest.approx(getattr(eu, f), rel=1e-14, abs=1e-18)


def test_exercise_region_is_intrinsic_with_unit_delta() -> None:
    # Deep in-the-money put with a high rate: spot below the 2002 trigger, exercise now.
    g = greeks("put", 40.0, 100.0, 1.0, 0.2, 0.08, 0.0, style="american")
    assert (g.price, g.delta) == (60.0, -1.0)
    assert (g.gamma, g.vega, g.theta, g.rho, g.vanna, g.charm) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _quantlib_fd_american(kind: str, spot: float, strike: float, days: int, vol: float, r: float, q: float) -> float:
    today = ql.Date(3, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if kind == "call" else ql.Option.Put, strike)
    option = ql.VanillaOption(payoff, ql.AmericanExercise(today, today + days))
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)),
    )
    option.setPricingEngine(ql.FdBlackScholesVanillaEngine(process, 800, 800))
    return float(option.NPV())


def test_close_to_quantlib_finite_difference_american_price() -> None:
    # Bjerksund-Stensland (2002) values a two-step flat exercise boundary, so it is a lower bound that misses
    # part of the early-exercise premium. On this grid (S = 100) it lies below a fine FD price (800 x 800,
    # itself within about 3e-4 of its limit) by at most 2.5 % of the price, 0.015 in absolute terms; the
    # largest gaps are long-dated low-vol puts. The test allows 3 % + 0.001 and 0.001 above the FD price.
    worst = 0.0
    for kind, strike, days, vol, q in itertools.product(
        ("call", "put"), (80.0, 100.0, 120.0), (30, 182, 730), (0.15, 0.4), (0.0, 0.03, 0.08)
    ):
        if kind == "call" and q == 0.0:
            continue  # never exercised early: the European value, nothing to compare
        fd = _quantlib_fd_american(kind, 100.0, strike, days, vol, 0.05, q)
        bs = greeks(kind, 100.0, strike, days / 365, vol, 0.05, q, style="american").price  # type: ignore[arg-type]
        assert bs <= fd + 1e-3, (kind, strike, days, vol, q, bs, fd)
        assert fd - bs <= 0.03 * fd + 1e-3, (kind, strike, days, vol, q, bs, fd)
        worst = max(worst, (fd - bs) / fd)
    assert worst > 0.005  # the comparison sees the approximation error (it is not vacuous)


def test_american_implied_volatility_recovers_vol() -> None:
    rng = np.random.default_rng(3)
    n = 400
    spot = np.full(n, 100.0)
    strike = 100.0 * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    t = np.exp(rng.uniform(math.log(1 / 365), math.log(3.0), n))
    vol = np.exp(rng.uniform(math.log(0.05), math.log(2.0), n))
    r = rng.uniform(0.0, 0.08, n)
    q = rng.uniform(0.0, 0.08, n)
    is_call = rng.random(n) < 0.5
    g = greeks_array(is_call, spot, strike, t, vol, r, q, style="american")
    vols, status, iters = _implied_volatility_iterations(is_call, g.price, spot, strike, t, r, q, style="american")
    sign = np.where(is_call, 1.0, -1.0)
    lower = np.maximum.reduce([sign * (spot - strike), sign * (spot * np.exp(-q * t) - strike * np.exp(-r * t)),
                               np.zeros(n)])
    vega = g.vega * 100
    with np.errstate(divide="ignore", invalid="ignore"):
        # The 2002 price carries an absolute rounding error of a few eps (S + K); over vega that is how well
        # the price can pin the vol down.
        attainable = 8 * EPS * (g.price + spot + strike) / vega
    well_posed = (vega > 0) & (attainable <= 1e-10 * vol) & (g.price - lower > 1e-8)
    assert well_posed.sum() > 150
    assert np.all(status[well_posed] == Status.OK)
    assert np.all(np.abs(vols - vol)[well_posed] <= np.maximum(1e-10 * vol, attainable)[well_posed])
    assert iters[well_posed].mean() <= 4.0
    # Elsewhere: refused with a status, or a vol that reproduces the price; never a stand-in value.
    for i in np.flatnonzero(~well_posed):
        if status[i] == Status.OK:
            again = greeks("call" if is_call[i] else "put", 100.0, strike[i], t[i], vols[i], r[i], q[i],
                           style="american").price
            assert abs(again - g.price[i]) <= 16 * EPS * (spot[i] + strike[i]) + 1e-4 * vega[i] * vols[i]
        else:
            assert math.isnan(vols[i])


def test_american_scalar_implied_volatility_matches_array() -> None:
    p = greeks("put", 100.0, 105.0, 0.4, 0.27, 0.05, 0.01, style="american").price
    one = implied_volatility("put", p, 100.0, 105.0, 0.4, 0.05, 0.01, style="american")
    assert one == pytest.approx(0.27, rel=1e-11)


def _scenario_cases(n: int, seed: int) -> list[tuple[str, float, float, float, float, float, float]]:
    # The portfolio scenario grid's corner of the input space: spot moved +-20 %, vols shifted down to 2 %,
    # a day to half a year left, small dividend yields; where far-tail terms of the 2002 formula underflow and
    # the vectorized batches clamp them.
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        spot = 100.0 * float(rng.uniform(0.8, 1.2))
        strike = 100.0 * float(rng.uniform(0.8, 1.2))
        t = float(rng.uniform(1.0, 180.0)) / 365.0
        vol = float(rng.uniform(0.02, 0.7))
        out.append(("call" if i % 2 else "put", spot, strike, t, vol, 0.045, float(rng.uniform(0.001, 0.03))))
    return out


@pytest.mark.parametrize("case", _scenario_cases(24, 20261125))
def test_price_matches_independent_bs2002_on_scenario_grid_inputs(
    case: tuple[str, float, float, float, float, float, float],
) -> None:
    kind, spot, strike, t, vol, r, q = case
    with mp.workdps(DPS):
        ref = float(american_price(kind, spot, strike, t, vol, r, q))
    got = greeks(kind, spot, strike, t, vol, r, q, style="american").price  # type: ignore[arg-type]
    assert abs(got - ref) <= max(1e-10 * abs(ref), 1e-12 * spot), case


@pytest.mark.parametrize(
    "case",
    [
        ("put", 120.0, 80.0, 7 / 365, 0.02, 0.045, 0.01),     # far out of the money at 2 % vol: terms underflow
        ("put", 80.0, 96.0, 30 / 365, 0.03, 0.045, 0.02),     # deep in the money, low vol, near the trigger
        ("call", 120.0, 100.0, 60 / 365, 0.02, 0.045, 0.03),  # a call on a dividend payer beyond its trigger
        ("call", 80.0, 100.0, 1 / 365, 0.05, 0.045, 0.02),    # one day left, far out of the money
    ],
)
def test_greeks_match_differentiated_bs2002_in_far_tails(
    case: tuple[str, float, float, float, float, float, float],
) -> None:
    ref = reference_greeks(bs2002_price, *case)
    kind, spot, strike, t, vol, r, q = case
    got = greeks(kind, spot, strike, t, vol, r, q, style="american")  # type: ignore[arg-type]
    scales = {"price": spot, "delta": 1.0, "gamma": 1 / spot, "vega": spot, "theta": spot, "rho": spot,
              "vanna": 1.0, "charm": 1.0}
    for f in FIELDS:
        a, b = getattr(got, f), getattr(ref, f)
        assert abs(a - b) <= max(1e-9 * abs(b), 1e-12 * scales[f]), (f, a, b)


def test_american_array_matches_scalar_on_scenario_grid_inputs() -> None:
    # The array kernel and the scalar API run the same batched code: equal to the last bit.
    cases = _scenario_cases(200, 7)
    is_call = np.array([c[0] == "call" for c in cases])
    spot, strike, t, vol, r, q = (np.array([c[k] for c in cases]) for k in range(1, 7))
    g = greeks_array(is_call, spot, strike, t, vol, r, q, style="american")
    assert np.all(g.status == Status.OK)
    for i, c in enumerate(cases):
        one = greeks(c[0], *c[1:], style="american")  # type: ignore[arg-type]
        for f in FIELDS:
            assert getattr(g, f)[i] == getattr(one, f), (f, c)
