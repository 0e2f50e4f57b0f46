"""The American Greeks kernel (Bjerksund-Stensland 2002 on jets), single-threaded, against the European one.

What the delta monitor prices on every underlying tick: spot 100, strikes U[80, 120], expiries 7-400 whole
days, vols U[15 %, 60 %], r 4.5 %, q 0 for half the options and 2 % for the other half. Three books:
puts (the options that take the 2002 formula on every tick), calls with q = 2 % (they take it too) and a
mix (half puts, a quarter calls with q = 2 %, a quarter calls with q = 0, which are priced in closed form).
Each book is priced with ``greeks_array(..., style="american")`` and, as a same-run baseline on the same
inputs, ``style="european"``, in arrays of 100 (many calls a round) and of 100,000 options, on one thread
(``core_ext.set_threads(1)``). Rounds are interleaved; the figures are the median over rounds and, for the
American kernel, the fastest round too (on a shared machine the least disturbed one).

A speed-up between two builds is the ratio of their ns/option, best measured as two runs side by side; the
American/European ratio (median of the per-round ratios) moves less with the machine's load than either
figure alone. ``--save`` writes the American
outputs of the 100,000-option books to an .npz, ``--compare`` prints how far this build's outputs are from
such a file (relative to the price scale: spot for price, vega, theta and rho; 1 for delta, vanna, charm;
1/spot for gamma).

Run it with::

    .venv/bin/python benchmarks/core_ext/bench_american.py [--rounds 7] [--save out.npz] [--compare out.npz]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

import core_ext

SEED = 20240611
SPOT = 100.0
FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm")
SCALE = {"price": SPOT, "delta": 1.0, "gamma": 1.0 / SPOT, "vega": SPOT, "theta": SPOT, "rho": SPOT,
         "vanna": 1.0, "charm": 1.0}


class Book(NamedTuple):
    """The inputs of greeks_array for one book of options."""

    is_call: npt.NDArray[np.bool_]
    spot: npt.NDArray[np.float64]
    strike: npt.NDArray[np.float64]
    years: npt.NDArray[np.float64]
    vol: npt.NDArray[np.float64]
    rate: npt.NDArray[np.float64]
    div: npt.NDArray[np.float64]


def make_book(kind: str, n: int, seed: int = SEED) -> Book:
    """Inputs of n options of one book: "puts", "calls_q" or "mix" (see the module docstring)."""
    rng = np.random.default_rng(seed)
    strike = rng.uniform(80.0, 120.0, n)
    years = rng.integers(7, 401, n).astype(np.float64) / 365.0
    vol = rng.uniform(0.15, 0.60, n)
    rate = np.full(n, 0.045)
    div = np.where(np.arange(n) % 2 == 0, 0.0, 0.02)
    rng.shuffle(div)
    if kind == "puts":
        is_call = np.zeros(n, dtype=bool)
    elif kind == "calls_q":
        is_call = np.ones(n, dtype=bool)
        div = np.full(n, 0.02)
    else:
        u = rng.random(n)
        is_call = u >= 0.5
        div = np.where(u < 0.75, div, 0.0)
        div = np.where((u >= 0.5) & (u < 0.75), 0.02, div)
    return Book(is_call, np.full(n, SPOT), strike, years, vol, rate, div)


def price(book: Book, style: Literal["european", "american"]) -> core_ext.GreeksArray:
    """greeks_array on a book."""
    return core_ext.greeks_array(book.is_call, book.spot, book.strike, book.years, book.vol, book.rate, book.div,
                                 style=style)


def time_call(book: Book, style: Literal["european", "american"], repeat: int) -> float:
    """ns per option of `repeat` calls of greeks_array on `book`."""
    n = len(book.spot)
    t0 = time.perf_counter_ns()
    for _ in range(repeat):
        price(book, style)
    return (time.perf_counter_ns() - t0) / (repeat * n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--save", help="write the American outputs of the 100,000-option books here (.npz)")
    parser.add_argument("--compare", help="print the largest differences from outputs saved with --save")
    args = parser.parse_args()

    core_ext.set_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}, "
          f"python {platform.python_version()}, numpy {np.__version__}; threads {core_ext.get_threads()}")
    print(f"rounds: {args.rounds} (medians); spot 100, strikes 80-120, 7-400 days, vol 15-60 %, r 4.5 %, "
          "q 0 / 2 %")
    # (book, size, calls per round): each round of each entry takes about the same time.
    cases = [(book, n, max(1, 2_000_000 // (n * (20 if book != "mix" else 12))))
             for book in ("puts", "calls_q", "mix") for n in (100, 100_000)]
    inputs = {(book, n): make_book(book, n) for book, n, _ in cases}
    for options in inputs.values():  # warm-up: first touch of the output memory, caches
        price(options, "american")
        price(options, "european")
    results: dict[tuple[str, int], dict[str, list[float]]] = {
        (b, n): {"american": [], "european": [], "ratio": []} for b, n, _ in cases}
    for _ in range(args.rounds):
        for book, n, repeat in cases:
            am = time_call(inputs[(book, n)], "american", repeat)
            eu = time_call(inputs[(book, n)], "european", repeat)
            res = results[(book, n)]
            res["american"].append(am)
            res["european"].append(eu)
            res["ratio"].append(am / eu)

    print()
    print("| book | options | American ns/option | American, fastest round | European ns/option "
          "| American / European |")
    print("|---|---:|---:|---:|---:|---:|")
    for book, n, _ in cases:
        res = results[(book, n)]
        print(f"| {book} | {n:,} | {statistics.median(res['american']):,.1f} | {min(res['american']):,.1f} | "
              f"{statistics.median(res['european']):,.1f} | {statistics.median(res['ratio']):,.1f} |")

    big = {book: price(inputs[(book, 100_000)], "american") for book in ("puts", "calls_q", "mix")}
    if args.save:
        arrays: dict[str, Any] = {f"{book}_{f}": np.asarray(getattr(g, f)) for book, g in big.items() for f in FIELDS}
        np.savez(args.save, **arrays)
        print(f"\nsaved the American outputs of the 100,000-option books to {args.save}")
    if args.compare:
        ref = np.load(args.compare)
        print(f"\nlargest differences from {args.compare} (absolute / scale, and relative where |value| > 1e-8 "
              "of its scale):")
        for f in FIELDS:
            worst_abs = worst_rel = 0.0
            for book, g in big.items():
                got, want = np.asarray(getattr(g, f)), ref[f"{book}_{f}"]
                diff = np.abs(got - want)
                worst_abs = max(worst_abs, float(np.max(diff)) / SCALE[f])
                big_enough = np.abs(want) > 1e-8 * SCALE[f]
                if big_enough.any():
                    worst_rel = max(worst_rel, float(np.max(diff[big_enough] / np.abs(want[big_enough]))))
            print(f"  {f:6s} | {worst_abs:.1e} | {worst_rel:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
