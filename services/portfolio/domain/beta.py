"""Beta estimated from stored daily closes when the broker has none."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date

import numpy as np

__all__ = ["MIN_RETURNS", "estimate_beta"]

MIN_RETURNS = 20


def estimate_beta(closes: Mapping[date, float], benchmark: Mapping[date, float]) -> float | None:
    """Beta of daily log returns against the benchmark's, over the days both have closes.

    Returns:
        cov(r, r_b) / var(r_b), or None with fewer than ``MIN_RETURNS`` common returns or a flat benchmark.
    """
    days = sorted(set(closes) & set(benchmark))
    if len(days) <= MIN_RETURNS:
        return None
    a = np.array([closes[d] for d in days], dtype=float)
    b = np.array([benchmark[d] for d in days], dtype=float)
    if np.any(a <= 0) or np.any(b <= 0):
        return None
    ra, rb = np.diff(np.log(a)), np.diff(np.log(b))
    var = float(np.var(rb, ddof=1))
    if not var > 0:
        return None
    beta = float(np.cov(ra, rb, ddof=1)[0, 1] / var)
    return beta if math.isfinite(beta) else None
