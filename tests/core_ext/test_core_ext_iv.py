"""European implied volatility: recovery of known vols to full attainable accuracy, in a few iterations."""

from __future__ import annotations

import itertools
import math
from typing import Literal

import mpmath as mp
import numpy as np
import pytest
from bsm_reference import DPS, gbsm_price
from vollib.black_scholes_merton.implied_volatility import implied_volatility as vollib_iv

from core_ext import Status, greeks, implied_volatility, implied_volatility_array
from core_ext._bsm import _implied_volatility_iterations

EPS = 2.220446049250313e-16


def _priced(cases: list[tuple[bool, float, float, float, float, float, float]]) -> dict[str, np.ndarray]:
    """Exact (40-digit) prices rounded to doubles, with the vega and the size of the formula's two legs."""
    cols: dict[str, list[float]] = {k: [] for k in ("price", "vega", "legs")}
    with mp.workdps(DPS):
        for is_call, s, k, t, v, r, q in cases:
            s_, k_, t_, v_, r_, q_ = (mp.mpf(a) for a in (s, k, t, v, r, q))
            d1 = (mp.log(s_ / k_) + (r_ - q_ + v_ * v_ / 2) * t_) / (v_ * mp.sqrt(t_))
            cols["price"].append(float(gbsm_price("call" if is_call else "put", s_, k_, t_, v_, r_, q_)))
            cols["vega"].append(float(s_ * mp.exp(-q_ * t_) * mp.npdf(d1) * mp.sqrt(t_)))
            cols["legs"].append(float(s_ * mp.exp(-q_ * t_) + k_ * mp.exp(-r_ * t_)))
    arr = np.array(cases, dtype=object)
    out = {k: np.array(v, dtype=np.float64) for k, v in cols.items()}
    out["is_call"] = arr[:, 0].astype(bool)
    for j, name in enumerate(("spot", "strike", "t", "vol", "r", "q"), start=1):
        out[name] = arr[:, j].astype(np.float64)
    return out


def _check_recovery(d: dict[str, np.ndarray]) -> np.ndarray:
    vols, status, iters = _implied_volatility_iterations(
        d["is_call"], d["price"], d["spot"], d["strike"], d["t"], d["r"], d["q"]
    )
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # What the price's own rounding allows: half an ulp of the price over vega (the issue's
        # 2.2e-16 x price / vega), with a factor 4 for the rounding of the bounds and of the normalisation.
        attainable = 4 * EPS * d["price"] / d["vega"]
    tolerance = np.maximum(1e-10 * d["vol"], attainable)
    # Well-posed: a normal price that pins the vol to 1e-10 (the rest lost the time value to rounding or
    # underflowed; no method can recover their vol).
    well_posed = (d["price"] > 1e-300) & (attainable <= 1e-10 * d["vol"])
    bad = well_posed & ((status != Status.OK) | ~(np.abs(vols - d["vol"]) <= tolerance))
    assert not bad.any(), [
        (bool(d["is_call"][i]), d["spot"][i], d["strike"][i], d["t"][i], d["vol"][i], d["r"][i], d["q"][i],
         vols[i], int(status[i])) for i in np.flatnonzero(bad)[:5]
    ]
    # Ill-posed prices are either refused (at intrinsic within rounding, or underflowed to 0) or answered
    # with a vol whose price reproduces the given one to the formula's own rounding: never a made-up vol.
    ill = ~well_posed
    assert set(np.unique(status[ill])) <= {Status.OK, Status.BELOW_INTRINSIC}
    for i in np.flatnonzero(ill & (status == Status.OK)):
        again = greeks("call" if d["is_call"][i] else "put", d["spot"][i], d["strike"][i], d["t"][i], vols[i],
                       d["r"][i], d["q"][i]).price
        assert abs(again - d["price"][i]) <= 16 * EPS * d["legs"][i]
    assert np.all(np.isnan(vols[status != Status.OK]))
    return iters[well_posed]


def _random_cases(n: int, seed: int) -> list[tuple[bool, float, float, float, float, float, float]]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        strike = 100.0 * float(np.exp(rng.uniform(math.log(0.2), math.log(5.0))))
        t = float(np.exp(rng.uniform(math.log(1 / 8760), math.log(5.0))))
        vol = float(np.exp(rng.uniform(math.log(0.01), math.log(4.0))))
        cases.append((bool(i % 2), 100.0, strike, t, vol, float(rng.uniform(-0.01, 0.1)), float(rng.uniform(0, 0.08))))
    return cases


