"""Zone classification and the flattened breach lookups against the rules and the table they come from."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from services.deltamonitor.domain.alerting import (
    BREACH_TRANSITIONS,
    Zone,
    breach_moves,
    breach_step,
    classify_zones,
    deep_bounds,
    zones_within,
)
from services.deltamonitor.domain.model import WatchState

_BOUND = st.one_of(st.floats(-1e6, 1e6), st.just(math.nan))
_DELTA = st.one_of(st.floats(-1e7, 1e7), st.sampled_from([math.nan, math.inf, -math.inf]))
_ROW = st.tuples(_DELTA, _BOUND, _BOUND, st.floats(0.0, 0.99))


def _zone(delta: float, lower: float, upper: float, hysteresis: float) -> Zone:
    if math.isnan(delta) or math.isnan(lower) or math.isnan(upper):
        return Zone.NO_DATA
    if delta > upper or delta < lower:
        return Zone.OUTSIDE
    margin = hysteresis * ((upper - lower) * 0.5)
    return Zone.DEEP if upper - margin >= delta >= lower + margin else Zone.EDGE


@given(st.lists(_ROW, min_size=1, max_size=40))
def test_zones_follow_the_rules_element_by_element(rows: list[tuple[float, float, float, float]]) -> None:
    delta, lower, upper, hysteresis = (np.array(column) for column in zip(*rows))
    assert classify_zones(delta, lower, upper, hysteresis).tolist() == [_zone(*row) for row in rows]


@given(st.lists(st.tuples(_DELTA, st.floats(-1e6, 1e6), st.floats(0.0, 1e6), st.floats(0.0, 0.99)), min_size=1, max_size=40))
def test_zones_within_known_bounds_equal_classify_zones(rows: list[tuple[float, float, float, float]]) -> None:
    delta, lower, width, hysteresis = (np.array(column) for column in zip(*rows))
    upper = lower + width
    deep_lower, deep_upper = deep_bounds(lower, upper, hysteresis)
    zones = zones_within(delta, lower, upper, deep_lower, deep_upper, bounds_known=True)
    assert zones.tolist() == classify_zones(delta, lower, upper, hysteresis).tolist()


def test_no_data_never_moves_a_watch() -> None:
    # The book reads a watch's forecast later from its last evaluation; that holds because a NO_DATA tick,
    # which leaves the evaluation inputs alone, leaves the state alone too.
    for (state, zone, _), (target, alerts) in BREACH_TRANSITIONS.items():
        if zone is Zone.NO_DATA:
            assert target is state and not alerts


def test_breach_moves_match_the_table_and_breach_step() -> None:
    combos = list(itertools.product(WatchState, Zone, (False, True)))
    state = np.array([c[0] for c in combos], dtype=np.int8)
    zone = np.array([c[1] for c in combos], dtype=np.int8)
    cooled = np.array([c[2] for c in combos])
    next_state, alert, rearmed = breach_moves(state, zone, cooled)
    expected = [BREACH_TRANSITIONS[c] for c in combos]
    assert [(WatchState(s), bool(a)) for s, a in zip(next_state, alert)] == expected
    assert rearmed.tolist() == [c[0] is WatchState.BREACHED and t is WatchState.ARMED for c, (t, _) in zip(combos, expected)]
    step_state, step_alert = breach_step(state, zone, cooled)
    assert step_state.tolist() == next_state.tolist() and step_alert.tolist() == alert.tolist()
