"""core_ext against vollib, QuantLib, NumPy/SciPy and py_vollib_vectorized: price + Greeks and implied vol.

One script, one process, the same random inputs for every competitor (performance.md's distribution, seed
20240611), interleaved rounds, medians; every ratio is the median of per-round ratios against core_ext timed
in the same round. Array competitors run on all options (1,000,000; 100,000 with ``--quick``); the scalar
libraries (vollib, QuantLib) loop over a prefix sample of the same arrays, one option per call. All kernels
run on one thread.

Run it with::

    .venv/bin/python benchmarks/core_ext/bench_core_ext.py [--quick] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtr

import core_ext

SEED = 20240611
TARGETS = {
    # (competitor, kernel): minimum speed-up of core_ext in the same run (issue 4).
    ("NumPy/SciPy vectorized (6 outputs)", "greeks"): 4.0,
    ("vollib (scalar loop)", "greeks"): 1000.0,
    ("NumPy Newton (vectorized)", "iv"): 2.0,
    ("vollib (scalar loop)", "iv"): 50.0,
}
EPS = 2.220446049250313e-16


# --------------------------------------------------------------------------------------------------------
# Inputs


def make_inputs(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """performance.md's inputs: S, K ~ U[50, 150]; T ~ U[0.01, 2] y rounded to whole days (>= 4) over 365;
    r ~ U[0, 5 %]; q ~ U[0, 3 %]; vol ~ U[5 %, 100 %]; exactly half calls, shuffled."""
    rng = np.random.default_rng(seed)
    spot = rng.uniform(50.0, 150.0, n)
    strike = rng.uniform(50.0, 150.0, n)
    days = np.maximum(np.round(rng.uniform(0.01, 2.0, n) * 365.0), 4.0)
    rate = rng.uniform(0.0, 0.05, n)
    div = rng.uniform(0.0, 0.03, n)
    vol = rng.uniform(0.05, 1.0, n)
    is_call = np.zeros(n, dtype=bool)
    is_call[: n // 2] = True
    rng.shuffle(is_call)
    return {"is_call": is_call, "spot": spot, "strike": strike, "days": days, "t": days / 365.0, "r": rate,
            "q": div, "vol": vol}


# --------------------------------------------------------------------------------------------------------
# NumPy / SciPy baselines (written here, as a user would)

INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def numpy_greeks6(d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Price, delta, gamma, vega, theta, rho (raw units: per 1.00 vol, per year, per 1.00 rate)."""
    s, k, t, v, r, q = d["spot"], d["strike"], d["t"], d["vol"], d["r"], d["q"]
    sign = np.where(d["is_call"], 1.0, -1.0)
    sq = np.sqrt(t)
    vs = v * sq
    d1 = (np.log(s / k) + (r - q + 0.5 * v * v) * t) / vs
    d2 = d1 - vs
    eq = np.exp(-q * t)
    er = np.exp(-r * t)
    n1 = np.exp(-0.5 * d1 * d1) * INV_SQRT_2PI
    nd1 = ndtr(sign * d1)
    nd2 = ndtr(sign * d2)
    se = s * eq
    ke = k * er
    price = sign * (se * nd1 - ke * nd2)
    delta = sign * eq * nd1
    gamma = eq * n1 / (s * vs)
    vega = se * n1 * sq
    theta = -se * n1 * v / (2.0 * sq) + sign * (q * se * nd1 - r * ke * nd2)
    rho = sign * ke * t * nd2
    return price, delta, gamma, vega, theta, rho


