"""Watch validation, the NumPy pricer, the market calendar, the tick parser and access-token checks."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.platform.identity import AuthenticationRequired, JwtAuthenticator, StaticKeySource
from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.adapters.ticks import parse_tick, parse_ticks
from services.deltamonitor.domain.errors import BandInvalid, FieldInvalid, FieldRequired, UpdateMaskInvalid
from services.deltamonitor.domain.model import AccountTarget, Metric, UnderlyingTarget
from services.deltamonitor.domain.validation import AdaptiveBandDraft, WatchDraft, apply_update, new_watch
from services.platform.clock import FakeClock
from tests.fakes.access_tokens import TokenIssuer
from tests.unit.deltamonitor.conftest import NOW

GOOD = WatchDraft(account_number="5WW1", target=UnderlyingTarget("spy"), metric=1, static_band=(-100.0, 300.0))


def _new(draft: WatchDraft):  # type: ignore[no-untyped-def]
    return new_watch(draft, watch_id="w", user_id="u", now=NOW)


def test_valid_draft_becomes_a_watch() -> None:
    w = _new(GOOD)
    assert w.target == UnderlyingTarget("SPY") and w.metric is Metric.SHARES and w.cooldown == timedelta(0)


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"account_number": ""}, FieldRequired, "watch.account_number"),
        ({"target": None}, FieldRequired, "watch.target"),
        ({"metric": 0}, FieldRequired, "watch.metric"),
        ({"static_band": None}, FieldRequired, "watch.band"),
        ({"static_band": (300.0, -100.0)}, BandInvalid, "watch.static_band"),
        ({"static_band": (math.nan, 1.0)}, BandInvalid, "watch.static_band"),
        ({"hysteresis_ratio": 1.0}, FieldInvalid, "watch.hysteresis_ratio"),
        ({"cooldown": timedelta(seconds=-1)}, FieldInvalid, "watch.cooldown"),
        ({"target": AccountTarget()}, FieldInvalid, "watch.metric"),
        ({"static_band": None, "adaptive_band": AdaptiveBandDraft(1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)}, BandInvalid,
         "watch.adaptive_band.multiplier"),
        ({"static_band": None, "adaptive_band": AdaptiveBandDraft(1, 0.0, 1.0, 10.0, 5.0, 0.0, 0.0)}, BandInvalid,
         "watch.adaptive_band"),
        ({"static_band": None, "adaptive_band": AdaptiveBandDraft(0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)}, FieldRequired,
         "watch.adaptive_band.method"),
        ({"static_band": None, "adaptive_band": AdaptiveBandDraft(2, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}, BandInvalid,
         "watch.adaptive_band.transaction_cost_ratio"),
    ],
)
def test_bad_drafts_name_the_field(changes: dict, error: type, field: str) -> None:  # type: ignore[type-arg]
    draft = WatchDraft(**{**{f: getattr(GOOD, f) for f in GOOD.__slots__}, **changes})
    with pytest.raises(error) as raised:
        _new(draft)
    assert raised.value.field_violations[0].field == field


def test_update_mask_rejects_immutable_and_output_only_paths() -> None:
    w = _new(GOOD)
    for path in ("account_number", "state", "nonsense"):
        with pytest.raises(UpdateMaskInvalid):
            apply_update(w, GOOD, [path], now=NOW)
    with pytest.raises(FieldRequired):
        apply_update(w, GOOD, [], now=NOW)


def test_band_change_starts_a_new_generation_but_a_rename_does_not() -> None:
    w = _new(GOOD)
    renamed = apply_update(w, WatchDraft(display_name="x"), ["display_name"], now=NOW)
    assert renamed.generation == w.generation and renamed.display_name == "x"
    moved = apply_update(w, WatchDraft(static_band=(-50.0, 50.0)), ["static_band"], now=NOW)
    assert moved.generation == w.generation + 1


def test_numpy_pricer_greeks_match_finite_differences() -> None:
    p = NumpyBlackScholesPricer()

    def price_delta(s: float, v: float, t: float) -> tuple[float, float]:
        g = p.greeks(is_call=np.array([False]), spot=np.array([s]), strike=np.array([100.0]), expiry_years=np.array([t]),
                     volatility=np.array([v]), rate=np.array([0.03]), dividend_yield=np.array([0.01]), american=False)
        return float(g.delta[0]), float(g.gamma[0])

    h = 1e-4
    g = p.greeks(is_call=np.array([False]), spot=np.array([95.0]), strike=np.array([100.0]), expiry_years=np.array([0.4]),
                 volatility=np.array([0.25]), rate=np.array([0.03]), dividend_yield=np.array([0.01]), american=False)
    assert g.gamma[0] == pytest.approx((price_delta(95 + h, .25, .4)[0] - price_delta(95 - h, .25, .4)[0]) / (2 * h), rel=1e-6)
    assert g.vanna[0] == pytest.approx((price_delta(95, .25 + h, .4)[0] - price_delta(95, .25 - h, .4)[0]) / (2 * h) * 0.01, rel=1e-5)
    assert g.charm[0] == pytest.approx(-(price_delta(95, .25, .4 + h)[0] - price_delta(95, .25, .4 - h)[0]) / (2 * h) / 365, rel=1e-5)


def test_numpy_pricer_marks_invalid_inputs_instead_of_returning_zero() -> None:
    g = NumpyBlackScholesPricer().greeks(is_call=np.array([True, True]), spot=np.array([100.0, 100.0]),
                                         strike=np.array([100.0, 100.0]), expiry_years=np.array([0.5, 0.5]),
                                         volatility=np.array([0.2, math.nan]), rate=np.zeros(2), dividend_yield=np.zeros(2),
                                         american=False)
    assert g.ok.tolist() == [True, False] and math.isnan(g.delta[1])


def test_calendar_knows_hours_weekends_holidays_and_early_closes() -> None:
    cal = ExchangeCalendar(around=datetime(2024, 6, 1, tzinfo=UTC))
    assert cal.is_open(datetime(2024, 1, 2, 14, 30, tzinfo=UTC))
    assert not cal.is_open(datetime(2024, 1, 2, 14, 29, tzinfo=UTC))
    assert not cal.is_open(datetime(2024, 1, 6, 16, 0, tzinfo=UTC))  # Saturday
    assert not cal.is_open(datetime(2024, 12, 25, 16, 0, tzinfo=UTC))  # Christmas
    assert not cal.is_open(datetime(2024, 11, 29, 18, 30, tzinfo=UTC))  # closes 13:00 New York


def test_tick_parser_reads_market_data_quote_and_greeks_events() -> None:
    quote = {"symbol": "SPY", "bid_price": 470.0, "ask_price": 470.2, "mark_price": 470.1, "last_price": None,
             "time_unix_nanos": 1_704_207_600_000_000_000}
    kind, symbol, value, when = parse_tick(json.dumps(quote).encode())  # type: ignore[misc]
    assert (kind, symbol, value) == ("quote", "SPY", 470.1) and when == datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    greeks = {"symbol": ".SPY240419C480", "broker_volatility": None, "model_volatility": 0.16, "time_unix_nanos": 1}
    assert parse_tick(json.dumps(greeks).encode())[:3] == ("greeks", ".SPY240419C480", 0.16)  # type: ignore[index]
    assert parse_tick(b"not json") is None
    assert parse_tick(json.dumps({**quote, "mark_price": None}).encode()) is None


def test_tick_parser_reads_market_data_batches_in_order() -> None:
    quotes = {"source": "simulator", "quotes": [
        {"symbol": "SPY", "mark_price": 470.1, "time_unix_nanos": 1},
        {"symbol": ".SPY240419C480", "mark_price": None, "last_price": None, "time_unix_nanos": 2},
        {"symbol": "QQQ", "mark_price": None, "last_price": 401.0, "time_unix_nanos": 3},
    ]}
    assert [(k, s, v) for k, s, v, _ in parse_ticks(json.dumps(quotes).encode())] == [("quote", "SPY", 470.1), ("quote", "QQQ", 401.0)]
    greeks = {"source": "dxfeed", "greeks": [{"symbol": ".A", "broker_volatility": 0.2, "model_volatility": 0.3, "time_unix_nanos": 1}]}
    assert [(k, s, v) for k, s, v, _ in parse_ticks(json.dumps(greeks).encode())] == [("greeks", ".A", 0.2)]


async def test_access_tokens_are_verified_against_the_published_keys() -> None:
    issuer = TokenIssuer()
    clock = FakeClock(datetime.now(UTC))
    auth = JwtAuthenticator(StaticKeySource(issuer.jwks), issuer=issuer.issuer, audience=issuer.audience, clock=clock)
    assert (await auth.authenticate(f"Bearer {issuer.token('u1')}")).user_id == "u1"
    bad = [
        None,
        "Basic abc",
        f"Bearer {issuer.token('u1', audience='other')}",
        f"Bearer {issuer.token('u1', typ='JWT')}",
        f"Bearer {TokenIssuer().token('u1')}",
        f"Bearer {issuer.token('u1', now=datetime.now(UTC) - timedelta(hours=2))}",
    ]
    for value in bad:
        with pytest.raises(AuthenticationRequired):
            await auth.authenticate(value)
