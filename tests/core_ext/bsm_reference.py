"""Slow, obvious high-precision references (mpmath) for the core_ext accuracy tests."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath as mp

# Working precision of every reference value. Derivatives are taken by central differences at this
# precision, so their truncation and rounding errors sit far below the 1e-10 the tests ask for.
DPS = 40

# A float or an mpmath.mpf (mpmath ships no type information).
Number = Any


@dataclass(frozen=True)
class RefGreeks:
    """Reference price and Greeks, in the units core_ext documents (see core_ext.Greeks)."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float
    vanna: float
    charm: float


def gbsm_price(kind: str, spot: Number, strike: Number, t: Number, vol: Number, r: Number, q: Number) -> mp.mpf:
    """Generalized Black-Scholes-Merton price with cost of carry b = r - q (Haug, chapter 1)."""
    s, k, t, v, r, q = (mp.mpf(a) for a in (spot, strike, t, vol, r, q))
    b = r - q
    sq = mp.sqrt(t)
    d1 = (mp.log(s / k) + (b + v * v / 2) * t) / (v * sq)
    d2 = d1 - v * sq
    if kind == "call":
        return s * mp.exp((b - r) * t) * mp.ncdf(d1) - k * mp.exp(-r * t) * mp.ncdf(d2)
    return k * mp.exp(-r * t) * mp.ncdf(-d2) - s * mp.exp((b - r) * t) * mp.ncdf(-d1)


def bivariate_normal_cdf(a: mp.mpf, b: mp.mpf, rho: mp.mpf) -> mp.mpf:
    """P(X <= a, Y <= b) for a standard bivariate normal with correlation rho.

    Uses dM/drho = bivariate density (Plackett's identity), integrated from rho = 0 where M = N(a)N(b).
    """

    def density(r: mp.mpf) -> mp.mpf:
        one_minus = 1 - r * r
        return mp.exp(-(a * a - 2 * r * a * b + b * b) / (2 * one_minus)) / (2 * mp.pi * mp.sqrt(one_minus))

    return mp.ncdf(a) * mp.ncdf(b) + mp.quad(density, [0, rho])


def _bs2002_phi(s, t, gamma, h, i, r, b, v):  # type: ignore[no-untyped-def]
    lam = (-r + gamma * b + gamma * (gamma - 1) * v * v / 2) * t
    d = -(mp.log(s / h) + (b + (gamma - mp.mpf(1) / 2) * v * v) * t) / (v * mp.sqrt(t))
    kappa = 2 * b / (v * v) + 2 * gamma - 1
    return (
        mp.exp(lam)
        * s**gamma
        * (mp.ncdf(d) - (i / s) ** kappa * mp.ncdf(d - 2 * mp.log(i / s) / (v * mp.sqrt(t))))
    )


def _bs2002_psi(s, t2, gamma, h, i2, i1, t1, r, b, v):  # type: ignore[no-untyped-def]
    mu = (b + (gamma - mp.mpf(1) / 2) * v * v)
    st1 = v * mp.sqrt(t1)
    st2 = v * mp.sqrt(t2)
    e1 = (mp.log(s / i1) + mu * t1) / st1
    e2 = (mp.log(i2 * i2 / (s * i1)) + mu * t1) / st1
    e3 = (mp.log(s / i1) - mu * t1) / st1
    e4 = (mp.log(i2 * i2 / (s * i1)) - mu * t1) / st1
    f1 = (mp.log(s / h) + mu * t2) / st2
    f2 = (mp.log(i2 * i2 / (s * h)) + mu * t2) / st2
    f3 = (mp.log(i1 * i1 / (s * h)) + mu * t2) / st2
    f4 = (mp.log(s * i1 * i1 / (h * i2 * i2)) + mu * t2) / st2
    rho = mp.sqrt(t1 / t2)
    lam = -r + gamma * b + gamma * (gamma - 1) * v * v / 2
    kappa = 2 * b / (v * v) + 2 * gamma - 1
    m = bivariate_normal_cdf
    return (
        mp.exp(lam * t2)
        * s**gamma
        * (
            m(-e1, -f1, rho)
            - (i2 / s) ** kappa * m(-e2, -f2, rho)
            - (i1 / s) ** kappa * m(-e3, -f3, -rho)
            + (i1 / i2) ** kappa * m(-e4, -f4, -rho)
        )
    )


