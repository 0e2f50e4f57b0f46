"""Accuracy summary of core_ext against the 40-digit mpmath references of tests/core_ext (figures for the README).

The tests assert the tolerances; this script prints the errors actually reached, over larger random samples
than the tests use. Run it with::

    .venv/bin/python benchmarks/core_ext/accuracy_core_ext.py [--european 4000] [--iv 20000] [--american 300]
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import mpmath as mp
import numpy as np

import core_ext
from core_ext._bsm import _implied_volatility_iterations

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "core_ext"))
from bsm_reference import DPS, american_price, gbsm_price, reference_greeks  # noqa: E402

FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm")
EPS = 2.220446049250313e-16


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(math.log(lo), math.log(hi))))


def european(n: int) -> None:
    rng = np.random.default_rng(1)
    worst_rel = dict.fromkeys(FIELDS, 0.0)
    worst_ratio = dict.fromkeys(FIELDS, 0.0)
    for i in range(n):
        spot = log_uniform(rng, 1.0, 1000.0)
        case = ("call" if i % 2 else "put", spot, spot * log_uniform(rng, 0.2, 5.0), log_uniform(rng, 1 / 8760, 5.0),
                log_uniform(rng, 0.01, 4.0), float(rng.uniform(-0.01, 0.1)), float(rng.uniform(0.0, 0.08)))
        got = core_ext.greeks(*case)  # type: ignore[arg-type]
        ref = reference_greeks(gbsm_price, *case)
        scale = {"price": spot, "delta": 1.0, "gamma": 1 / spot, "vega": spot, "theta": spot, "rho": spot,
                 "vanna": 1.0, "charm": 1.0}
        for f in FIELDS:
            a, b = getattr(got, f), getattr(ref, f)
            floor = 1e-12 * scale[f]
            worst_ratio[f] = max(worst_ratio[f], abs(a - b) / max(1e-10 * abs(b), floor))
            if abs(b) > 1e-8 * scale[f]:
                worst_rel[f] = max(worst_rel[f], abs(a - b) / abs(b))
    print(f"European, {n:,} random options (strike/spot 0.2-5, 1 hour-5 years, vol 1-400 %):")
    print("  output | max relative error (|value| > 1e-8 of its scale) | max error / tolerance")
    for f in FIELDS:
        print(f"  {f:6s} | {worst_rel[f]:.1e} | {worst_ratio[f]:.1e}")


def implied_vol(n: int) -> None:
    rng = np.random.default_rng(2)
    rows = []
    with mp.workdps(DPS):
        for i in range(n):
            case = (bool(i % 2), 100.0, 100.0 * log_uniform(rng, 0.2, 5.0), log_uniform(rng, 1 / 8760, 5.0),
                    log_uniform(rng, 0.01, 4.0), float(rng.uniform(-0.01, 0.1)), float(rng.uniform(0.0, 0.08)))
            is_call, s, k, t, v, r, q = case
            s_, k_, t_, v_, r_, q_ = (mp.mpf(a) for a in (s, k, t, v, r, q))
            d1 = (mp.log(s_ / k_) + (r_ - q_ + v_ * v_ / 2) * t_) / (v_ * mp.sqrt(t_))
            price = float(gbsm_price("call" if is_call else "put", s_, k_, t_, v_, r_, q_))
            vega = float(s_ * mp.exp(-q_ * t_) * mp.npdf(d1) * mp.sqrt(t_))
            rows.append((is_call, price, s, k, t, r, q, v, vega))
    a = np.array(rows, dtype=np.float64)
    ic = a[:, 0].astype(bool)
    price, s, k, t, r, q, v, vega = a[:, 1:].T
    vols, status, iters = _implied_volatility_iterations(ic, price, s, k, t, r, q)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        attainable = EPS * price / vega
        wp = (price > 1e-300) & (4 * attainable <= 1e-10 * v)
        tolerance = np.maximum(1e-10 * v, 4 * attainable)
    err = np.abs(vols - v)
    print(f"\nEuropean implied vol, {n:,} random options (same ranges), prices from the 40-digit reference:")
    print(f"  well-posed {int(wp.sum()):,}: failures {int(np.count_nonzero(wp & (status != 0)))}, "
          f"max |err|/vol {np.max(err[wp] / v[wp]):.1e}, median {np.median(err[wp] / v[wp]):.1e}, "
          f"max error / tolerance {np.max(err[wp] / tolerance[wp]):.2f}")
    print(f"  steps: mean {iters[wp].mean():.2f}, p99 {np.percentile(iters[wp], 99):.0f}, max {iters[wp].max():.0f}")
    ill = ~wp
    print(f"  ill-posed {int(ill.sum()):,}: " + ", ".join(
        f"{core_ext.Status(c).name} {int(np.count_nonzero(status[ill] == c))}" for c in np.unique(status[ill])))


def american(n: int) -> None:
    rng = np.random.default_rng(3)
    worst = 0.0
    t0 = time.perf_counter()
    for i in range(n):
        case = ("call" if i % 2 else "put", 100.0, 100.0 * log_uniform(rng, 0.2, 5.0), log_uniform(rng, 1 / 8760, 5.0),
                log_uniform(rng, 0.01, 4.0), float(rng.uniform(0.0, 0.1)), float(rng.uniform(-0.02, 0.1)))
        kind, spot, strike, t, vol, r, q = case
        got = core_ext.greeks(kind, spot, strike, t, vol, r, q, style="american").price  # type: ignore[arg-type]
        with mp.workdps(30):
            ref = float(american_price(*case))
        worst = max(worst, abs(got - ref) / max(1e-10 * abs(ref), 1e-12 * 100.0))
    print(f"\nAmerican, {n:,} random options (strike/spot 0.2-5, 1 hour-5 years, vol 1-400 %, r 0-10 %, q -2-10 %):")
    print(f"  price vs the mpmath Bjerksund-Stensland 2002: max error / tolerance {worst:.1e} "
          f"({time.perf_counter() - t0:.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--european", type=int, default=4000)
    parser.add_argument("--iv", type=int, default=20000)
    parser.add_argument("--american", type=int, default=300)
    args = parser.parse_args()
    european(args.european)
    implied_vol(args.iv)
    american(args.american)
    return 0


if __name__ == "__main__":
    sys.exit(main())
