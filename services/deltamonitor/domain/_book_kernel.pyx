# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: autotestdict=False, auto_pickle=False
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

from services.deltamonitor.domain.pricing import GREEKS_KERNEL_CAPSULE as _CAPSULE

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from libc.math cimport isnan
from libc.stdint cimport int8_t, int64_t, uint8_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef enum:
    QUANTITIES = 5
    METRICS = 3
    ZONES = 4
    Z_NO_DATA = 0
    Z_OUTSIDE = 1
    Z_EDGE = 2
    Z_DEEP = 3
    GREEK_OUTPUTS = 8  # rows of a pricer's output (pricing.GREEK_ROWS)
    MAX_RUNS = 2       # one run of options per exercise style

cdef double SECONDS_PER_YEAR = 365.0 * 86400.0
cdef bytes CAPSULE_NAME = _CAPSULE.encode()

# The C ABI of a pricer's array kernel (pricing.GREEKS_KERNEL_CAPSULE): n options, is_call as bytes, the six
# inputs, eight output rows (GREEK_ROWS order) and an int8 status per option; runs without the GIL.
ctypedef void (*greeks_kernel_t)(Py_ssize_t n, const uint8_t* ic, const double* S, const double* K,
                                 const double* T, const double* vol, const double* r, const double* q,
                                 double** outs, int8_t* status) noexcept nogil


cdef void _exposures(const double* delta, const double* gamma, const double* charm, const double* vanna,
                     const double* units, const double* volatility, double spot, double beta_spot,
                     Py_ssize_t start, Py_ssize_t stop, double* contrib, Py_ssize_t n_positions, bint dollars,
                     bint beta_dollars) noexcept nogil:
    # contrib is (quantity, metric, position), C order.
    cdef Py_ssize_t p, q
    cdef double x[QUANTITIES]
    cdef double* row
    for p in range(start, stop):
        x[0] = delta[p] * units[p]
        x[1] = gamma[p] * units[p]
        x[2] = charm[p] * units[p]
        x[3] = vanna[p] * units[p]
        x[4] = x[1] * spot * volatility[p]
        for q in range(QUANTITIES):
            row = contrib + q * METRICS * n_positions
            row[p] = x[q]
            if dollars:
                row[n_positions + p] = x[q] * spot
            if beta_dollars:
                row[2 * n_positions + p] = x[q] * beta_spot


cdef void _watch_sums(const double* contrib, Py_ssize_t n_positions, const int64_t* pair_local,
                      const int64_t* pair_position, const int64_t* pair_metric, Py_ssize_t n_pairs, double* sums,
                      Py_ssize_t n_watches) noexcept nogil:
    cdef Py_ssize_t k, q, w
    cdef double* out
    cdef const double* quantity
    for q in range(QUANTITIES):
        out = sums + q * n_watches
        quantity = contrib + q * METRICS * n_positions
        for w in range(n_watches):
            out[w] = 0.0
        for k in range(n_pairs):
            out[pair_local[k]] += quantity[pair_metric[k] * n_positions + pair_position[k]]


def exposures(const double[::1] delta, const double[::1] gamma, const double[::1] charm, const double[::1] vanna,
              const double[::1] units, const double[::1] volatility, double spot, double beta_spot,
              Py_ssize_t start, Py_ssize_t stop, double[:, :, ::1] contrib, bint dollars, bint beta_dollars):
    """Write the contributions (quantity, metric, position) of positions ``start:stop`` into ``contrib``.

    Quantities: delta, gamma, charm, vanna, move; metrics: shares, dollars (when ``dollars``), beta-dollars
    (when ``beta_dollars``; ``beta_spot`` is beta x S).
    """
    cdef Py_ssize_t n = units.shape[0]
    if not (0 <= start <= stop <= n and contrib.shape[0] == QUANTITIES and contrib.shape[1] == METRICS
            and contrib.shape[2] == n and delta.shape[0] == n and gamma.shape[0] == n and charm.shape[0] == n
            and vanna.shape[0] == n and volatility.shape[0] == n):
        raise ValueError("exposures: arrays of different lengths or a range outside them")
    if n == 0:
        return
    with nogil:
        _exposures(&delta[0], &gamma[0], &charm[0], &vanna[0], &units[0], &volatility[0], spot, beta_spot, start,
                   stop, &contrib[0, 0, 0], n, dollars, beta_dollars)


