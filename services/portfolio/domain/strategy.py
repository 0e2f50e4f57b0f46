"""Naming what an opening order built: "short put", "put credit spread", "iron condor", ..."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

__all__ = ["Leg", "classify", "group_name"]


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg an order opened.

    Attributes:
        quantity: Signed quantity opened (contracts or shares).
        is_option: Option or shares.
        is_call: For options.
        strike: For options.
        expiration: For options, the expiration date.
    """

    quantity: float
    is_option: bool
    is_call: bool = False
    strike: float = 0.0
    expiration: date | None = None


def _single(leg: Leg) -> str:
    side = "long" if leg.quantity > 0 else "short"
    if not leg.is_option:
        return f"{side} stock"
    return f"{side} {'call' if leg.is_call else 'put'}"


def _two_options(a: Leg, b: Leg) -> str:
    if a.is_call == b.is_call:
        if (a.quantity > 0) == (b.quantity > 0):
            return "custom"
        short, long_ = (a, b) if a.quantity < 0 else (b, a)
        if a.expiration != b.expiration:
            return "calendar spread" if a.strike == b.strike else "diagonal spread"
        if a.strike == b.strike:
            return "custom"
        if short.is_call:
            return "call credit spread" if short.strike < long_.strike else "call debit spread"
        return "put credit spread" if short.strike > long_.strike else "put debit spread"
    if (a.quantity > 0) != (b.quantity > 0) or a.expiration != b.expiration:
        return "custom"
    side = "long" if a.quantity > 0 else "short"
    return f"{side} {'straddle' if a.strike == b.strike else 'strangle'}"


def _four_options(legs: list[Leg]) -> str:
    calls = sorted((leg for leg in legs if leg.is_call), key=lambda leg: leg.strike)
    puts = sorted((leg for leg in legs if not leg.is_call), key=lambda leg: leg.strike)
    if len(calls) != 2 or len(puts) != 2 or len({leg.expiration for leg in legs}) != 1:
        return "custom"
    short_put, long_put = (puts[1], puts[0]) if puts[1].quantity < 0 else (puts[0], puts[1])
    short_call, long_call = (calls[0], calls[1]) if calls[0].quantity < 0 else (calls[1], calls[0])
    if not (short_put.quantity < 0 < long_put.quantity and short_call.quantity < 0 < long_call.quantity):
        return "custom"
    if long_put.strike < short_put.strike <= short_call.strike < long_call.strike:
        return "iron butterfly" if short_put.strike == short_call.strike else "iron condor"
    return "custom"


def classify(legs: list[Leg]) -> str:
    """Name the strategy of the legs one order opened on one underlying.

    Args:
        legs: The legs, in any order (legs of one symbol merged).

    Returns:
        "long stock", "short put", "put credit spread", "short strangle", "iron condor", "covered call",
        "collar", "butterfly", ... or "custom" when nothing fits.
    """
    if not legs:
        return "custom"
    if len(legs) == 1:
        return _single(legs[0])
    stock = [leg for leg in legs if not leg.is_option]
    options = [leg for leg in legs if leg.is_option]
    if len(stock) == 1 and len(options) == 1:
        s, o = stock[0], options[0]
        if s.quantity > 0 and o.is_call and o.quantity < 0:
            return "covered call"
        if s.quantity > 0 and not o.is_call and o.quantity > 0:
            return "protective put"
        if s.quantity < 0 and not o.is_call and o.quantity < 0:
            return "covered put"
        return "custom"
    if len(stock) == 1 and len(options) == 2 and stock[0].quantity > 0:
        call = next((o for o in options if o.is_call), None)
        put = next((o for o in options if not o.is_call), None)
        if call is not None and put is not None and call.quantity < 0 < put.quantity:
            return "collar"
        return "custom"
    if stock:
        return "custom"
    if len(options) == 2:
        return _two_options(options[0], options[1])
    if len(options) == 3 and len({o.is_call for o in options}) == 1 and len({o.expiration for o in options}) == 1:
        low, mid, high = sorted(options, key=lambda o: o.strike)
        if (low.quantity > 0) == (high.quantity > 0) and (mid.quantity > 0) != (low.quantity > 0):
            if abs(mid.quantity) == abs(low.quantity) + abs(high.quantity) and mid.strike - low.strike == high.strike - mid.strike:
                return "butterfly"
        return "custom"
    if len(options) == 4:
        return _four_options(options)
    return "custom"


def group_name(underlying: str, legs: list[Leg], strategy: str) -> str:
    """The strategy group name of an order's legs: "SPY 2024-04-19 iron condor"; "" for plain shares."""
    expirations = sorted(leg.expiration for leg in legs if leg.expiration is not None)
    if not expirations:
        return ""
    return f"{underlying} {expirations[0].isoformat()} {strategy}"