def _bs2002_call(s, x, t, r, b, v):  # type: ignore[no-untyped-def]
    if b >= r:
        return None
    t1 = (mp.sqrt(5) - 1) / 2 * t
    beta = (mp.mpf(1) / 2 - b / (v * v)) + mp.sqrt((b / (v * v) - mp.mpf(1) / 2) ** 2 + 2 * r / (v * v))
    b_inf = beta / (beta - 1) * x
    b_0 = max(x, r / (r - b) * x)
    ht1 = -(b * t1 + 2 * v * mp.sqrt(t1)) * x * x / ((b_inf - b_0) * b_0)
    ht2 = -(b * t + 2 * v * mp.sqrt(t)) * x * x / ((b_inf - b_0) * b_0)
    i1 = b_0 + (b_inf - b_0) * (1 - mp.exp(ht1))
    i2 = b_0 + (b_inf - b_0) * (1 - mp.exp(ht2))
    alpha1 = (i1 - x) * i1 ** (-beta)
    alpha2 = (i2 - x) * i2 ** (-beta)
    if s >= i2:
        return s - x
    phi, psi = _bs2002_phi, _bs2002_psi
    return (
        alpha2 * s**beta
        - alpha2 * phi(s, t1, beta, i2, i2, r, b, v)
        + phi(s, t1, 1, i2, i2, r, b, v)
        - phi(s, t1, 1, i1, i2, r, b, v)
        - x * phi(s, t1, 0, i2, i2, r, b, v)
        + x * phi(s, t1, 0, i1, i2, r, b, v)
        + alpha1 * phi(s, t1, beta, i1, i2, r, b, v)
        - alpha1 * psi(s, t, beta, i1, i2, i1, t1, r, b, v)
        + psi(s, t, 1, i1, i2, i1, t1, r, b, v)
        - psi(s, t, 1, x, i2, i1, t1, r, b, v)
        - x * psi(s, t, 0, i1, i2, i1, t1, r, b, v)
        + x * psi(s, t, 0, x, i2, i1, t1, r, b, v)
    )


def bs2002_price(kind: str, spot: Number, strike: Number, t: Number, vol: Number, r: Number, q: Number) -> mp.mpf:
    """Bjerksund-Stensland (2002) formula, written from Haug (2007), section 3.1.4.

    The put uses the put-call transformation P(S, X, T, r, b, v) = C(X, S, T, r - b, -b, v); where early
    exercise is never optimal (b >= r for the call) the value is the European one.
    """
    s, k, t, v, r, q = (mp.mpf(a) for a in (spot, strike, t, vol, r, q))
    b = r - q
    if kind == "call":
        value = _bs2002_call(s, k, t, r, b, v)
    else:
        value = _bs2002_call(k, s, t, r - b, -b, v)
    if value is None:
        return gbsm_price(kind, s, k, t, v, r, q)
    return value


def american_price(kind: str, spot: Number, strike: Number, t: Number, vol: Number, r: Number, q: Number) -> mp.mpf:
    """The American value core_ext documents: max(2002 formula, European value, exercise value)."""
    s, k = mp.mpf(spot), mp.mpf(strike)
    exercise = (s - k) if kind == "call" else (k - s)
    return max(
        bs2002_price(kind, spot, strike, t, vol, r, q), gbsm_price(kind, spot, strike, t, vol, r, q), exercise
    )


PriceFn = Callable[..., Any]


