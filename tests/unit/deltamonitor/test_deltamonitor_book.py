"""The re-pricing book: metrics, adaptive bands, vectorised evaluation, forecasts, staleness."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.domain import analytics
from services.deltamonitor.domain.model import (
    AccountTarget,
    AdaptiveBand,
    AlertKind,
    BandMethod,
    Metric,
    PositionTarget,
    StaticBand,
    UnderlyingTarget,
    WatchState,
)
from tests.unit.deltamonitor.conftest import NOW, OPTION, STREAMER, book, call_position, shares, watch


class CountingPricer(NumpyBlackScholesPricer):
    """Counts pricer calls and elements."""

    def __init__(self) -> None:
        self.calls = 0
        self.elements = 0

    def greeks(self, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.elements += len(kwargs["spot"])
        return super().greeks(**kwargs)


def _reference_delta(price: float) -> float:
    g = NumpyBlackScholesPricer().greeks(
        is_call=np.array([True]), spot=np.array([price]), strike=np.array([480.0]),
        expiry_years=np.array([(call_position().expiration_time - NOW).total_seconds() / (365 * 86400)]),  # type: ignore[operator]
        volatility=np.array([0.15]), rate=np.array([0.045]), dividend_yield=np.array([0.0]), american=True,
    )
    return float(g.delta[0])


def test_share_dollar_and_beta_weighted_metrics() -> None:
    positions = [call_position(), shares(-200)]
    watches = [
        watch(StaticBand(-1e9, 1e9), watch_id="sh"),
        watch(StaticBand(-1e9, 1e9), watch_id="usd", metric=Metric.DOLLARS),
        watch(StaticBand(-1e9, 1e9), watch_id="beta", metric=Metric.BETA_WEIGHTED, target=UnderlyingTarget("SPY"), benchmark="QQQ"),
    ]
    b = book(watches, positions)
    b.set_betas({"QQQ": 1.0})
    b.on_quote("QQQ", 400.0, NOW)
    b.on_quote("SPY", 470.0, NOW)
    expected = 1000 * _reference_delta(470.0) - 200
    assert b.live_state("sh").current_delta == pytest.approx(expected, rel=1e-12)  # type: ignore[union-attr]
    assert b.live_state("usd").current_delta == pytest.approx(expected * 470.0, rel=1e-12)  # type: ignore[union-attr]
    # SPY's beta to SPY is 1; in QQQ shares: beta x S x delta / P_QQQ.
    assert b.live_state("beta").current_delta == pytest.approx(expected * 470.0 / 400.0, rel=1e-12)  # type: ignore[union-attr]


def test_benchmark_tick_re_evaluates_beta_weighted_watches() -> None:
    b = book([watch(StaticBand(-1e9, 1e9), metric=Metric.BETA_WEIGHTED, benchmark="QQQ")], [call_position(), shares(-200)])
    b.on_quote("QQQ", 400.0, NOW)
    b.on_quote("SPY", 470.0, NOW)
    before = b.live_state("w1").current_delta  # type: ignore[union-attr]
    b.on_quote("QQQ", 500.0, NOW)
    assert b.live_state("w1").current_delta == pytest.approx(before * 400.0 / 500.0)  # type: ignore[union-attr]


def test_unknown_beta_leaves_beta_watch_unevaluated() -> None:
    b = book([watch(StaticBand(-1e9, 1e9), metric=Metric.BETA_WEIGHTED, target=UnderlyingTarget("AAPL"))],
             [shares(100, symbol="AAPL")])
    b.on_quote("SPY", 470.0, NOW)
    b.on_quote("AAPL", 190.0, NOW)
    assert b.live_state("w1").state is WatchState.UNEVALUATED  # type: ignore[union-attr]
    b.set_betas({"AAPL": 1.2})
    b.on_quote("AAPL", 190.0, NOW)
    assert b.live_state("w1").current_delta == pytest.approx(1.2 * 190.0 * 100 / 470.0)  # type: ignore[union-attr]


def test_expected_move_band_follows_gamma_price_and_iv() -> None:
    band = AdaptiveBand(BandMethod.EXPECTED_MOVE, center=100.0, multiplier=2.0)
    b = book([watch(band)], [call_position(), shares(-200)])
    b.on_quote("SPY", 470.0, NOW)
    live = b.live_state("w1")
    gamma = b.g_gamma[0] * 1000
    half = 2.0 * abs(gamma * 470.0 * 0.15) * math.sqrt(1 / 365)
    assert live.band_lower == pytest.approx(100.0 - half) and live.band_upper == pytest.approx(100.0 + half)  # type: ignore[union-attr]


def test_adaptive_band_respects_min_and_max_half_width() -> None:
    tight = AdaptiveBand(BandMethod.EXPECTED_MOVE, center=0.0, multiplier=1e-9, min_half_width=50.0)
    wide = AdaptiveBand(BandMethod.EXPECTED_MOVE, center=0.0, multiplier=1e9, max_half_width=75.0)
    b = book([watch(tight, watch_id="t"), watch(wide, watch_id="w")], [call_position(), shares(-200)])
    b.on_quote("SPY", 470.0, NOW)
    assert b.live_state("t").band_upper == pytest.approx(50.0)  # type: ignore[union-attr]
    assert b.live_state("w").band_upper == pytest.approx(75.0)  # type: ignore[union-attr]


def test_whalley_wilmott_band_matches_its_formula() -> None:
    band = AdaptiveBand(BandMethod.WHALLEY_WILMOTT, center=0.0, multiplier=1.0, transaction_cost_ratio=0.001, risk_aversion=0.01)
    b = book([watch(band, target=PositionTarget(OPTION))], [call_position()])
    b.on_quote("SPY", 470.0, NOW)
    gamma = b.g_gamma[0] * 1000
    years = b.p_years[0]
    expected = (1.5 * math.exp(-0.045 * years) * 0.001 * 470.0 * gamma**2 / 0.01) ** (1 / 3)
    assert b.live_state("w1").band_upper == pytest.approx(expected)  # type: ignore[union-attr]


def test_one_pricer_call_per_tick_whatever_the_number_of_watches() -> None:
    pricer = CountingPricer()
    from services.deltamonitor.domain.book import Book, BookSettings

    positions = [call_position(quantity=1 + i % 7, account=f"A{i}", strike=440.0 + i % 80) for i in range(300)]
    watches = [watch(StaticBand(-1e6, 1e6), watch_id=f"w{i}", account=f"A{i}") for i in range(300)]
    b = Book(watches, positions, pricer=pricer, settings=BookSettings())
    b.on_greeks(STREAMER, 0.2, NOW)
    evaluation = b.on_quote("SPY", 470.0, NOW)
    assert pricer.calls == 1 and pricer.elements == 300
    assert evaluation.evaluated == 300


def test_vectorised_sums_equal_a_per_watch_loop() -> None:
    rng = np.random.default_rng(3)
    positions = []
    for account in range(20):
        for k in range(5):
            positions.append(call_position(quantity=float(rng.integers(-10, 10) or 1), account=f"A{account}",
                                           strike=430.0 + 10 * k, symbol=f"SPY   240419C00{430 + 10 * k}000", streamer=f".S{k}"))
        positions.append(shares(float(rng.integers(-300, 300)), account=f"A{account}"))
    watches = [watch(StaticBand(-1e9, 1e9), watch_id=f"u{a}", account=f"A{a}") for a in range(20)]
    watches += [watch(StaticBand(-1e9, 1e9), watch_id=f"p{a}", account=f"A{a}", target=PositionTarget("SPY   240419C00450000"))
                for a in range(20)]
    watches += [watch(StaticBand(-1e12, 1e12), watch_id=f"a{a}", account=f"A{a}", target=AccountTarget(), metric=Metric.DOLLARS)
                for a in range(20)]
    b = book(watches, positions)
    for k in range(5):
        b.on_greeks(f".S{k}", 0.12 + 0.02 * k, NOW)
    b.on_quote("SPY", 470.0, NOW)
    pricer = NumpyBlackScholesPricer()
    for w in watches:
        total = 0.0
        for p in positions:
            if p.account_number != w.account_number:
                continue
            if isinstance(w.target, PositionTarget) and p.symbol != w.target.symbol:
                continue
            if p.is_option:
                k = int(p.streamer_symbol[2:])
                g = pricer.greeks(is_call=np.array([True]), spot=np.array([470.0]), strike=np.array([p.strike]),
                                  expiry_years=np.array([(p.expiration_time - NOW).total_seconds() / (365 * 86400)]),  # type: ignore[operator]
                                  volatility=np.array([0.12 + 0.02 * k]), rate=np.array([0.045]),
                                  dividend_yield=np.array([0.0]), american=True)
                total += float(g.delta[0]) * p.quantity * 100
            else:
                total += p.quantity
        if w.metric is Metric.DOLLARS:
            total *= 470.0
        assert b.live_state(w.watch_id).current_delta == pytest.approx(total, rel=1e-9, abs=1e-6)  # type: ignore[union-attr]


def test_time_to_breach_is_forecast_for_armed_watches_only() -> None:
    b = book([watch()], [call_position(), shares(-200)])
    b.on_quote("SPY", 465.0, NOW)
    live = b.live_state("w1")
    assert live.state is WatchState.ARMED and live.time_to_breach is not None and live.time_to_breach > timedelta(0)  # type: ignore[union-attr]
    b.on_quote("SPY", 480.0, NOW)
    assert b.live_state("w1").time_to_breach is None  # type: ignore[union-attr]


def test_time_to_breach_formula() -> None:
    # Pure drift: distance 10 at 2/day -> 5 days; pure diffusion: (10/5)^2 = 4 days; nearer bound wins.
    days = analytics.time_to_breach_days(
        np.array([0.0, 0.0, 0.0]), np.array([-100.0, -100.0, -10.0]), np.array([10.0, 10.0, 100.0]),
        np.array([2.0, 0.0, 0.0]), np.array([0.0, 5.0, 5.0]), np.zeros(3), 0.0, 30.0,
    )
    assert days.tolist() == pytest.approx([5.0, 4.0, 4.0])


def test_stale_alert_only_while_the_market_is_open_and_once() -> None:
    b = book([watch(stale_after=timedelta(minutes=2))], [call_position(), shares(-200)])
    b.on_quote("SPY", 470.0, NOW)
    later = NOW + timedelta(minutes=5)
    assert b.sweep_stale(later, market_open=False) == []
    alerts = b.sweep_stale(later, market_open=True)
    assert [a.kind for a in alerts] == [AlertKind.STALE_DATA]
    assert b.sweep_stale(later + timedelta(minutes=1), market_open=True) == []
    b.on_quote("SPY", 470.5, later + timedelta(minutes=2))
    b.on_greeks(STREAMER, 0.15, later + timedelta(minutes=2))
    assert b.sweep_stale(later + timedelta(minutes=3), market_open=True) == []


def test_live_state_survives_a_rebuild() -> None:
    from services.deltamonitor.domain.book import Book

    b = book([watch()], [call_position(), shares(-200)])
    b.on_quote("SPY", 480.0, NOW)
    rebuilt = Book(b.watches, b.positions, pricer=b.pricer, settings=b.settings, market=b.market, live=b.export_live())
    assert rebuilt.live_state("w1").state is WatchState.BREACHED  # type: ignore[union-attr]
    assert rebuilt.on_quote("SPY", 481.0, NOW).alerts == []


def test_machine_keys_are_the_state_machine_values_of_the_live_states() -> None:
    # What the monitor's flush compares with what it saved: a breached watch (with its alert's time), a stale one
    # and one with nothing to evaluate.
    b = book([watch(watch_id="breached"), watch(StaticBand(-1e9, 1e9), watch_id="stale", stale_after=timedelta(minutes=2)),
              watch(watch_id="none", target=UnderlyingTarget("QQQ"))], [call_position(), shares(-200)])
    b.on_quote("SPY", 480.0, NOW)
    b.sweep_stale(NOW + timedelta(minutes=5), market_open=True)
    keys = b.machine_keys()
    for w in b.watches:
        live = b.live_state(w.watch_id)
        assert live is not None
        last = live.last_alert_time.timestamp() if live.last_alert_time else -math.inf
        assert keys[w.watch_id] == (int(live.state), last, live.stale)
    assert keys["breached"][:2] == (WatchState.BREACHED, NOW.timestamp())
    assert keys["stale"][2] is True
    assert keys["none"][1:] == (-math.inf, False)
    # Named watches: only those the book holds.
    assert b.machine_keys(["stale", "not-held", "breached"]) == {"stale": keys["stale"], "breached": keys["breached"]}
