"""The alert state machines of watches, evaluated for many watches at once.

Theory of operation. Every evaluation classifies a watch's delta against its band into a zone:

- ``OUTSIDE``: beyond a bound;
- ``EDGE``: inside the band, but closer to a bound than ``hysteresis_ratio`` x half-width;
- ``DEEP``: inside the band by at least that margin;
- ``NO_DATA``: the delta or the band could not be computed (missing price, IV or beta).

The breach machine moves on (state, zone, cooldown over) through ``BREACH_TRANSITIONS``. A watch alerts only on
the move into ``BREACHED``; it leaves ``BREACHED`` only from ``DEEP`` once the cooldown since its last alert has
passed. A feed that flickers around a bound therefore moves the watch OUTSIDE -> EDGE -> OUTSIDE ... without
ever passing through ``DEEP``: exactly one alert per crossing, however noisy the feed. ``NO_DATA`` never moves
a watch. The cooldown gates only re-arming, so an armed watch always alerts when it leaves its band.

The stale machine (``STALE_TRANSITIONS``) is separate: ``FRESH`` -> ``STALE`` (alert) when a watched symbol has
had no tick or Greeks for longer than the watch's limit while its market is open; back to ``FRESH`` with the
next update. One alert per quiet spell; nights, weekends and holidays raise nothing.

Both tables are also materialised as NumPy lookup arrays (flattened, one row per (state, zone, cooldown over)),
so one step for ten thousand watches is a handful of array operations, not a Python loop.
"""

from __future__ import annotations

import enum
from typing import Final

import numpy as np
import numpy.typing as npt

from services.deltamonitor.domain.model import WatchState

__all__ = [
    "BREACH_TRANSITIONS",
    "STALE_TRANSITIONS",
    "Freshness",
    "Zone",
    "breach_lookups",
    "breach_moves",
    "breach_step",
    "classify_zones",
    "deep_bounds",
    "stale_step",
    "zones_within",
]


class Zone(enum.IntEnum):
    """Where a delta sits relative to its band."""

    NO_DATA = 0
    OUTSIDE = 1
    EDGE = 2
    DEEP = 3


class Freshness(enum.IntEnum):
    """Whether a watch's data is flowing."""

    FRESH = 0
    STALE = 1


_ARMED, _BREACHED, _NEW = WatchState.ARMED, WatchState.BREACHED, WatchState.UNEVALUATED

# (state, zone, cooldown over) -> (next state, raise an alert). "*" rows are spelled out for both cooldown
# values so the table is total; the test checks every combination is present exactly once.
BREACH_TRANSITIONS: Final[dict[tuple[WatchState, Zone, bool], tuple[WatchState, bool]]] = {
    # A new (or changed) watch takes its first state from its first evaluation; starting outside alerts.
    (_NEW, Zone.NO_DATA, False): (_NEW, False),
    (_NEW, Zone.NO_DATA, True): (_NEW, False),
    (_NEW, Zone.OUTSIDE, False): (_BREACHED, True),
    (_NEW, Zone.OUTSIDE, True): (_BREACHED, True),
    (_NEW, Zone.EDGE, False): (_ARMED, False),
    (_NEW, Zone.EDGE, True): (_ARMED, False),
    (_NEW, Zone.DEEP, False): (_ARMED, False),
    (_NEW, Zone.DEEP, True): (_ARMED, False),
    # Armed: leaving the band is the one and only alert of this crossing.
    (_ARMED, Zone.NO_DATA, False): (_ARMED, False),
    (_ARMED, Zone.NO_DATA, True): (_ARMED, False),
    (_ARMED, Zone.OUTSIDE, False): (_BREACHED, True),
    (_ARMED, Zone.OUTSIDE, True): (_BREACHED, True),
    (_ARMED, Zone.EDGE, False): (_ARMED, False),
    (_ARMED, Zone.EDGE, True): (_ARMED, False),
    (_ARMED, Zone.DEEP, False): (_ARMED, False),
    (_ARMED, Zone.DEEP, True): (_ARMED, False),
    # Breached: silent until the delta is back inside by the hysteresis margin and the cooldown is over.
    (_BREACHED, Zone.NO_DATA, False): (_BREACHED, False),
    (_BREACHED, Zone.NO_DATA, True): (_BREACHED, False),
    (_BREACHED, Zone.OUTSIDE, False): (_BREACHED, False),
    (_BREACHED, Zone.OUTSIDE, True): (_BREACHED, False),
    (_BREACHED, Zone.EDGE, False): (_BREACHED, False),
    (_BREACHED, Zone.EDGE, True): (_BREACHED, False),
    (_BREACHED, Zone.DEEP, False): (_BREACHED, False),
    (_BREACHED, Zone.DEEP, True): (_ARMED, False),
}

# (freshness, data is stale now) -> (next freshness, raise an alert).
STALE_TRANSITIONS: Final[dict[tuple[Freshness, bool], tuple[Freshness, bool]]] = {
    (Freshness.FRESH, False): (Freshness.FRESH, False),
    (Freshness.FRESH, True): (Freshness.STALE, True),
    (Freshness.STALE, False): (Freshness.FRESH, False),
    (Freshness.STALE, True): (Freshness.STALE, False),
}