cdef int _check_pairs(const int64_t[::1] pair_local, const int64_t[::1] pair_position,
                      const int64_t[::1] pair_metric, Py_ssize_t n_watches, Py_ssize_t n_positions) except -1:
    cdef Py_ssize_t k, n_pairs = pair_local.shape[0]
    if pair_position.shape[0] != n_pairs or pair_metric.shape[0] != n_pairs:
        raise ValueError("pairs of different lengths")
    for k in range(n_pairs):
        if not (0 <= pair_local[k] < n_watches and 0 <= pair_position[k] < n_positions
                and 0 <= pair_metric[k] < METRICS):
            raise IndexError("a pair outside the arrays")
    return 0


def watch_sums(const double[:, :, ::1] contrib, const int64_t[::1] pair_local, const int64_t[::1] pair_position,
               const int64_t[::1] pair_metric, double[:, ::1] sums):
    """Sum each pair's contribution into its watch's column of ``sums`` (quantity, local watch), in pair order."""
    if sums.shape[0] != QUANTITIES or contrib.shape[0] != QUANTITIES or contrib.shape[1] != METRICS:
        raise ValueError("watch_sums: arrays of other shapes")
    _check_pairs(pair_local, pair_position, pair_metric, sums.shape[1], contrib.shape[2])
    if pair_local.shape[0] == 0 or sums.shape[1] == 0:
        sums[:, :] = 0.0
        return
    with nogil:
        _watch_sums(&contrib[0, 0, 0], contrib.shape[2], &pair_local[0], &pair_position[0], &pair_metric[0],
                    pair_local.shape[0], &sums[0, 0], sums.shape[1])


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

    cdef int _check_watches(self, const int64_t[::1] watches) except -1:
        cdef Py_ssize_t j
        for j in range(watches.shape[0]):
            if not (0 <= watches[j] < self.state.shape[0] and 0 <= self.state[watches[j]] < self.states):
                raise IndexError("WatchColumns: a watch or state outside the columns")
        return 0

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
        if (sums.shape[0] != QUANTITIES or sums.shape[1] != n or lower.shape[0] != n or upper.shape[0] != n
                or deep_lower.shape[0] != n or deep_upper.shape[0] != n or cooldown.shape[0] != n):
            raise ValueError("WatchColumns.step: arrays of different lengths")
        self._check_watches(watches)
        if n == 0:
            return None
        return self._step(&watches[0], n, &sums[0, 0], &lower[0], &upper[0], &deep_lower[0], &deep_upper[0],
                          &cooldown[0], now)

    cdef object _step(self, const int64_t* watches, Py_ssize_t n, const double* sums, const double* lower,
                      const double* upper, const double* deep_lower, const double* deep_upper,
                      const double* cooldown, double now):
        # Checked by the caller: n > 0, every watch and its state inside the columns, sums is (5, n).
        cdef Py_ssize_t j, wi, row
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
                d = sums[j]
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
                self.charm[wi] = sums[2 * n + j]
                self.vanna[wi] = sums[3 * n + j]
                self.move[wi] = sums[4 * n + j]
                self.lower[wi] = lo
                self.upper[wi] = hi
                self.evaluated[wi] = now
                self.forecast_stale[wi] = 1
        if alerted == 0 and rearmed == 0:
            return None
        return ([alert_at[j] for j in range(alerted)], [before[j] for j in range(alerted)],
                [rearm_at[j] for j in range(rearmed)])


