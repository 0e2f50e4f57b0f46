# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The book's per-tick array steps compiled: exposures, watch sums, zones and the breach table in three calls.

Theory of operation. ``book.py`` evaluates one underlying's tick as arrays. Written as NumPy expressions that
was about forty calls, each a few microseconds of interpreter and dispatch around a loop over ~200 elements;
at 5,000 ticks a second the calls, not the arithmetic, held the event loop. Here each step is one loop in C
over the same arrays, doing the same floating-point operations in the same order as the NumPy expressions it
replaces, so results are identical to the last bit (``tests/unit/deltamonitor/test_deltamonitor_kernel.py``
checks them against those expressions, ``alerting.zones_within`` and ``alerting.breach_moves``):

- ``exposures``: a position's per-share Greeks times its units (delta, gamma, charm, vanna), the move
  ``gamma x units x S x IV``, and the same five in dollars (x S) and beta-dollars (x beta S);
- ``watch_sums``: per affected watch, the sum of its positions' contributions in its metric, pair by pair in
  order (what ``numpy.bincount`` does);
- ``WatchColumns.step``: the zone of each watch (``alerting.Zone``), one lookup in the breach transition
  table (``alerting.BREACH_TRANSITIONS``, passed in as its flattened lookup arrays: the table stays the one
  definition of the machine) and the write-back of the live columns.