def _breach_lookup() -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    # Flattened by _breach_index; the third lookup marks the re-arming moves (BREACHED -> ARMED).
    size = len(WatchState) * len(Zone) * 2
    next_state = np.zeros(size, dtype=np.int8)
    alert = np.zeros(size, dtype=np.bool_)
    rearm = np.zeros(size, dtype=np.bool_)
    for (state, zone, cooled), (target, raises) in BREACH_TRANSITIONS.items():
        row = (int(state) * len(Zone) + int(zone)) * 2 + int(cooled)
        next_state[row] = target
        alert[row] = raises
        rearm[row] = state is _BREACHED and target is _ARMED
    for table in (next_state, alert, rearm):
        table.setflags(write=False)
    return next_state, alert, rearm


def _stale_lookup() -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    next_state = np.zeros((len(Freshness), 2), dtype=np.int8)
    alert = np.zeros((len(Freshness), 2), dtype=np.bool_)
    for (freshness, stale), (target, raises) in STALE_TRANSITIONS.items():
        next_state[freshness, int(stale)] = target
        alert[freshness, int(stale)] = raises
    next_state.setflags(write=False)
    alert.setflags(write=False)
    return next_state, alert


_BREACH_NEXT, _BREACH_ALERT, _BREACH_REARM = _breach_lookup()
_ZONES = len(Zone)
# Plain ints for the per-tick code (an enum member lookup costs about a microsecond).
_NO_DATA, _OUTSIDE, _EDGE, _DEEP = (int(z) for z in (Zone.NO_DATA, Zone.OUTSIDE, Zone.EDGE, Zone.DEEP))
_STALE_NEXT, _STALE_ALERT = _stale_lookup()


def classify_zones(
    delta: npt.NDArray[np.float64],
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
    hysteresis_ratio: npt.NDArray[np.float64],
) -> npt.NDArray[np.int8]:
    """Return the ``Zone`` of each delta against its band.

    Args:
        delta: Watched deltas (NaN where unknown).
        lower: Lower bounds (NaN where unknown).
        upper: Upper bounds.
        hysteresis_ratio: Re-arm margin per watch as a fraction of the half-width, in [0, 1).

    Returns:
        int8 zones, one per watch.
    """
    deep_lower, deep_upper = deep_bounds(lower, upper, hysteresis_ratio)
    return zones_within(delta, lower, upper, deep_lower, deep_upper)


def deep_bounds(
    lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64], hysteresis_ratio: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return the bounds of the ``DEEP`` zone: the band shrunk by ``hysteresis_ratio`` x half-width per side.

    Returns:
        (deep lower, deep upper).
    """
    margin = hysteresis_ratio * ((upper - lower) * 0.5)
    return lower + margin, upper - margin


def zones_within(
    delta: npt.NDArray[np.float64],
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
    deep_lower: npt.NDArray[np.float64],
    deep_upper: npt.NDArray[np.float64],
    *,
    bounds_known: bool = False,
) -> npt.NDArray[np.int8]:
    """``classify_zones`` with the deep bounds given (``deep_bounds``), for bands that do not move between ticks.

    Args:
        delta: Watched deltas (NaN where unknown).
        lower: Lower bounds (NaN where unknown).
        upper: Upper bounds.
        deep_lower: Lower bounds of the deep zone.
        deep_upper: Upper bounds of the deep zone.
        bounds_known: The caller vouches that no bound is NaN (only the deltas are then checked).

    Returns:
        int8 zones, one per watch.
    """
    # Comparisons with NaN are False and raise no floating-point warning.
    outside = (delta > upper) | (delta < lower)
    deep = (delta <= deep_upper) & (delta >= deep_lower)
    unknown = np.isnan(delta)
    if not bounds_known:
        unknown |= np.isnan(lower)
        unknown |= np.isnan(upper)
    zones = np.full(delta.shape, _EDGE, dtype=np.int8)
    zones[deep] = _DEEP
    zones[outside] = _OUTSIDE
    zones[unknown] = _NO_DATA
    return zones


def _breach_index(
    state: npt.NDArray[np.int8], zone: npt.NDArray[np.int8], cooldown_over: npt.NDArray[np.bool_]
) -> npt.NDArray[np.intp]:
    index = state.astype(np.intp)
    index *= _ZONES
    index += zone
    index *= 2
    index += cooldown_over
    return index


def breach_step(
    state: npt.NDArray[np.int8], zone: npt.NDArray[np.int8], cooldown_over: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    """Apply ``BREACH_TRANSITIONS`` to every watch at once.

    Returns:
        (next states, alert mask).
    """
    index = _breach_index(state, zone, cooldown_over)
    return _BREACH_NEXT.take(index), _BREACH_ALERT.take(index)


def breach_moves(
    state: npt.NDArray[np.int8], zone: npt.NDArray[np.int8], cooldown_over: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """``breach_step`` that also tells which watches re-armed (moved from ``BREACHED`` to ``ARMED``).

    Returns:
        (next states, alert mask, re-armed mask).
    """
    index = _breach_index(state, zone, cooldown_over)
    return _BREACH_NEXT.take(index), _BREACH_ALERT.take(index), _BREACH_REARM.take(index)


def breach_lookups() -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """``BREACH_TRANSITIONS`` as read-only lookups (next state, raises an alert, re-arms), one entry per
    (state, zone, cooldown over) at ((state x len(Zone)) + zone) x 2 + cooldown over: for the compiled step."""
    return _BREACH_NEXT, _BREACH_ALERT, _BREACH_REARM


def stale_step(
    freshness: npt.NDArray[np.int8], stale_now: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    """Apply ``STALE_TRANSITIONS`` to every watch at once.

    Returns:
        (next freshness, alert mask).
    """
    index = stale_now.astype(np.intp)
    return _STALE_NEXT[freshness, index], _STALE_ALERT[freshness, index]