def numpy_greeks8(d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The six above plus vanna and charm: the same outputs as core_ext."""
    s, k, t, v, r, q = d["spot"], d["strike"], d["t"], d["vol"], d["r"], d["q"]
    sign = np.where(d["is_call"], 1.0, -1.0)
    sq = np.sqrt(t)
    vs = v * sq
    d1 = (np.log(s / k) + (r - q + 0.5 * v * v) * t) / vs
    d2 = d1 - vs
    eq = np.exp(-q * t)
    er = np.exp(-r * t)
    n1 = np.exp(-0.5 * d1 * d1) * INV_SQRT_2PI
    nd1 = ndtr(sign * d1)
    nd2 = ndtr(sign * d2)
    se = s * eq
    ke = k * er
    eqn1 = eq * n1
    price = sign * (se * nd1 - ke * nd2)
    delta = sign * eq * nd1
    gamma = eqn1 / (s * vs)
    vega = se * n1 * sq
    theta = -se * n1 * v / (2.0 * sq) + sign * (q * se * nd1 - r * ke * nd2)
    rho = sign * ke * t * nd2
    vanna = -eqn1 * d2 / v
    charm = sign * q * eq * nd1 - eqn1 * ((r - q) / vs - d2 / (2.0 * t))
    return price, delta, gamma, vega, theta, rho, vanna, charm


def numpy_newton_iv(d: dict[str, np.ndarray], price: np.ndarray, tol: float = 1e-13, maxit: int = 100) -> np.ndarray:
    """Vectorized, bracketed Newton in Jaeckel's normalised variables: on ln b below the inflection point and
    on b above it, from the inflection point s_c = sqrt(2|x|), bisecting when a step leaves the bracket; only
    the still-active options are computed each round. NaN where the price is outside the no-arbitrage band."""
    s_, k_, t_, r_, q_ = d["spot"], d["strike"], d["t"], d["r"], d["q"]
    sign = np.where(d["is_call"], 1.0, -1.0)
    x = np.log(s_ / k_) + (r_ - q_) * t_
    intrinsic = np.maximum(sign * ((s_ - k_) + s_ * np.expm1(-q_ * t_) - k_ * np.expm1(-r_ * t_)), 0.0)
    beta = (price - intrinsic) * np.exp(0.5 * (r_ + q_) * t_) / np.sqrt(s_ * k_)
    xt = -np.abs(x)
    bmax = np.exp(0.5 * xt)
    out = np.full(price.shape, np.nan)
    ok = (beta > 0.0) & (beta < bmax)
    idx = np.flatnonzero(ok)
    x, beta, bmax = xt[idx], beta[idx], bmax[idx]
    sc = np.sqrt(-2.0 * x)
    bc = 0.5 * bmax - 0.5 / bmax * (2.0 * ndtr(-sc))
    lower = beta < bc
    # A start on the right side of the root for either objective: s_c, or for at-the-money Brenner-Subrahmanyam.
    s = np.where(sc > 0.0, sc, np.sqrt(2.0 * np.pi) * beta)
    lo = np.where(lower, 0.0, sc)
    hi = np.where(lower, sc, np.inf)
    ln_beta = np.log(beta)
    with np.errstate(all="ignore"):
        for _ in range(maxit):
            if idx.size == 0:
                break
            h = x / s
            tt = 0.5 * s
            b = bmax * ndtr(h + tt) - ndtr(h - tt) / bmax
            bp = INV_SQRT_2PI * np.exp(-0.5 * (h * h + tt * tt))
            below = b < beta
            lo = np.where(below, np.maximum(lo, s), lo)
            hi = np.where(below, hi, np.minimum(hi, s))
            step = np.where(lower, (ln_beta - np.log(b)) * b / bp, (beta - b) / bp)
            new = s + step
            outside = ~((new >= lo) & (new <= hi))  # inclusive: a converged point sits on the bracket
            bisect = np.where(np.isfinite(hi), np.where(lo > 0.0, np.sqrt(lo * hi), 0.5 * hi), 2.0 * s)
            new = np.where(outside, bisect, new)
            # Converged: a Newton step (not a bisection) below the tolerance, or below the rounding noise of b
            # where that noise is itself small (deep in the money the price's own rounding limits the vol).
            noise = 4.0 * EPS * (bmax + 1.0 / bmax) / bp
            small = (np.abs(step) <= tol * s) | ((np.abs(step) <= noise) & (noise <= 1e-8 * s))
            done = small & ~outside
            out[idx[done]] = new[done] / np.sqrt(t_[idx[done]])
            keep = ~done
            idx, x, beta, bmax, lower, lo, hi, ln_beta, s = (
                a[keep] for a in (idx, x, beta, bmax, lower, lo, hi, ln_beta, new)
            )
    return out


# --------------------------------------------------------------------------------------------------------
# Scalar libraries


def vollib_greeks_loop(d: dict[str, np.ndarray], m: int) -> np.ndarray:
    from vollib.black_scholes_merton import black_scholes_merton
    from vollib.black_scholes_merton.greeks import analytical as g

    flags = ["c" if c else "p" for c in d["is_call"][:m]]
    cols = [d[k][:m].tolist() for k in ("spot", "strike", "t", "r", "vol", "q")]
    out = np.empty((m, 6))
    for i, (flag, s, k, t, r, v, q) in enumerate(zip(flags, *cols, strict=True)):
        out[i, 0] = black_scholes_merton(flag, s, k, t, r, v, q)
        out[i, 1] = g.delta(flag, s, k, t, r, v, q)
        out[i, 2] = g.gamma(flag, s, k, t, r, v, q)
        out[i, 3] = g.vega(flag, s, k, t, r, v, q)
        out[i, 4] = g.theta(flag, s, k, t, r, v, q)
        out[i, 5] = g.rho(flag, s, k, t, r, v, q)
    # vollib reports vega and rho per 1 % and theta per day: back to raw units.
    out[:, 3] *= 100.0
    out[:, 4] *= 365.0
    out[:, 5] *= 100.0
    return out


def vollib_iv_loop(d: dict[str, np.ndarray], price: np.ndarray, m: int) -> np.ndarray:
    from vollib.black_scholes_merton.implied_volatility import implied_volatility

    out = np.full(m, np.nan)
    cols = [d[k][:m].tolist() for k in ("spot", "strike", "t", "r", "q")]
    for i, (c, p, s, k, t, r, q) in enumerate(zip(d["is_call"][:m].tolist(), price[:m].tolist(), *cols, strict=True)):
        try:
            out[i] = implied_volatility(p, s, k, t, r, q, "c" if c else "p")
        except Exception:  # noqa: BLE001 - vollib raises its own exceptions for impossible prices
            out[i] = np.nan
    return out


class QuantLibPricer:
    """One VanillaOption per option on shared quotes, AnalyticEuropeanEngine; T as whole days (Actual/365F)."""

    def __init__(self) -> None:
        import QuantLib as ql

        self.ql = ql
        self.today = ql.Date(3, 1, 2024)
        ql.Settings.instance().evaluationDate = self.today
        dc = ql.Actual365Fixed()
        self.spot = ql.SimpleQuote(100.0)
        self.rate = ql.SimpleQuote(0.0)
        self.div = ql.SimpleQuote(0.0)
        self.vol = ql.SimpleQuote(0.2)
        self.process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(self.spot),
            ql.YieldTermStructureHandle(ql.FlatForward(self.today, ql.QuoteHandle(self.div), dc)),
            ql.YieldTermStructureHandle(ql.FlatForward(self.today, ql.QuoteHandle(self.rate), dc)),
            ql.BlackVolTermStructureHandle(ql.BlackConstantVol(self.today, ql.NullCalendar(), ql.QuoteHandle(self.vol), dc)),
        )
        self.engine = ql.AnalyticEuropeanEngine(self.process)

    def _option(self, is_call: bool, s: float, k: float, days: float, r: float, q: float, v: float) -> Any:
        ql = self.ql
        self.spot.setValue(s)
        self.rate.setValue(r)
        self.div.setValue(q)
        self.vol.setValue(v)
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, k)
        option = ql.VanillaOption(payoff, ql.EuropeanExercise(self.today + int(days)))
        option.setPricingEngine(self.engine)
        return option

    def greeks_loop(self, d: dict[str, np.ndarray], m: int) -> np.ndarray:
        out = np.empty((m, 6))
        cols = [d[k][:m].tolist() for k in ("is_call", "spot", "strike", "days", "r", "q", "vol")]
        for i, (c, s, k, days, r, q, v) in enumerate(zip(*cols, strict=True)):
            o = self._option(c, s, k, days, r, q, v)
            out[i] = (o.NPV(), o.delta(), o.gamma(), o.vega(), o.theta(), o.rho())
            del o  # an instrument left alive keeps observing the shared quotes (and slows every setValue)
        return out

    def iv_loop(self, d: dict[str, np.ndarray], price: np.ndarray, m: int) -> np.ndarray:
        out = np.full(m, np.nan)
        cols = [d[k][:m].tolist() for k in ("is_call", "spot", "strike", "days", "r", "q")]
        for i, (c, s, k, days, r, q, p) in enumerate(zip(*cols, price[:m].tolist(), strict=True)):
            o = self._option(c, s, k, days, r, q, 0.2)
            try:
                out[i] = o.impliedVolatility(p, self.process, 1e-10, 100, 1e-7, 4.0)
            except RuntimeError:
                out[i] = np.nan
            del o
        return out


def pvv_available() -> str | None:
    try:
        import py_vollib_vectorized  # type: ignore[import-not-found]  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available here"
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
    return None


# --------------------------------------------------------------------------------------------------------
# Timing


@dataclass
class Row:
    name: str
    kernel: str  # "greeks" or "iv"
    n: int
    fn: Callable[[], Any]
    times: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ns(self) -> float:
        return statistics.median(self.times) / self.n * 1e9


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?")
    except (OSError, subprocess.SubprocessError):
        model = platform.processor() or "?"
    import os

    return f"{model}, {os.cpu_count()} logical CPUs, {platform.platform()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 options and smaller scalar samples")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    n = 100_000 if args.quick else 1_000_000
    m_greeks, m_iv, m_ql_iv = (2_000, 1_000, 500) if args.quick else (20_000, 10_000, 5_000)
    d = make_inputs(n)
    print(f"machine: {machine()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, core_ext built with "
          f"-O3 -march=native -fno-math-errno -fno-trapping-math, libmvec")
    print(f"inputs: n = {n:,} (seed {SEED}); scalar samples: {m_greeks:,} (Greeks), {m_iv:,} (vollib IV), "
          f"{m_ql_iv:,} (QuantLib IV); {args.rounds} rounds, medians\n")

    ic, s, k, t, v, r, q = (d[c] for c in ("is_call", "spot", "strike", "t", "vol", "r", "q"))
    ref = core_ext.greeks_array(ic, s, k, t, v, r, q)
    price = ref.price.copy()
    ql_pricer = QuantLibPricer()

    rows = [
        Row("core_ext.greeks_array (8 outputs)", "greeks", n, lambda: core_ext.greeks_array(ic, s, k, t, v, r, q)),
        Row("NumPy/SciPy vectorized (6 outputs)", "greeks", n, lambda: numpy_greeks6(d)),
        Row("NumPy/SciPy vectorized (8 outputs)", "greeks", n, lambda: numpy_greeks8(d)),
        Row("vollib (scalar loop)", "greeks", m_greeks, lambda: vollib_greeks_loop(d, m_greeks)),
        Row("QuantLib AnalyticEuropeanEngine (scalar loop)", "greeks", m_greeks, lambda: ql_pricer.greeks_loop(d, m_greeks)),
        Row("core_ext.implied_volatility_array", "iv", n, lambda: core_ext.implied_volatility_array(ic, price, s, k, t, r, q)),
        Row("NumPy Newton (vectorized)", "iv", n, lambda: numpy_newton_iv(d, price)),
        Row("vollib (scalar loop)", "iv", m_iv, lambda: vollib_iv_loop(d, price, m_iv)),
        Row("QuantLib impliedVolatility (scalar loop)", "iv", m_ql_iv, lambda: ql_pricer.iv_loop(d, price, m_ql_iv)),
    ]
    results: dict[str, Any] = {}
    for row in rows:  # warm-up (imports, first-touch of pages) and accuracy
        _, results[row.name + row.kernel] = timed(row.fn)
    for _ in range(args.rounds):
        base: dict[str, float] = {}
        for row in rows:
            dt, _ = timed(row.fn)
            row.times.append(dt)
            per_option = dt / row.n
            if row.name.startswith("core_ext"):
                base[row.kernel] = per_option
            else:
                row.ratios.append(per_option / base[row.kernel])

    # Accuracy against core_ext (Greeks, raw units) and against the true vol (IV, well-posed options).
    raw = np.stack([ref.price, ref.delta, ref.gamma, ref.vega * 100, ref.theta * 365, ref.rho * 100])
    for row in rows:
        res = results[row.name + row.kernel]
        if row.kernel == "greeks" and not row.name.startswith("core_ext"):
            arr = np.asarray(res[:6]) if isinstance(res, tuple) else np.asarray(res).T
            diff = np.abs(arr - raw[:, : arr.shape[1]])
            row.note = f"max |diff| vs core_ext: price {diff[0].max():.0e}, Greeks {diff[1:].max():.0e}"
    vega = ref.vega * 100
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        attainable = 4 * EPS * (s * np.exp(-q * t) + k * np.exp(-r * t)) / vega
    well_posed = (price > 1e-300) & (attainable < 1e-10)
    for row in rows:
        if row.kernel != "iv":
            continue
        res = results[row.name + row.kernel]
        vols = res[0] if isinstance(res, tuple) else res
        m = len(vols)
        wp = well_posed[:m]
        err = np.abs(vols - v[:m])
        fails = int(np.count_nonzero(wp & ~(err <= 1e-6)))
        row.note = (f"well-posed {int(wp.sum()):,}: max |err| {np.nanmax(err[wp]):.1e}, failures {fails}")
    _, _, iters = core_ext._bsm._implied_volatility_iterations(ic, price, s, k, t, r, q)
    iter_note = (f"iterations on well-posed options: mean {iters[well_posed].mean():.2f}, "
                 f"p99 {np.percentile(iters[well_posed], 99):.0f}, max {iters[well_posed].max():.0f}")

    pvv = pvv_available()
    print("| kernel | implementation | options | ns/option | x core_ext (median of rounds) | accuracy |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        ratio = "1" if not row.ratios else f"{statistics.median(row.ratios):,.1f}"
        print(f"| {'price + Greeks' if row.kernel == 'greeks' else 'implied vol'} | {row.name} | {row.n:,} | "
              f"{row.ns:,.1f} | {ratio} | {row.note} |")
    for kernel in ("price + Greeks", "implied vol"):
        print(f"| {kernel} | py_vollib_vectorized | - | not available | - | {pvv or 'available'} |")
    print(f"\n{iter_note}")
    print("\ntargets (speed-up of core_ext in the same run):")
    ok = True
    for (name, kernel), target in TARGETS.items():
        row = next(r for r in rows if r.name == name and r.kernel == kernel)
        got = statistics.median(row.ratios)
        met = got >= target
        ok &= met
        print(f"  {kernel:6s} vs {name}: {got:,.1f}x (target >= {target:,.0f}x) {'met' if met else 'NOT MET'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine(), "n": n, "rounds": args.rounds,
                       "rows": [{"name": r.name, "kernel": r.kernel, "n": r.n, "ns_per_option": r.ns,
                                 "ratio_median": statistics.median(r.ratios) if r.ratios else 1.0,
                                 "times": r.times, "note": r.note} for r in rows],
                       "iterations": iter_note, "py_vollib_vectorized": pvv or "available"}, fh, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