def reference_greeks(
    price_fn: PriceFn, kind: str, spot: float, strike: float, t: float, vol: float, r: float, q: float
) -> RefGreeks:
    """Price and Greeks of price_fn by central differences at DPS digits, in core_ext's units.

    Spot steps scale with S sigma sqrt(T) (the distance over which the price bends), time steps with T and
    vol steps with sigma: relative steps of 1e-10 for first and 1e-8 for second and mixed derivatives give
    truncation errors near 1e-20 and 1e-16 and rounding errors far below that at DPS digits.
    """
    with mp.workdps(DPS):
        s0, k0, t0, v0, r0, q0 = (mp.mpf(a) for a in (spot, strike, t, vol, r, q))

        def f(s: mp.mpf = s0, tt: mp.mpf = t0, v: mp.mpf = v0, rr: mp.mpf = r0) -> mp.mpf:
            return price_fn(kind, s, k0, tt, v, rr, q0)

        spread = s0 * v0 * mp.sqrt(t0)
        hs1 = spread * mp.mpf("1e-10")
        hs2 = spread * mp.mpf("1e-8")
        hv = v0 * mp.mpf("1e-10")
        ht = t0 * mp.mpf("1e-10")
        hr = mp.mpf("1e-10") / (1 + t0)
        p0 = f()
        delta = (f(s=s0 + hs1) - f(s=s0 - hs1)) / (2 * hs1)
        gamma = (f(s=s0 + hs2) - 2 * p0 + f(s=s0 - hs2)) / (hs2 * hs2)
        vega = (f(v=v0 + hv) - f(v=v0 - hv)) / (2 * hv)
        dv_dt = (f(tt=t0 + ht) - f(tt=t0 - ht)) / (2 * ht)
        rho = (f(rr=r0 + hr) - f(rr=r0 - hr)) / (2 * hr)

        def delta_at(v: mp.mpf = v0, tt: mp.mpf = t0) -> mp.mpf:
            return (f(s=s0 + hs2, v=v, tt=tt) - f(s=s0 - hs2, v=v, tt=tt)) / (2 * hs2)

        hv2 = v0 * mp.mpf("1e-8")
        ht2 = t0 * mp.mpf("1e-8")
        vanna = (delta_at(v=v0 + hv2) - delta_at(v=v0 - hv2)) / (2 * hv2)
        ddelta_dt = (delta_at(tt=t0 + ht2) - delta_at(tt=t0 - ht2)) / (2 * ht2)
        return RefGreeks(
            price=float(p0),
            delta=float(delta),
            gamma=float(gamma),
            vega=float(vega / 100),
            theta=float(-dv_dt / 365),
            rho=float(rho / 100),
            vanna=float(vanna / 100),
            charm=float(-ddelta_dt / 365),
        )


def reference_price(price_fn: PriceFn, kind: str, spot: float, strike: float, t: float, vol: float, r: float, q: float) -> float:
    """price_fn at DPS digits, rounded to the nearest double."""
    with mp.workdps(DPS):
        return float(price_fn(kind, spot, strike, t, vol, r, q))


def attainable_vol_error(kind: str, spot: float, strike: float, t: float, vol: float, r: float, q: float) -> float:
    """The absolute vol error that rounding the price to a double alone causes: ulp(price) / vega (per 1.00 vol)."""
    with mp.workdps(DPS):
        s, k, tt, v, rr, qq = (mp.mpf(a) for a in (spot, strike, t, vol, r, q))
        d1 = (mp.log(s / k) + (rr - qq + v * v / 2) * tt) / (v * mp.sqrt(tt))
        vega = s * mp.exp(-qq * tt) * mp.npdf(d1) * mp.sqrt(tt)
        price = gbsm_price(kind, s, k, tt, v, rr, qq)
        if vega == 0:
            return math.inf
        # An ITM price also carries the rounding of its intrinsic part: count both legs of the formula.
        legs = s * mp.exp(-qq * tt) * mp.ncdf(d1) + k * mp.exp(-rr * tt) * mp.ncdf(d1 - v * mp.sqrt(tt))
        return float(2.220446049250313e-16 * max(price, legs) / vega)