cdef class UnderlyingStep:
    """One underlying's whole tick in one call, for a pricer with a C kernel (``pricing.GREEKS_KERNEL_CAPSULE``).

    Bound once per book layout to the book's arrays (views, not copies): the options of the underlying (rows
    ``start:stop`` of the position columns, in runs of one exercise style), its affected watches and their
    pairs, and the watch columns. ``tick`` then prices every option of the underlying through the pricer's
    kernel (times to expiry and the per-option spot and dividend yield filled in C), applies the exercise
    value at or past expiry, writes the contributions, sums them per affected watch (dividing beta-weighted
    sums by their benchmark's price) and, when every band of the set is static, runs ``WatchColumns``' step:
    the same operations, in the same order, as the NumPy expressions and the three functions above.
    """

    cdef object keep  # the arrays behind the views and pointers below
    cdef Py_ssize_t start, stop, n_positions
    cdef Py_ssize_t options_start, options_stop
    cdef int n_runs
    cdef Py_ssize_t run_start[MAX_RUNS]
    cdef Py_ssize_t run_stop[MAX_RUNS]
    cdef double first_expiry[MAX_RUNS]
    cdef greeks_kernel_t kernel[MAX_RUNS]
    cdef const uint8_t[::1] is_call
    cdef const double[::1] strike
    cdef const double[::1] expiry
    cdef double[::1] years
    cdef const double[::1] volatility
    cdef const double[::1] units
    cdef double[::1] spot_in
    cdef double[::1] rate_in
    cdef double[::1] yield_in
    cdef int8_t[::1] status
    cdef double[:, ::1] greeks
    cdef double[:, :, ::1] contrib
    cdef int delta_row, gamma_row, charm_row, vanna_row
    cdef bint dollars, beta_dollars
    cdef const int64_t[::1] pair_local
    cdef const int64_t[::1] pair_position
    cdef const int64_t[::1] pair_metric
    cdef double[:, ::1] sums
    cdef const int64_t[::1] bench_local
    cdef const int64_t[::1] bench_under
    cdef const double[::1] prices
    cdef const int64_t[::1] watches
    cdef bint static
    cdef const double[::1] lower
    cdef const double[::1] upper
    cdef const double[::1] deep_lower
    cdef const double[::1] deep_upper
    cdef const double[::1] cooldown
    cdef WatchColumns columns
    cdef int64_t kernel_ns

    def __init__(self, Py_ssize_t start, Py_ssize_t stop, runs, is_call, strike, expiry, years, volatility, units,
                 double rate, greeks, rows, contrib, bint dollars, bint beta_dollars, pair_local, pair_position,
                 pair_metric, sums, bench_local, bench_under, prices, watches, WatchColumns columns, bands):
        """Bind one underlying.

        Args:
            start, stop: The underlying's rows (options, then shares).
            runs: (start, stop, kernel capsule) per run of one exercise style, contiguous, in row order, from
                ``start`` on.
            is_call, strike, expiry, years, volatility, units: The book's position columns (years is written).
            rate: The risk-free rate.
            greeks: The book's (len(GREEK_ROWS), positions) Greeks, written for the underlying's options.
            rows: Rows of delta, gamma, charm and vanna in ``greeks``.
            contrib: The book's (quantity, metric, position) contributions.
            dollars, beta_dollars: Whether the underlying's watches use those metrics.
            pair_local, pair_position, pair_metric, sums: The affected watches' pairs and sums buffer.
            bench_local, bench_under, prices: Beta-weighted watches (local index, benchmark underlying) and
                the book's underlying prices.
            watches: The affected watches (book indices).
            columns: The book's watch columns.
            bands: None when a band of the set moves with the market (the caller then computes the bounds and
                runs the step), else (lower, upper, deep lower, deep upper, cooldown) of the set.
        """
        self.keep = (is_call, strike, expiry, years, volatility, units, greeks, contrib, pair_local, pair_position,
                     pair_metric, sums, bench_local, bench_under, prices, watches, bands, runs)
        self.n_positions = units.shape[0]
        if len(runs) == 0 or len(runs) > MAX_RUNS:
            raise ValueError(f"UnderlyingStep: 1 to {MAX_RUNS} runs of options, got {len(runs)}")
        self.start = start
        self.stop = stop
        self.options_start = runs[0][0]
        self.options_stop = runs[len(runs) - 1][1]
        if not (0 <= start == self.options_start <= self.options_stop <= stop <= self.n_positions):
            raise ValueError("UnderlyingStep: runs must start the underlying's rows")
        self.n_runs = len(runs)
        cdef int r
        for r in range(self.n_runs):
            first, last, capsule = runs[r]
            if not (0 <= first < last <= self.n_positions) or (r and first != self.run_stop[r - 1]):
                raise ValueError("UnderlyingStep: runs must be contiguous ranges of the positions")
            if not PyCapsule_IsValid(capsule, CAPSULE_NAME):
                raise TypeError(f"UnderlyingStep: a run's kernel must be a {_CAPSULE!r} capsule")
            self.run_start[r] = first
            self.run_stop[r] = last
            self.kernel[r] = <greeks_kernel_t>PyCapsule_GetPointer(capsule, CAPSULE_NAME)
        self.is_call = is_call.view("uint8")
        self.strike = strike
        self.expiry = expiry
        self.years = years
        self.volatility = volatility
        self.units = units
        if any(len(column) != self.n_positions for column in (is_call, strike, expiry, years, volatility)):
            raise ValueError("UnderlyingStep: position columns of different lengths")
        size = self.options_stop - self.options_start
        self.spot_in = np.empty(size)
        self.rate_in = np.full(size, rate)
        self.yield_in = np.empty(size)
        self.status = np.empty(size, dtype=np.int8)
        self.greeks = greeks
        self.contrib = contrib
        if self.greeks.shape[0] != GREEK_OUTPUTS or self.greeks.shape[1] != self.n_positions:
            raise ValueError("UnderlyingStep: greeks must be (8, positions)")
        if (self.contrib.shape[0] != QUANTITIES or self.contrib.shape[1] != METRICS
                or self.contrib.shape[2] != self.n_positions):
            raise ValueError("UnderlyingStep: contrib must be (5, 3, positions)")
        self.delta_row, self.gamma_row, self.charm_row, self.vanna_row = rows
        if not all(0 <= row < GREEK_OUTPUTS for row in rows):
            raise ValueError("UnderlyingStep: Greek rows outside the output")
        self.dollars = dollars
        self.beta_dollars = beta_dollars
        self.pair_local = pair_local
        self.pair_position = pair_position
        self.pair_metric = pair_metric
        self.sums = sums
        self.watches = watches
        self.columns = columns
        cdef Py_ssize_t n = self.watches.shape[0]
        if self.sums.shape[0] != QUANTITIES or self.sums.shape[1] != n or n == 0 or pair_local.shape[0] == 0:
            raise ValueError("UnderlyingStep: sums must be (5, watches), with watches and pairs")
        _check_pairs(pair_local, pair_position, pair_metric, n, self.n_positions)
        columns._check_watches(watches)
        self.bench_local = bench_local
        self.bench_under = bench_under
        self.prices = prices
        cdef Py_ssize_t j
        if self.bench_under.shape[0] != self.bench_local.shape[0]:
            raise ValueError("UnderlyingStep: benchmark arrays of different lengths")
        for j in range(self.bench_local.shape[0]):
            if not (0 <= self.bench_local[j] < n and 0 <= self.bench_under[j] < self.prices.shape[0]):
                raise IndexError("UnderlyingStep: a benchmark outside the arrays")
        self.static = bands is not None
        if self.static:
            if len(bands) != 5 or any(len(column) != n for column in bands):
                raise ValueError("UnderlyingStep: bands of another length than the watches")
            self.lower, self.upper, self.deep_lower, self.deep_upper, self.cooldown = bands
        for r in range(self.n_runs):
            window = np.asarray(expiry)[self.run_start[r]:self.run_stop[r]]
            window = window[~np.isnan(window)]
            self.first_expiry[r] = float(window.min()) if len(window) else float("inf")

    @property
    def kernel_seconds(self):
        """Time spent inside the pricer's kernel by this step's ticks (for the share of pricing in a tick)."""
        return self.kernel_ns * 1e-9

    def tick(self, double spot, double dividend_yield, double beta_spot, double now):
        """Re-price the underlying at ``spot`` and evaluate its watches.

        Returns:
            What ``WatchColumns.step`` returns when the bands are static; otherwise None, with the sums in
            the bound buffer for the caller's step.
        """
        cdef Py_ssize_t i, j, r, first, m, n = self.watches.shape[0]
        cdef Py_ssize_t base = self.options_start
        cdef double* outs[GREEK_OUTPUTS]
        cdef int k
        cdef timespec before, after
        with nogil:
            for i in range(self.options_stop - self.options_start):
                self.spot_in[i] = spot
                self.yield_in[i] = dividend_yield
            for i in range(self.options_start, self.options_stop):
                self.years[i] = (self.expiry[i] - now) / SECONDS_PER_YEAR
            for r in range(self.n_runs):
                first = self.run_start[r]
                m = self.run_stop[r] - first
                for k in range(GREEK_OUTPUTS):
                    outs[k] = &self.greeks[k, first]
                clock_gettime(CLOCK_MONOTONIC, &before)
                self.kernel[r](m, &self.is_call[first], &self.spot_in[first - base], &self.strike[first],
                               &self.years[first], &self.volatility[first], &self.rate_in[first - base],
                               &self.yield_in[first - base], outs, &self.status[first - base])
                clock_gettime(CLOCK_MONOTONIC, &after)
                self.kernel_ns += (after.tv_sec - before.tv_sec) * 1000000000 + (after.tv_nsec - before.tv_nsec)
                if (self.first_expiry[r] - now) / SECONDS_PER_YEAR <= 0.0:
                    # At or past expiry an option is its exercise value: delta 1/-1 in the money, 0 out of it.
                    for i in range(first, first + m):
                        if self.years[i] <= 0.0:
                            for k in range(GREEK_OUTPUTS):
                                self.greeks[k, i] = 0.0
                            if self.is_call[i]:
                                self.greeks[self.delta_row, i] = 1.0 if spot > self.strike[i] else 0.0
                            else:
                                self.greeks[self.delta_row, i] = -1.0 if spot < self.strike[i] else 0.0
            _exposures(&self.greeks[self.delta_row, 0], &self.greeks[self.gamma_row, 0],
                       &self.greeks[self.charm_row, 0], &self.greeks[self.vanna_row, 0], &self.units[0],
                       &self.volatility[0], spot, beta_spot, self.start, self.stop, &self.contrib[0, 0, 0],
                       self.n_positions, self.dollars, self.beta_dollars)
            _watch_sums(&self.contrib[0, 0, 0], self.n_positions, &self.pair_local[0], &self.pair_position[0],
                        &self.pair_metric[0], self.pair_local.shape[0], &self.sums[0, 0], n)
            for j in range(self.bench_local.shape[0]):
                for k in range(QUANTITIES):
                    self.sums[k, self.bench_local[j]] /= self.prices[self.bench_under[j]]
        if not self.static:
            return None
        return self.columns._step(&self.watches[0], n, &self.sums[0, 0], &self.lower[0], &self.upper[0],
                                  &self.deep_lower[0], &self.deep_upper[0], &self.cooldown[0], now)