"""

import numpy as np

from libc.math cimport isnan
from libc.stdint cimport int8_t, int64_t, uint8_t

cdef enum:
    QUANTITIES = 5
    METRICS = 3
    ZONES = 4
    Z_NO_DATA = 0
    Z_OUTSIDE = 1
    Z_EDGE = 2
    Z_DEEP = 3


def exposures(const double[::1] delta, const double[::1] gamma, const double[::1] charm, const double[::1] vanna,
              const double[::1] units, const double[::1] volatility, double spot, double beta_spot,
              Py_ssize_t start, Py_ssize_t stop, double[:, :, ::1] contrib, bint dollars, bint beta_dollars):
    """Write the contributions (quantity, metric, position) of positions ``start:stop`` into ``contrib``.

    Quantities: delta, gamma, charm, vanna, move; metrics: shares, dollars (when ``dollars``), beta-dollars
    (when ``beta_dollars``; ``beta_spot`` is beta x S).
    """
    if not (0 <= start <= stop <= units.shape[0] and contrib.shape[0] == QUANTITIES and contrib.shape[1] == METRICS
            and contrib.shape[2] == units.shape[0] and delta.shape[0] == units.shape[0]
            and gamma.shape[0] == units.shape[0] and charm.shape[0] == units.shape[0]
            and vanna.shape[0] == units.shape[0] and volatility.shape[0] == units.shape[0]):
        raise ValueError("exposures: arrays of different lengths or a range outside them")
    cdef Py_ssize_t p, q
    cdef double x[QUANTITIES]
    with nogil:
        for p in range(start, stop):
            x[0] = delta[p] * units[p]
            x[1] = gamma[p] * units[p]
            x[2] = charm[p] * units[p]
            x[3] = vanna[p] * units[p]
            x[4] = x[1] * spot * volatility[p]
            for q in range(QUANTITIES):
                contrib[q, 0, p] = x[q]
                if dollars:
                    contrib[q, 1, p] = x[q] * spot
                if beta_dollars:
                    contrib[q, 2, p] = x[q] * beta_spot


def watch_sums(const double[:, :, ::1] contrib, const int64_t[::1] pair_local, const int64_t[::1] pair_position,
               const int64_t[::1] pair_metric, double[:, ::1] sums):
    """Sum each pair's contribution into its watch's column of ``sums`` (quantity, local watch), in pair order."""
    cdef Py_ssize_t n_pairs = pair_local.shape[0]
    cdef Py_ssize_t n_watches = sums.shape[1]
    cdef Py_ssize_t n_positions = contrib.shape[2]
    cdef Py_ssize_t k, q, w
    if (pair_position.shape[0] != n_pairs or pair_metric.shape[0] != n_pairs or sums.shape[0] != QUANTITIES
            or contrib.shape[0] != QUANTITIES or contrib.shape[1] != METRICS):
        raise ValueError("watch_sums: arrays of different lengths")
    for k in range(n_pairs):
        if not (0 <= pair_local[k] < n_watches and 0 <= pair_position[k] < n_positions
                and 0 <= pair_metric[k] < METRICS):
            raise IndexError("watch_sums: a pair outside the arrays")
    with nogil:
        for q in range(QUANTITIES):
            for w in range(n_watches):
                sums[q, w] = 0.0
            for k in range(n_pairs):
                sums[q, pair_local[k]] += contrib[q, pair_metric[k], pair_position[k]]


cdef class WatchColumns:
    """The book's per-watch live columns and the breach table, bound once per book layout."""

    cdef int8_t[::1] state
    cdef double[::1] last_alert
    cdef double[::1] delta
    cdef double[::1] charm
    cdef double[::1] vanna
    cdef double[::1] move
    cdef double[::1] lower
    cdef double[::1] upper
    cdef double[::1] evaluated
    cdef uint8_t[::1] forecast_stale
    cdef const int8_t[::1] next_state
    cdef const uint8_t[::1] raises
    cdef const uint8_t[::1] rearms
    cdef Py_ssize_t states
    # Scratch for one step's alerting and re-armed watches (at most every watch of the book).
    cdef int64_t[::1] alert_at
    cdef int64_t[::1] rearm_at
    cdef double[::1] before

    def __init__(self, state, last_alert, delta, charm, vanna, move, lower, upper, evaluated, forecast_stale,
                 next_state, raises, rearms):
        """Bind the columns (one entry per watch; ``forecast_stale`` a bool array) and the table's lookups.

        ``next_state``, ``raises`` and ``rearms`` are flattened by ((state x zones) + zone) x 2 + cooldown over,
        as ``alerting``'s lookups are.
        """
        self.state = state
        self.last_alert = last_alert
        self.delta = delta
        self.charm = charm
        self.vanna = vanna
        self.move = move
        self.lower = lower
        self.upper = upper
        self.evaluated = evaluated
        self.forecast_stale = forecast_stale.view("uint8")
        self.next_state = next_state
        self.raises = raises.view("uint8")
        self.rearms = rearms.view("uint8")
        cdef Py_ssize_t n = self.state.shape[0]
        lengths = {len(c) for c in (state, last_alert, delta, charm, vanna, move, lower, upper, evaluated,
                                    forecast_stale)}
        if len(lengths) != 1:
            raise ValueError("WatchColumns: columns of different lengths")
        if self.next_state.shape[0] % (ZONES * 2) or self.raises.shape[0] != self.next_state.shape[0] \
                or self.rearms.shape[0] != self.next_state.shape[0]:
            raise ValueError("WatchColumns: the lookups must be (states x zones x 2) long")
        self.states = self.next_state.shape[0] // (ZONES * 2)
        self.alert_at = np.empty(n, dtype=np.int64)
        self.rearm_at = np.empty(n, dtype=np.int64)
        self.before = np.empty(n, dtype=np.float64)

    def step(self, const int64_t[::1] watches, const double[:, ::1] sums, const double[::1] lower,
             const double[::1] upper, const double[::1] deep_lower, const double[::1] deep_upper,
             const double[::1] cooldown, double now):
        """Classify, move and record the affected ``watches`` (book indices) of one tick.

        ``sums`` holds their delta, gamma, charm, vanna and move (rows); ``lower`` / ``upper`` their bands and
        ``deep_lower`` / ``deep_upper`` the bounds of the DEEP zone. A watch whose zone is NO_DATA keeps its
        last values (its state cannot move). An alerting watch's last alert time becomes ``now``.

        Returns:
            None when no watch alerted or re-armed, else (alerting positions in ``watches``, their deltas
            before this tick, re-armed positions in ``watches``).
        """
        cdef Py_ssize_t n = watches.shape[0]
        cdef Py_ssize_t n_book = self.state.shape[0]
        if (sums.shape[0] != QUANTITIES or sums.shape[1] != n or lower.shape[0] != n or upper.shape[0] != n
                or deep_lower.shape[0] != n or deep_upper.shape[0] != n or cooldown.shape[0] != n):
            raise ValueError("WatchColumns.step: arrays of different lengths")
        cdef Py_ssize_t j, wi, row
        if n == 0:
            return None
        for j in range(n):
            if not (0 <= watches[j] < n_book and 0 <= self.state[watches[j]] < self.states):
                raise IndexError("WatchColumns.step: a watch or state outside the columns")
        cdef double d, lo, hi
        cdef int zone
        cdef Py_ssize_t alerted = 0
        cdef Py_ssize_t rearmed = 0
        cdef int64_t* alert_at = &self.alert_at[0]
        cdef int64_t* rearm_at = &self.rearm_at[0]
        cdef double* before = &self.before[0]
        with nogil:
            for j in range(n):
                wi = watches[j]
                d = sums[0, j]
                lo = lower[j]
                hi = upper[j]
                # Comparisons with NaN are False: an unknown delta or bound is NO_DATA before anything else.
                if isnan(d) or isnan(lo) or isnan(hi):
                    zone = Z_NO_DATA
                elif d > hi or d < lo:
                    zone = Z_OUTSIDE
                elif d <= deep_upper[j] and d >= deep_lower[j]:
                    zone = Z_DEEP
                else:
                    zone = Z_EDGE
                row = (self.state[wi] * ZONES + zone) * 2 + ((now - self.last_alert[wi]) >= cooldown[j])
                if self.raises[row]:
                    alert_at[alerted] = j
                    before[alerted] = self.delta[wi]
                    alerted += 1
                    self.last_alert[wi] = now
                if self.rearms[row]:
                    rearm_at[rearmed] = j
                    rearmed += 1
                self.state[wi] = self.next_state[row]
                if zone == Z_NO_DATA:
                    continue
                self.delta[wi] = d
                self.charm[wi] = sums[2, j]
                self.vanna[wi] = sums[3, j]
                self.move[wi] = sums[4, j]
                self.lower[wi] = lo
                self.upper[wi] = hi
                self.evaluated[wi] = now
                self.forecast_stale[wi] = 1
        if alerted == 0 and rearmed == 0:
            return None
        return ([alert_at[j] for j in range(alerted)], [before[j] for j in range(alerted)],
                [rearm_at[j] for j in range(rearmed)])
