"""The time-to-breach forecast, computed when a watch is read: the same value as at the tick that evaluated it."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.domain import analytics
from services.deltamonitor.domain.book import Book
from services.deltamonitor.domain.model import Metric, PositionTarget, StaticBand, UnderlyingTarget, WatchState
from tests.unit.deltamonitor.conftest import NOW, OPTION, book, call_position, shares, watch

# 10 calls (1,000 shares of delta ~ 400 at 470) against a band whose nearer bound is days away.
BAND = StaticBand(250.0, 600.0)
STEP = timedelta(seconds=1)


def _days(b: Book, watch_id: str) -> float | None:
    live = b.live_state(watch_id)
    assert live is not None
    return None if live.time_to_breach is None else live.time_to_breach.total_seconds() / 86400.0


def test_forecast_equals_the_formula_on_the_position_greeks() -> None:
    b = book([watch(BAND, target=PositionTarget(OPTION))], [call_position()])
    b.on_quote("SPY", 470.0, NOW)
    years = (call_position().expiration_time - NOW).total_seconds() / (365 * 86400)  # type: ignore[operator]
    g = NumpyBlackScholesPricer().greeks(
        is_call=np.array([True]), spot=np.array([470.0]), strike=np.array([480.0]), expiry_years=np.array([years]),
        volatility=np.array([0.15]), rate=np.array([0.045]), dividend_yield=np.array([0.0]), american=True,
    )
    units = 1000.0
    move = g.gamma * units * 470.0 * 0.15
    expected = analytics.time_to_breach_days(
        g.delta * units, np.array([250.0]), np.array([600.0]), g.charm * units,
        analytics.expected_move_half_width(move), g.vanna * units, 1.0, 30.0,
    )
    assert math.isfinite(expected[0])
    assert _days(b, "w1") == pytest.approx(float(expected[0]), rel=1e-9)


def test_forecast_read_late_equals_forecast_read_at_each_tick() -> None:
    prices = [470.0, 471.5, 468.0, 474.0, 466.5, 470.5]
    watches = [watch(StaticBand(100.0, 450.0), watch_id="u"),
               watch(StaticBand(300.0, 650.0), watch_id="p", target=PositionTarget(OPTION)),
               watch(StaticBand(60000.0, 220000.0), watch_id="d", metric=Metric.DOLLARS)]
    eager = book(watches, [call_position(), shares(-200)])
    lazy = book(watches, [call_position(), shares(-200)])
    for i, price in enumerate(prices):
        eager.on_quote("SPY", price, NOW + i * STEP)
        lazy.on_quote("SPY", price, NOW + i * STEP)
        at_tick = {w.watch_id: _days(eager, w.watch_id) for w in watches}
    assert {w.watch_id: _days(lazy, w.watch_id) for w in watches} == at_tick
    assert all(days is not None for days in at_tick.values())


def test_unevaluable_tick_keeps_the_forecast_of_the_last_evaluation() -> None:
    w = watch(StaticBand(250.0, 500.0), metric=Metric.BETA_WEIGHTED, target=UnderlyingTarget("AAPL"))
    positions = [call_position(underlying="AAPL", strike=190.0), shares(100, symbol="AAPL")]
    eager = book([w], positions)
    lazy = book([w], positions)
    for b in (eager, lazy):
        b.on_quote("SPY", 470.0, NOW)
        b.set_betas({"AAPL": 1.2})
        b.on_quote("AAPL", 190.0, NOW)
    evaluated = _days(eager, "w1")
    assert evaluated is not None
    for b in (eager, lazy):
        b.set_betas({"AAPL": math.nan})
        assert b.on_quote("AAPL", 185.0, NOW + STEP).evaluated == 1
    assert _days(eager, "w1") == _days(lazy, "w1") == evaluated
    assert lazy.live_state("w1").state is WatchState.ARMED  # type: ignore[union-attr]


def test_forecast_is_none_while_breached_and_back_after_rearming() -> None:
    b = book([watch(BAND)], [call_position(), shares(-200)])
    b.on_quote("SPY", 470.0, NOW)
    b.on_quote("SPY", 400.0, NOW + STEP)
    # Back inside the band (delta ~ 279) but not by the hysteresis margin: still breached, so no forecast.
    b.on_quote("SPY", 470.0, NOW + 2 * STEP)
    assert b.live_state("w1").state is WatchState.BREACHED and _days(b, "w1") is None  # type: ignore[union-attr]
    b.on_quote("SPY", 472.0, NOW + 3 * STEP)
    fresh = book([watch(BAND)], [call_position(), shares(-200)])
    fresh.on_quote("SPY", 472.0, NOW + 3 * STEP)
    assert b.live_state("w1").state is WatchState.ARMED  # type: ignore[union-attr]
    assert _days(b, "w1") == _days(fresh, "w1") is not None


def test_restored_forecast_is_kept_until_the_next_evaluation() -> None:
    b = book([watch(BAND)], [call_position(), shares(-200)])
    b.on_quote("SPY", 470.0, NOW)
    before = _days(b, "w1")
    rebuilt = Book(b.watches, b.positions, pricer=b.pricer, settings=b.settings, market=b.market, live=b.export_live())
    assert before is not None and _days(rebuilt, "w1") == before
    rebuilt.on_quote("SPY", 473.0, NOW + STEP)
    fresh = book([watch(BAND)], [call_position(), shares(-200)])
    fresh.on_quote("SPY", 473.0, NOW + STEP)
    assert _days(rebuilt, "w1") == _days(fresh, "w1") != before


def test_snapshot_and_export_carry_the_forecast_of_live_state() -> None:
    watches = [watch(BAND, watch_id="a"), watch(StaticBand(200.0, 700.0), watch_id="b")]
    b = book(watches, [call_position(), shares(-200)])
    b.on_quote("SPY", 470.0, NOW)
    snapshot = b.snapshot_live(["a", "b"])
    exported = b.export_live().watches
    for watch_id in ("a", "b"):
        assert snapshot[watch_id].time_to_breach is not None
        assert snapshot[watch_id] == exported[watch_id][1] == b.live_state(watch_id)


def test_reading_one_watch_computes_its_forecast_only_and_the_same_value_as_a_full_pass() -> None:
    # An alert's write reads the watches it touches; the other watches' forecasts wait for their own reads.
    watches = [watch(StaticBand(100.0, 450.0), watch_id="u"),
               watch(StaticBand(300.0, 650.0), watch_id="p", target=PositionTarget(OPTION)),
               watch(StaticBand(60000.0, 220000.0), watch_id="d", metric=Metric.DOLLARS)]
    one = book(watches, [call_position(), shares(-200)])
    full = book(watches, [call_position(), shares(-200)])
    for b in (one, full):
        b.on_quote("SPY", 471.5, NOW)
    assert _days(one, "p") is not None
    stale = {w.watch_id: bool(one.w_forecast_stale[one._watch_index[w.watch_id]]) for w in watches}
    assert stale == {"u": True, "p": False, "d": True}
    full.refresh_forecasts()
    assert not full.w_forecast_stale.any()
    assert {w.watch_id: _days(one, w.watch_id) for w in watches} == {w.watch_id: _days(full, w.watch_id) for w in watches}
