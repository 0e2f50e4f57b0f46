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

Both tables are also materialised as NumPy lookup arrays, so one step for ten thousand watches is a handful of
array indexing operations, not a Python loop.
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
    "breach_step",
    "classify_zones",
    "stale_step",
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


def _breach_lookup() -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    next_state = np.zeros((len(WatchState), len(Zone), 2), dtype=np.int8)
    alert = np.zeros((len(WatchState), len(Zone), 2), dtype=np.bool_)
    for (state, zone, cooled), (target, raises) in BREACH_TRANSITIONS.items():
        next_state[state, zone, int(cooled)] = target
        alert[state, zone, int(cooled)] = raises
    next_state.setflags(write=False)
    alert.setflags(write=False)
    return next_state, alert


def _stale_lookup() -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    next_state = np.zeros((len(Freshness), 2), dtype=np.int8)
    alert = np.zeros((len(Freshness), 2), dtype=np.bool_)
    for (freshness, stale), (target, raises) in STALE_TRANSITIONS.items():
        next_state[freshness, int(stale)] = target
        alert[freshness, int(stale)] = raises
    next_state.setflags(write=False)
    alert.setflags(write=False)
    return next_state, alert


_BREACH_NEXT, _BREACH_ALERT = _breach_lookup()
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
    half = (upper - lower) * 0.5
    margin = hysteresis_ratio * half
    with np.errstate(invalid="ignore"):
        outside = (delta > upper) | (delta < lower)
        deep = (delta <= upper - margin) & (delta >= lower + margin)
    zones = np.full(delta.shape, _EDGE, dtype=np.int8)
    zones[deep] = _DEEP
    zones[outside] = _OUTSIDE
    zones[np.isnan(delta) | np.isnan(lower) | np.isnan(upper)] = _NO_DATA
    return zones


def breach_step(
    state: npt.NDArray[np.int8], zone: npt.NDArray[np.int8], cooldown_over: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    """Apply ``BREACH_TRANSITIONS`` to every watch at once.

    Returns:
        (next states, alert mask).
    """
    cooled = cooldown_over.astype(np.intp)
    return _BREACH_NEXT[state, zone, cooled], _BREACH_ALERT[state, zone, cooled]


def stale_step(
    freshness: npt.NDArray[np.int8], stale_now: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    """Apply ``STALE_TRANSITIONS`` to every watch at once.

    Returns:
        (next freshness, alert mask).
    """
    index = stale_now.astype(np.intp)
    return _STALE_NEXT[freshness, index], _STALE_ALERT[freshness, index]
