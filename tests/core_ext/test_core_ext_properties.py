"""Property tests (hypothesis): parity, IV round trip, signs and bounds of the Greeks, American >= European."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core_ext import Status, greeks, implied_volatility_array

# Deterministic (derandomized) so that CI runs are reproducible; example counts keep the file to seconds.
EUROPEAN = settings(max_examples=400, deadline=None, derandomize=True)
AMERICAN = settings(max_examples=150, deadline=None, derandomize=True)
EPS = 2.220446049250313e-16

kinds = st.sampled_from(["call", "put"])
styles = st.sampled_from(["european", "american"])
spots = st.floats(1.0, 1000.0)
moneyness = st.floats(0.2, 5.0)
expiries = st.floats(1 / 8760, 5.0)
vols = st.floats(0.01, 4.0)
rates = st.floats(0.0, 0.10)
any_rates = st.floats(-0.01, 0.10)
yields = st.floats(0.0, 0.08)


@EUROPEAN
@given(spot=spots, m=moneyness, t=expiries, vol=vols, r=any_rates, q=yields)
def test_put_call_parity(spot: float, m: float, t: float, vol: float, r: float, q: float) -> None:
    strike = spot * m
    call = greeks("call", spot, strike, t, vol, r, q)
    put = greeks("put", spot, strike, t, vol, r, q)
    forward_value = spot * math.exp(-q * t) - strike * math.exp(-r * t)
    assert abs((call.price - put.price) - forward_value) <= 1e-12 * (spot + strike)
    # Parity holds for the derivatives in spot and vol too.
    assert abs((call.delta - put.delta) - math.exp(-q * t)) <= 1e-12
    assert abs(call.gamma - put.gamma) <= 1e-12 * max(call.gamma, 1.0 / spot)
    assert abs(call.vega - put.vega) <= 1e-12 * max(call.vega, spot)


@EUROPEAN
@given(kind=kinds, spot=spots, m=st.floats(0.5, 2.0), t=st.floats(1 / 365, 5.0), vol=st.floats(0.05, 2.0),
       r=any_rates, q=yields)
def test_implied_volatility_inverts_price_european(kind: str, spot: float, m: float, t: float, vol: float,
                                                   r: float, q: float) -> None:
    g = greeks(kind, spot, spot * m, t, vol, r, q)  # type: ignore[arg-type]
    vega = g.vega * 100
    attainable = 4 * EPS * g.price / vega if vega > 0 else math.inf
    assume(g.price > 1e-300 and attainable <= 1e-10 * vol)  # the price pins the vol down
    vols, status = implied_volatility_array(kind == "call", g.price, spot, spot * m, t, r, q)
    assert status[0] == Status.OK
    # g.price is the double-precision model price: its own rounding (not 40-digit truth) bounds the answer.
    assert abs(vols[0] - vol) <= max(1e-10 * vol, attainable)


@AMERICAN
@given(kind=kinds, m=st.floats(0.5, 2.0), t=st.floats(1 / 365, 3.0), vol=st.floats(0.05, 2.0), r=rates, q=yields)
def test_implied_volatility_inverts_price_american(kind: str, m: float, t: float, vol: float, r: float,
                                                   q: float) -> None:
    spot, strike = 100.0, 100.0 * m
    g = greeks(kind, spot, strike, t, vol, r, q, style="american")  # type: ignore[arg-type]
    sign = 1.0 if kind == "call" else -1.0
    lower = max(sign * (spot - strike), sign * (spot * math.exp(-q * t) - strike * math.exp(-r * t)), 0.0)
    vega = g.vega * 100
    attainable = 8 * EPS * (g.price + spot + strike) / vega if vega > 0 else math.inf
    assume(g.price - lower > 1e-8 and attainable <= 1e-10 * vol)
    vols, status = implied_volatility_array(kind == "call", g.price, spot, strike, t, r, q, style="american")
    assert status[0] == Status.OK
    assert abs(vols[0] - vol) <= max(1e-10 * vol, attainable)


@AMERICAN
@given(kind=kinds, style=styles, spot=spots, m=moneyness, t=expiries, vol=vols, r=rates, q=yields)
def test_vega_and_gamma_are_non_negative(kind: str, style: str, spot: float, m: float, t: float, vol: float,
                                         r: float, q: float) -> None:
    g = greeks(kind, spot, spot * m, t, vol, r, q, style=style)  # type: ignore[arg-type]
    # Rounding can leave a value that is exactly 0 in theory a few ulps below it.
    assert g.vega >= -1e-12 * spot
    assert g.gamma >= -1e-12 / spot


@AMERICAN
@given(kind=kinds, spot=spots, m=moneyness, t=expiries, vol=vols, r=rates, q=st.floats(-0.02, 0.08))
def test_american_is_worth_at_least_european(kind: str, spot: float, m: float, t: float, vol: float, r: float,
                                             q: float) -> None:
    am = greeks(kind, spot, spot * m, t, vol, r, q, style="american")  # type: ignore[arg-type]
    eu = greeks(kind, spot, spot * m, t, vol, r, q)  # type: ignore[arg-type]
    assert am.price >= eu.price - 1e-12 * spot
    assert am.price >= max((1 if kind == "call" else -1) * (1 - m) * spot, 0.0) - 1e-12 * spot


@AMERICAN
@given(style=styles, spot=spots, m=moneyness, t=expiries, vol=vols, r=rates, q=yields)
def test_call_delta_in_unit_interval_and_put_delta_in_minus_one_zero(style: str, spot: float, m: float, t: float,
                                                                     vol: float, r: float, q: float) -> None:
    call = greeks("call", spot, spot * m, t, vol, r, q, style=style)  # type: ignore[arg-type]
    put = greeks("put", spot, spot * m, t, vol, r, q, style=style)  # type: ignore[arg-type]
    assert -1e-15 <= call.delta <= 1.0 + 1e-15
    assert -1.0 - 1e-15 <= put.delta <= 1e-15
