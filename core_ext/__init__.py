"""Compiled option pricing core: Black-Scholes-Merton and Bjerksund-Stensland (2002) prices, Greeks, implied vols."""

import os

# libgomp reads its wait policy once, when the extension loads it. A worker that sleeps between calls
# (OMP_WAIT_POLICY=passive) is woken too late to help in a virtual machine (its wake-up took longer than a
# 200-option call here), and libgomp's default spins it for milliseconds after every call, taking the
# second core from everything else. A spin of about half a millisecond (20,000 rounds) keeps it awake
# across a busy tick stream and lets it sleep soon after. An explicit setting in the environment wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "20000"

from core_ext._bsm import (  # noqa: E402
    Greeks,
    GreeksArray,
    NoConvergence,
    PriceAboveMaximum,
    PriceBelowIntrinsic,
    Status,
    get_threads,
    greeks,
    greeks_array,
    greeks_into,
    greeks_kernel,
    implied_volatility,
    implied_volatility_array,
    set_threads,
)

__all__ = [
    "Greeks",
    "GreeksArray",
    "NoConvergence",
    "PriceAboveMaximum",
    "PriceBelowIntrinsic",
    "Status",
    "get_threads",
    "greeks",
    "greeks_array",
    "greeks_into",
    "greeks_kernel",
    "implied_volatility",
    "implied_volatility_array",
    "set_threads",
]


def _default_threads() -> int:
    value = os.environ.get("TASTYPLAT_CORE_THREADS", "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(f"TASTYPLAT_CORE_THREADS must be an integer >= 1, got {value!r}")
        return threads
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return min(2, cpus)


set_threads(_default_threads())
