"""The alert state machine: the table, and its behaviour through the book under noisy feeds."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np

from services.deltamonitor.domain.alerting import BREACH_TRANSITIONS, STALE_TRANSITIONS, Freshness, Zone, breach_step, classify_zones
from services.deltamonitor.domain.model import AlertKind, BreachDirection, WatchState
from tests.unit.deltamonitor.conftest import NOW, book, call_position, shares, watch


def test_breach_table_is_total() -> None:
    expected = set(itertools.product(WatchState, Zone, (False, True)))
    assert set(BREACH_TRANSITIONS) == expected


def test_only_a_move_into_breached_alerts() -> None:
    for (state, _, _), (target, alerts) in BREACH_TRANSITIONS.items():
        assert alerts == (target is WatchState.BREACHED and state is not WatchState.BREACHED)


def test_breached_rearms_only_from_deep_inside_after_the_cooldown() -> None:
    rearming = [k for k, (target, _) in BREACH_TRANSITIONS.items() if k[0] is WatchState.BREACHED and target is WatchState.ARMED]
    assert rearming == [(WatchState.BREACHED, Zone.DEEP, True)]


def test_stale_table_alerts_once_per_quiet_spell() -> None:
    assert {k for k, (_, alert) in STALE_TRANSITIONS.items() if alert} == {(Freshness.FRESH, True)}


def test_zones_use_the_hysteresis_margin() -> None:
    delta = np.array([301.0, 299.0, 250.0, np.nan, -101.0])
    lower = np.full(5, -100.0)
    upper = np.full(5, 300.0)
    zones = classify_zones(delta, lower, upper, np.full(5, 0.2))
    assert zones.tolist() == [Zone.OUTSIDE, Zone.EDGE, Zone.DEEP, Zone.NO_DATA, Zone.OUTSIDE]


def test_vectorised_step_matches_the_table_for_every_combination() -> None:
    combos = list(itertools.product(WatchState, Zone, (False, True)))
    state = np.array([c[0] for c in combos], dtype=np.int8)
    zone = np.array([c[1] for c in combos], dtype=np.int8)
    cooled = np.array([c[2] for c in combos])
    next_state, alert = breach_step(state, zone, cooled)
    assert [(WatchState(s), bool(a)) for s, a in zip(next_state, alert)] == [BREACH_TRANSITIONS[c] for c in combos]


def _feed(b, prices, start=NOW, step=timedelta(seconds=1)):  # type: ignore[no-untyped-def]
    alerts = []
    for i, price in enumerate(prices):
        alerts += b.on_quote("SPY", price, start + i * step).alerts
    return alerts


def test_noisy_feed_around_the_band_raises_exactly_one_alert() -> None:
    # 10 calls + short 200 shares: share delta ~ 279 at 470, crosses 300 near 472.
    b = book([watch()], [call_position(), shares(-200)])
    rng = np.random.default_rng(7)
    noise = 472.0 + rng.normal(0.0, 0.6, 500)
    alerts = _feed(b, [470.0, *noise.tolist()])
    assert len(alerts) == 1
    assert alerts[0].kind is AlertKind.DELTA_BREACH
    assert alerts[0].detail.direction is BreachDirection.ABOVE_UPPER


def test_watch_rearms_after_returning_deep_inside_and_alerts_again() -> None:
    b = book([watch()], [call_position(), shares(-200)])
    alerts = _feed(b, [470.0, 476.0, 465.0, 476.0])
    assert len(alerts) == 2


def test_cooldown_delays_rearming() -> None:
    b = book([watch(cooldown=timedelta(minutes=10))], [call_position(), shares(-200)])
    first = _feed(b, [470.0, 476.0, 465.0, 476.0], step=timedelta(seconds=60))
    assert len(first) == 1
    later = _feed(b, [465.0, 476.0], start=NOW + timedelta(minutes=20))
    assert len(later) == 1


def test_watch_starting_outside_its_band_alerts_on_first_evaluation() -> None:
    b = book([watch()], [call_position(), shares(-200)])
    alerts = _feed(b, [490.0])
    assert len(alerts) == 1
    assert b.live_state("w1").state is WatchState.BREACHED  # type: ignore[union-attr]


def test_missing_iv_means_no_evaluation_not_a_zero_delta() -> None:
    b = book([watch()], [call_position(streamer=".SPY240419C999", symbol="SPY   240419C00999000"), shares(-200)])
    alerts = _feed(b, [470.0])
    live = b.live_state("w1")
    assert alerts == [] and live is not None and live.state is WatchState.UNEVALUATED and np.isnan(live.current_delta)


def test_alert_carries_context_and_hedge_to_the_band_middle() -> None:
    b = book([watch()], [call_position(), shares(-200)])
    alert = _feed(b, [470.0, 476.0])[0]
    d = alert.detail
    assert d.delta_before < 300.0 < d.delta_after
    assert (d.band_lower, d.band_upper) == (-100.0, 300.0)
    assert d.underlying_symbol == "SPY" and d.underlying_price == 476.0
    assert d.implied_volatility == 0.15
    assert d.hedge_symbol == "SPY"
    # Shares to sell to bring the delta back to the band's middle (100).
    assert abs(d.suggested_hedge_quantity - (100.0 - d.delta_after)) < 0.01
    assert abs(d.exposure.delta_shares - d.delta_after) < 1e-6
    assert d.exposure.gamma > 0
