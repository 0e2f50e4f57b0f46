"""European prices and Greeks against published values and a 40-digit mpmath reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import mpmath as mp
from bsm_reference import DPS, RefGreeks, gbsm_price, reference_greeks

from core_ext import greeks, greeks_array

FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm")
RELATIVE = 1e-10
# Absolute floor where a value itself is tiny: 1e-12 in the value's own scale (spot for price, vega, theta
# and rho; 1 for delta, vanna and charm; 1/spot for gamma).
ABSOLUTE = 1e-12


def _scales(spot: float) -> dict[str, float]:
    return {"price": spot, "delta": 1.0, "gamma": 1.0 / spot, "vega": spot, "theta": spot, "rho": spot,
            "vanna": 1.0, "charm": 1.0}


def _assert_close(got: object, ref: RefGreeks, spot: float, context: object) -> None:
    scales = _scales(spot)
    for f in FIELDS:
        a, b = getattr(got, f), getattr(ref, f)
        tol = max(RELATIVE * abs(b), ABSOLUTE * scales[f])
        assert abs(a - b) <= tol, f"{f}: {a!r} vs reference {b!r} (tol {tol:.1e}) at {context}"


def test_hull_example() -> None:
    # Hull, Options, Futures and Other Derivatives: S=42, K=40, T=0.5, r=10%, sigma=20%: c = 4.76, p = 0.81.
    assert round(greeks("call", 42.0, 40.0, 0.5, 0.2, 0.1).price, 2) == 4.76
    assert round(greeks("put", 42.0, 40.0, 0.5, 0.2, 0.1).price, 2) == 0.81


def test_haug_generalized_bsm_example() -> None:
    # Haug, The Complete Guide to Option Pricing Formulas: S=75, K=70, T=0.5, r=10%, b=5%, sigma=35%: p = 4.0870.
    assert round(greeks("put", 75.0, 70.0, 0.5, 0.35, 0.1, 0.1 - 0.05).price, 4) == 4.0870


def _random_cases(n: int, seed: int) -> list[tuple[str, float, float, float, float, float, float]]:
    # Log-uniform over the stated ranges: strike/spot 0.2 to 5, one hour to 5 years, vols 1 % to 400 %.
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        spot = float(np.exp(rng.uniform(math.log(1.0), math.log(1000.0))))
        strike = spot * float(np.exp(rng.uniform(math.log(0.2), math.log(5.0))))
        t = float(np.exp(rng.uniform(math.log(1 / 8760), math.log(5.0))))
        vol = float(np.exp(rng.uniform(math.log(0.01), math.log(4.0))))
        r = float(rng.uniform(-0.01, 0.10))
        q = float(rng.uniform(0.0, 0.08))
        cases.append(("call" if i % 2 else "put", spot, strike, t, vol, r, q))
    return cases


def _corner_cases() -> list[tuple[str, float, float, float, float, float, float]]:
    # The corners of the ranges, where cancellation and tiny values live.
    out = []
    for kind, moneyness, t, vol in itertools.product(
        ("call", "put"), (0.2, 0.9, 1.0, 1.1, 5.0), (1 / 8760, 1 / 365, 5.0), (0.01, 0.3, 4.0)
    ):
        out.append((kind, 100.0, 100.0 * moneyness, t, vol, 0.05, 0.02))
    return out


@pytest.mark.parametrize("case", _random_cases(300, 20240611) + _corner_cases())
def test_prices_and_greeks_match_mpmath_reference(case: tuple[str, float, float, float, float, float, float]) -> None:
    kind, spot, strike, t, vol, r, q = case
    ref = reference_greeks(gbsm_price, kind, spot, strike, t, vol, r, q)
    _assert_close(greeks(kind, spot, strike, t, vol, r, q), ref, spot, case)  # type: ignore[arg-type]


def test_array_kernel_matches_mpmath_reference() -> None:
    # The SIMD path (libmvec exp/log/erfc) meets the same tolerance as the scalar one.
    cases = _random_cases(120, 7) + _corner_cases()
    is_call = np.array([c[0] == "call" for c in cases])
    spot, strike, t, vol, r, q = (np.array([c[j] for c in cases], dtype=np.float64) for j in range(1, 7))
    out = greeks_array(is_call, spot, strike, t, vol, r, q)
    assert np.all(out.status == 0)
    for i, case in enumerate(cases):
        ref = reference_greeks(gbsm_price, *case)
        row = type("Row", (), {f: float(getattr(out, f)[i]) for f in FIELDS})()
        _assert_close(row, ref, case[1], case)


def test_put_call_parity_reference_sanity() -> None:
    # The reference itself satisfies parity (guards the test harness, not the kernel).
    with mp.workdps(DPS):
        c = gbsm_price("call", 100, 90, 0.5, 0.3, 0.05, 0.02)
        p = gbsm_price("put", 100, 90, 0.5, 0.3, 0.05, 0.02)
        assert c - p == pytest.approx(100 * mp.exp(-0.01) - 90 * mp.exp(-0.025), abs=1e-30)