def test_recovers_random_vols_to_attainable_accuracy() -> None:
    iters = _check_recovery(_priced(_random_cases(2000, 20240611)))
    assert len(iters) > 800
    # "A few iterations": Householder(3) steps, counting the last one that confirms convergence.
    assert iters.mean() <= 2.6
    assert np.percentile(iters, 99) <= 4
    assert iters.max() <= 8


def test_recovers_extreme_grid_including_one_hour_and_deep_moneyness() -> None:
    # The benchmark study's extreme grid plus one-hour expiries: K/S 0.3..3, 1 hour .. 2 years, vol 5 %..200 %.
    cases = [
        (is_call, 100.0, 100.0 * m, days / 365.0, vol, 0.03, 0.01)
        for is_call, m, days, vol in itertools.product(
            (True, False), (0.3, 0.5, 0.8, 1.0, 1.25, 2.0, 3.0), (1 / 24, 1, 2, 7, 30, 365, 730), (0.05, 0.2, 0.5, 1.0, 2.0)
        )
    ]
    iters = _check_recovery(_priced(cases))
    assert len(iters) > 250
    assert iters.max() <= 8


@pytest.mark.parametrize(
    ("kind", "strike", "t", "vol"),
    [
        ("call", 100.0, 1 / 8760, 0.15),  # one hour, at the money
        ("put", 99.0, 1 / 8760, 0.30),  # one hour, just out of the money
        ("call", 60.0, 0.25, 0.20),  # deep in the money
        ("put", 160.0, 0.25, 0.20),  # deep in the money
        ("call", 250.0, 0.5, 0.25),  # deep out of the money: price ~ 1e-20
        ("put", 40.0, 0.5, 0.25),  # deep out of the money
        ("call", 100.0, 5.0, 4.0),  # huge total variance: price near its maximum
    ],
)
def test_scalar_implied_volatility_recovers_vol(kind: str, strike: float, t: float, vol: float) -> None:
    with mp.workdps(DPS):
        price = float(gbsm_price(kind, 100.0, strike, t, vol, 0.04, 0.01))
    got = implied_volatility(kind, price, 100.0, strike, t, 0.04, 0.01)  # type: ignore[arg-type]
    vega = greeks(kind, 100.0, strike, t, vol, 0.04, 0.01).vega * 100  # type: ignore[arg-type]
    assert abs(got - vol) <= max(1e-10 * vol, 4 * EPS * price / vega)


def test_agrees_with_lets_be_rational_reference() -> None:
    # vollib implements Jaeckel's "Let's Be Rational", the accuracy anchor.
    d = _priced(_random_cases(300, 99))
    vols, status = implied_volatility_array(d["is_call"], d["price"], d["spot"], d["strike"], d["t"], d["r"], d["q"])
    with np.errstate(divide="ignore", invalid="ignore"):
        attainable = 4 * EPS * d["price"] / d["vega"]
    compared = 0
    for i in np.flatnonzero((d["price"] > 1e-200) & (attainable <= 1e-10 * d["vol"])):
        theirs = vollib_iv(d["price"][i], d["spot"][i], d["strike"][i], d["t"][i], d["r"][i], d["q"][i],
                           "c" if d["is_call"][i] else "p")
        assert status[i] == Status.OK
        assert abs(vols[i] - theirs) <= max(1e-10 * d["vol"][i], 2 * attainable[i])
        compared += 1
    assert compared > 100


def test_array_and_scalar_give_the_same_vols() -> None:
    # Same algorithm; the array path runs libmvec's SIMD exp/log/erfc, the scalar one libm: a few ulps apart.
    d = _priced(_random_cases(64, 5))
    vols, status = implied_volatility_array(d["is_call"], d["price"], d["spot"], d["strike"], d["t"], d["r"], d["q"])
    for i in np.flatnonzero(status == Status.OK):
        kind: Literal["call", "put"] = "call" if d["is_call"][i] else "put"
        one = implied_volatility(kind, d["price"][i], d["spot"][i], d["strike"][i], d["t"][i], d["r"][i], d["q"][i])
        assert one == pytest.approx(vols[i], rel=1e-13)
