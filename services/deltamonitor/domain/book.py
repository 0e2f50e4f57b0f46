"""The re-pricing book: every watched position and watch as NumPy columns, evaluated per tick as arrays.

Theory of operation. ``Book.build`` lays the held positions out sorted by underlying (options first, grouped by
exercise style), so the positions of one underlying are one contiguous slice, and records for each
underlying the watches its ticks can move: the watches holding it, and the beta-weighted watches using it as
their benchmark. Each (watch, position) membership is a pair; for one underlying the pairs of its affected
watches are precomputed as index arrays.

A quote for an underlying then costs: one pricer kernel call per exercise style over the whole slice (each
option with its own implied vol from its Greeks events) writing into the book's Greek columns, the exposures
in the three metric units, the sums of each affected watch over the precomputed pairs, the zones and one
lookup in the alert state table with the write-back of the live columns, over views and buffers laid out
once. Those steps are loops in C (``_book_kernel``); with a pricer that offers its kernel as a C capsule
(core_ext) a static-band underlying's whole tick is one compiled call (``_book_kernel.UnderlyingStep``),
otherwise the pricer is called from Python and the steps follow one another (adaptive bands compute their
bounds in NumPy between the sums and the step). Python-level work happens only for the (rare) watches that
alert. The time-to-breach forecast is only read with a watch's live state, so a tick keeps its inputs and the
forecasts of all watches evaluated since are computed in one pass when one of them is read.

Live state (the state machine, last delta, last alert time, freshness) and market state (prices, IVs, betas,
update times, by symbol) live outside the layout and survive a rebuild; a watch whose generation changed
starts again unevaluated.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from services.deltamonitor.domain import _book_kernel, alerting, analytics
from services.deltamonitor.domain.model import (
    DEFAULT_BENCHMARK,
    AdaptiveBand,
    Alert,
    AlertKind,
    AlertState,
    BandMethod,
    BreachDirection,
    DeltaBreach,
    ExposureGreeks,
    HeldPosition,
    Metric,
    PositionTarget,
    StaleData,
    StaticBand,
    UnderlyingTarget,
    Watch,
    WatchLive,
    WatchState,
)
from services.deltamonitor.domain.pricing import GREEK_ROWS, Pricer

__all__ = ["Book", "BookSettings", "Evaluation", "LiveState", "MarketState", "position_matches"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_SECONDS_PER_YEAR = analytics.DAYS_PER_YEAR * 86400.0
_BAND_STATIC, _BAND_EXPECTED_MOVE, _BAND_WW = 0, 1, 2
_G_DELTA, _G_GAMMA, _G_CHARM, _G_VANNA, _G_THETA, _G_VEGA = (
    GREEK_ROWS.index(name) for name in ("delta", "gamma", "charm", "vanna", "theta", "vega")
)
_G_ROWS = len(GREEK_ROWS)
_QUANTITIES = 5
_ARMED = int(WatchState.ARMED)
_NO_TIME = -math.inf


def _epoch(when: datetime) -> float:
    return when.timestamp()


def _datetime(epoch: float) -> datetime | None:
    return None if not math.isfinite(epoch) else datetime.fromtimestamp(epoch, UTC)


def position_matches(watch: Watch, position: HeldPosition) -> bool:
    """Tell whether ``position`` belongs to what ``watch`` watches."""
    if position.account_number != watch.account_number:
        return False
    target = watch.target
    if isinstance(target, PositionTarget):
        return position.symbol.replace(" ", "") == target.symbol.replace(" ", "")
    if isinstance(target, UnderlyingTarget):
        return position.underlying_symbol == target.underlying_symbol
    return True


@dataclass(frozen=True, slots=True)
class BookSettings:
    """Model inputs and defaults of the book.

    Attributes:
        rate: Risk-free rate (annual fraction) for pricing and the Whalley-Wilmott discount.
        default_stale_after: Staleness limit of watches that leave it unset; zero disables.
        vol_of_vol_points: Assumed one-day standard deviation of implied vol, in vol points (forecast).
        forecast_horizon_days: Time-to-breach forecasts beyond this are reported as none.
    """

    rate: float = 0.045
    default_stale_after: timedelta = timedelta(minutes=2)
    vol_of_vol_points: float = 1.0
    forecast_horizon_days: float = 30.0


@dataclass(slots=True)
class MarketState:
    """The latest market data by symbol; it outlives book rebuilds.

    Attributes:
        prices: Last price per underlying or benchmark symbol.
        ivs: Last implied vol (fraction) per option streamer symbol.
        betas: Beta to SPY per underlying (SPY itself is 1).
        dividend_yields: Annual dividend yield per underlying.
        updated: Epoch seconds of the last quote (underlyings) or Greeks event (options) per symbol.
    """

    prices: dict[str, float] = field(default_factory=dict)
    ivs: dict[str, float] = field(default_factory=dict)
    betas: dict[str, float] = field(default_factory=dict)
    dividend_yields: dict[str, float] = field(default_factory=dict)
    updated: dict[str, float] = field(default_factory=dict)

    def beta(self, symbol: str) -> float:
        """Beta of ``symbol`` to SPY; 1 for SPY, NaN when unknown."""
        if symbol == DEFAULT_BENCHMARK:
            return 1.0
        return self.betas.get(symbol, math.nan)


@dataclass(slots=True)
class LiveState:
    """Per-watch state machine values by watch id; outlives book rebuilds."""

    watches: dict[str, tuple[int, WatchLive]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one event changed.

    Attributes:
        alerts: Draft alerts (no id yet) in the order raised.
        evaluated: Number of watches evaluated.
        priced: Number of options re-priced.
    """

    alerts: list[Alert]
    evaluated: int
    priced: int


@dataclass(slots=True)
class _Affected:
    watches: I64
    pair_local: I64
    pair_position: I64
    pair_metric: I64
    # The five summed quantities of the affected watches, (quantity, watch), rewritten by every tick.
    sums: F64
    # Affected watches with a benchmark (beta-weighted): local positions and benchmark underlyings.
    bench_local: I64
    bench_under: I64
    has_bench: bool
    adaptive: bool
    whalley_wilmott: bool
    static_lower: F64
    static_upper: F64
    # Deep-zone bounds of the static bands.
    static_deep_lower: F64
    static_deep_upper: F64
    hysteresis: F64
    cooldown: F64


@dataclass(slots=True)
class _StyleRun:
    start: int
    stop: int
    american: bool
    # Views of the position columns over the run and per-run pricer input buffers (set by _layout_rows).
    is_call: npt.NDArray[np.bool_] = field(init=False)
    strike: F64 = field(init=False)
    expiry: F64 = field(init=False)
    years: F64 = field(init=False)
    volatility: F64 = field(init=False)
    spot: F64 = field(init=False)
    rate: F64 = field(init=False)
    dividend_yield: F64 = field(init=False)
    greeks: F64 = field(init=False)
    first_expiry: float = field(init=False)


@dataclass(slots=True)
class _UnderlyingRows:
    # The positions of one underlying (rows start:stop) and which metrics' contributions its watches use
    # (shares always; a metric none of the positions' watches uses is not computed).
    runs: list[_StyleRun]
    start: int
    stop: int
    dollars: bool
    beta_dollars: bool
    priced: int
    # The whole tick in one compiled call, when the pricer has C kernels and the underlying has watches.
    step: _book_kernel.UnderlyingStep | None


class Book:
    """Watches and positions as arrays, with their live and market state."""

    def __init__(
        self,
        watches: Sequence[Watch],
        positions: Sequence[HeldPosition],
        *,
        pricer: Pricer,
        settings: BookSettings,
        market: MarketState | None = None,
        live: LiveState | None = None,
    ) -> None:
        """Lay out ``watches`` and the ``positions`` they watch (see the module docstring).

        Args:
            watches: Every active watch.
            positions: Held positions of the watched accounts.
            pricer: The array pricer (core_ext in production).
            settings: Model inputs and defaults.
            market: Market state to continue from (a rebuild passes the previous book's).
            live: Live watch state to continue from.
        """
        self.pricer = pricer
        self.settings = settings
        self.market = market if market is not None else MarketState()
        self.live = live if live is not None else LiveState()
        # Watches re-armed (BREACHED -> ARMED) since the owner last took them: the owner persists them at once,
        # since a replica taking the watch over from a stale BREACHED state would miss the next crossing.
        self.rearmed: list[str] = []
        self.watches: list[Watch] = list(watches)
        self._watch_index = {w.watch_id: i for i, w in enumerate(self.watches)}
        self._layout_positions(positions)
        self._layout_watches()
        self._layout_pairs()
        self._layout_rows()
        self._restore_live()

    # ------------------------------------------------------------------------------------------- layout

    def _match(self, positions: Sequence[HeldPosition]) -> tuple[list[HeldPosition], list[tuple[int, int]]]:
        by_account: dict[str, list[int]] = {}
        by_underlying: dict[tuple[str, str], list[int]] = {}
        by_symbol: dict[tuple[str, str], list[int]] = {}
        for i, p in enumerate(positions):
            if p.quantity == 0.0:
                continue
            by_account.setdefault(p.account_number, []).append(i)
            by_underlying.setdefault((p.account_number, p.underlying_symbol), []).append(i)
            by_symbol.setdefault((p.account_number, p.symbol.replace(" ", "")), []).append(i)
        raw_pairs: list[tuple[int, int]] = []
        for wi, w in enumerate(self.watches):
            target = w.target
            if isinstance(target, PositionTarget):
                rows = by_symbol.get((w.account_number, target.symbol.replace(" ", "")), [])
            elif isinstance(target, UnderlyingTarget):
                rows = by_underlying.get((w.account_number, target.underlying_symbol), [])
            else:
                rows = by_account.get(w.account_number, [])
            raw_pairs.extend((wi, r) for r in rows)
        used = sorted({r for _, r in raw_pairs})
        return [positions[r] for r in used], raw_pairs

    def _layout_positions(self, positions: Sequence[HeldPosition]) -> None:
        kept, raw_pairs = self._match(positions)
        originals = {id(p): i for i, p in enumerate(positions)}
        benchmarks = {w.benchmark_symbol or DEFAULT_BENCHMARK for w in self.watches if w.metric is Metric.BETA_WEIGHTED}
        underlyings = sorted({p.underlying_symbol for p in kept} | benchmarks)
        self.underlyings: list[str] = underlyings
        self._under_index = {s: i for i, s in enumerate(underlyings)}
        # Options first within an underlying, grouped by style, so each (underlying, style) is one slice.
        kept.sort(key=lambda p: (self._under_index[p.underlying_symbol], not p.is_option, not p.american, p.symbol))
        self.positions: list[HeldPosition] = kept
        row_of = {originals[id(p)]: row for row, p in enumerate(kept)}
        pairs = sorted((wi, row_of[r]) for wi, r in raw_pairs)
        self.pair_w = np.array([a for a, _ in pairs], dtype=np.int64)
        self.pair_p = np.array([b for _, b in pairs], dtype=np.int64)
        n = len(kept)
        self.p_under = np.array([self._under_index[p.underlying_symbol] for p in kept], dtype=np.int64)
        self.p_units = np.array([p.units for p in kept], dtype=np.float64)
        self.p_is_option = np.array([p.is_option for p in kept], dtype=np.bool_)
        self.p_is_call = np.array([p.is_call for p in kept], dtype=np.bool_)
        self.p_strike = np.array([p.strike if p.is_option else math.nan for p in kept], dtype=np.float64)
        self.p_expiry = np.array(
            [_epoch(p.expiration_time) if p.is_option and p.expiration_time else math.nan for p in kept],
            dtype=np.float64,
        )
        self.p_feed_symbol = [(p.streamer_symbol or p.symbol) if p.is_option else p.underlying_symbol for p in kept]
        self.p_iv = np.array([self.market.ivs.get(s, math.nan) if o else 0.0 for s, o in zip(self.p_feed_symbol, self.p_is_option)], dtype=np.float64)
        self._iv_rows: dict[str, list[int]] = {}
        for row, (sym, is_option) in enumerate(zip(self.p_feed_symbol, self.p_is_option)):
            if is_option:
                self._iv_rows.setdefault(sym, []).append(row)
        self._iv_rows_arr = {s: np.array(r, dtype=np.int64) for s, r in self._iv_rows.items()}
        # Per-share Greeks, one row each in the pricer's order (GREEK_ROWS); shares have delta 1 and nothing else.
        self.g = np.where(self.p_is_option, np.nan, 0.0)[None, :].repeat(_G_ROWS, axis=0)
        self.g[_G_DELTA, ~self.p_is_option] = 1.0
        self.g_delta = self.g[_G_DELTA]
        self.g_gamma = self.g[_G_GAMMA]
        self.g_charm = self.g[_G_CHARM]
        self.g_vanna = self.g[_G_VANNA]
        self.g_theta = self.g[_G_THETA]
        self.g_vega = self.g[_G_VEGA]
        self.p_years = np.zeros(n)
        # Contributions to watch sums: (quantity, metric, position) with quantities delta, gamma, charm,
        # vanna, move (gamma x S x IV) and metrics shares, dollars, beta-dollars; the beta row is divided by
        # the watch's benchmark price after summing.
        self.contrib = np.full((_QUANTITIES, 3, n), np.nan)
        self.c_gamma = self.contrib[1]
        nu = len(underlyings)
        self.u_price = np.array([self.market.prices.get(s, math.nan) for s in underlyings], dtype=np.float64)
        self.u_beta = np.array([self.market.beta(s) for s in underlyings], dtype=np.float64)
        self.u_yield = np.array([self.market.dividend_yields.get(s, 0.0) for s in underlyings], dtype=np.float64)
        self.u_start = np.searchsorted(self.p_under, np.arange(nu), side="left")
        self.u_stop = np.searchsorted(self.p_under, np.arange(nu), side="right")
        self.u_runs: list[list[_StyleRun]] = []
        for u in range(nu):
            runs: list[_StyleRun] = []
            for row in range(int(self.u_start[u]), int(self.u_stop[u])):
                if not kept[row].is_option:
                    break
                if runs and runs[-1].american == kept[row].american:
                    runs[-1].stop = row + 1
                else:
                    runs.append(_StyleRun(row, row + 1, kept[row].american))
            self.u_runs.append(runs)

    def _layout_watches(self) -> None:
        ws = self.watches
        n = len(ws)
        self.w_metric = np.array([int(w.metric) - 1 for w in ws], dtype=np.int64)
        self.w_bench = np.array(
            [self._under_index.get(w.benchmark_symbol or DEFAULT_BENCHMARK, -1) if w.metric is Metric.BETA_WEIGHTED else -1 for w in ws],
            dtype=np.int64,
        )
        kind = []
        lower, upper, center, mult, min_hw, max_hw, cost, aversion = ([] for _ in range(8))
        for w in ws:
            band = w.band
            if isinstance(band, StaticBand):
                kind.append(_BAND_STATIC)
                lower.append(band.lower)
                upper.append(band.upper)
                center.append(band.center)
                mult.append(0.0)
                min_hw.append(0.0)
                max_hw.append(0.0)
                cost.append(0.0)
                aversion.append(1.0)
            else:
                kind.append(_BAND_EXPECTED_MOVE if band.method is BandMethod.EXPECTED_MOVE else _BAND_WW)
                lower.append(math.nan)
                upper.append(math.nan)
                center.append(band.center)
                mult.append(band.multiplier)
                min_hw.append(band.min_half_width)
                max_hw.append(band.max_half_width)
                cost.append(band.transaction_cost_ratio)
                aversion.append(band.risk_aversion if band.risk_aversion > 0 else math.nan)
        self.w_band_kind = np.array(kind, dtype=np.int64)
        self.w_static_lower = np.array(lower, dtype=np.float64)
        self.w_static_upper = np.array(upper, dtype=np.float64)
        self.w_center = np.array(center, dtype=np.float64)
        self.w_mult = np.array(mult, dtype=np.float64)
        self.w_min_hw = np.array(min_hw, dtype=np.float64)
        self.w_max_hw = np.array(max_hw, dtype=np.float64)
        self.w_cost = np.array(cost, dtype=np.float64)
        self.w_aversion = np.array(aversion, dtype=np.float64)
        self.w_hysteresis = np.array([w.hysteresis_ratio for w in ws], dtype=np.float64)
        self.w_cooldown = np.array([w.cooldown.total_seconds() for w in ws], dtype=np.float64)
        default_stale = self.settings.default_stale_after.total_seconds()
        self.w_stale_after = np.array(
            [default_stale if w.stale_after is None else w.stale_after.total_seconds() for w in ws], dtype=np.float64
        )
        self.w_created = np.array([_epoch(w.create_time) for w in ws], dtype=np.float64)
        # Live columns (filled from LiveState in _restore_live).
        self.w_state = np.zeros(n, dtype=np.int8)
        self.w_fresh = np.zeros(n, dtype=np.int8)
        self.w_delta = np.full(n, np.nan)
        self.w_lower = np.full(n, np.nan)
        self.w_upper = np.full(n, np.nan)
        # The time-to-breach forecast is computed when read (``_forecasts``), from the inputs of the watch's last
        # evaluation: delta and bounds above, charm, vanna and the summed move (gamma x S x IV) here. A watch
        # evaluated since its forecast was last computed is marked in w_forecast_stale; w_ttb_days holds the
        # computed (or restored) forecasts.
        self.w_charm = np.full(n, np.nan)
        self.w_vanna = np.full(n, np.nan)
        self.w_move = np.full(n, np.nan)
        self.w_forecast_stale = np.zeros(n, dtype=np.bool_)
        self.w_ttb_days = np.full(n, np.nan)
        self.w_evaluated = np.full(n, _NO_TIME)
        self.w_last_alert = np.full(n, _NO_TIME)

    def _layout_pairs(self) -> None:
        pw = self.pair_w.tolist()
        pp = self.pair_p.tolist()
        nu = len(self.underlyings)
        holders: list[set[int]] = [set() for _ in range(nu)]
        for wi, pi in zip(pw, pp):
            holders[int(self.p_under[pi])].add(wi)
        holding = set(pw)
        for wi in holding:
            bench_of_watch = int(self.w_bench[wi])
            if bench_of_watch >= 0:
                holders[bench_of_watch].add(wi)
        self.u_affected: list[_Affected] = []
        for u in range(nu):
            watches = np.array(sorted(holders[u]), dtype=np.int64)
            local = np.full(len(self.watches), -1, dtype=np.int64)
            local[watches] = np.arange(len(watches))
            mask = local[self.pair_w] >= 0 if len(self.pair_w) else np.zeros(0, dtype=np.bool_)
            pair_local = local[self.pair_w[mask]]
            pair_position = self.pair_p[mask]
            pair_metric = self.w_metric[self.pair_w[mask]]
            bench = self.w_bench[watches]
            kind = self.w_band_kind[watches]
            static_lower = self.w_static_lower[watches]
            static_upper = self.w_static_upper[watches]
            hysteresis = self.w_hysteresis[watches]
            deep_lower, deep_upper = alerting.deep_bounds(static_lower, static_upper, hysteresis)
            bench_local = np.flatnonzero(bench >= 0)
            self.u_affected.append(
                _Affected(
                    watches=watches,
                    pair_local=pair_local,
                    pair_position=pair_position,
                    pair_metric=pair_metric,
                    sums=np.empty((_QUANTITIES, len(watches))),
                    bench_local=bench_local,
                    bench_under=bench[bench >= 0],
                    has_bench=len(bench_local) > 0,
                    adaptive=bool((kind != _BAND_STATIC).any()),
                    whalley_wilmott=bool((kind == _BAND_WW).any()),
                    static_lower=static_lower,
                    static_upper=static_upper,
                    static_deep_lower=deep_lower,
                    static_deep_upper=deep_upper,
                    hysteresis=hysteresis,
                    cooldown=self.w_cooldown[watches],
                )
            )
        # Stale checks: (watch, feed symbol) pairs over underlyings and option feed symbols.
        feed_symbols = sorted({self.p_feed_symbol[p] for p in set(pp)} | {self.positions[p].underlying_symbol for p in set(pp)})
        self.feed_symbols = feed_symbols
        feed_index = {s: i for i, s in enumerate(feed_symbols)}
        seen: set[tuple[int, int]] = set()
        for wi, pi in zip(pw, pp):
            seen.add((wi, feed_index[self.positions[pi].underlying_symbol]))
            seen.add((wi, feed_index[self.p_feed_symbol[pi]]))
        ordered = sorted(seen)
        self.stale_w = np.array([a for a, _ in ordered], dtype=np.int64)
        self.stale_s = np.array([b for _, b in ordered], dtype=np.int64)

    def _layout_rows(self) -> None:
        # Per-tick views and buffers, so a tick slices nothing and allocates no constant inputs.
        nu = len(self.underlyings)
        used = np.zeros((nu, 3), dtype=np.bool_)
        if len(self.pair_p):
            used[self.p_under[self.pair_p], self.w_metric[self.pair_w]] = True
        next_state, raises, rearms = alerting.breach_lookups()
        self._columns = _book_kernel.WatchColumns(
            self.w_state, self.w_last_alert, self.w_delta, self.w_charm, self.w_vanna, self.w_move, self.w_lower,
            self.w_upper, self.w_evaluated, self.w_forecast_stale, next_state, raises, rearms,
        )
        kernels = (self.pricer.greeks_kernel(False), self.pricer.greeks_kernel(True))
        self.u_rows: list[_UnderlyingRows] = []
        for u in range(nu):
            for run in self.u_runs[u]:
                rs = slice(run.start, run.stop)
                n = run.stop - run.start
                run.is_call = self.p_is_call[rs]
                run.strike = self.p_strike[rs]
                run.expiry = self.p_expiry[rs]
                run.years = self.p_years[rs]
                run.volatility = self.p_iv[rs]
                run.spot = np.empty(n)
                run.rate = np.full(n, self.settings.rate)
                run.dividend_yield = np.empty(n)
                run.greeks = self.g[:, rs]
                finite = run.expiry[np.isfinite(run.expiry)]
                run.first_expiry = float(finite.min()) if len(finite) else math.inf
            runs = self.u_runs[u]
            self.u_rows.append(
                _UnderlyingRows(
                    runs=runs,
                    start=int(self.u_start[u]),
                    stop=int(self.u_stop[u]),
                    dollars=bool(used[u, 1]),
                    beta_dollars=bool(used[u, 2]),
                    priced=sum(run.stop - run.start for run in runs),
                    step=self._underlying_step(u, kernels, bool(used[u, 1]), bool(used[u, 2])),
                )
            )

    def _underlying_step(
        self, u: int, kernels: tuple[object | None, object | None], dollars: bool, beta_dollars: bool
    ) -> _book_kernel.UnderlyingStep | None:
        runs = self.u_runs[u]
        affected = self.u_affected[u]
        run_kernels = [kernels[run.american] for run in runs]
        if not runs or not len(affected.pair_local) or any(k is None for k in run_kernels):
            return None
        bands = None if affected.adaptive else (
            affected.static_lower, affected.static_upper, affected.static_deep_lower, affected.static_deep_upper,
            affected.cooldown,
        )
        return _book_kernel.UnderlyingStep(
            int(self.u_start[u]), int(self.u_stop[u]),
            [(run.start, run.stop, kernel) for run, kernel in zip(runs, run_kernels)],
            self.p_is_call, self.p_strike, self.p_expiry, self.p_years, self.p_iv, self.p_units, self.settings.rate,
            self.g, (_G_DELTA, _G_GAMMA, _G_CHARM, _G_VANNA), self.contrib, dollars, beta_dollars,
            affected.pair_local, affected.pair_position, affected.pair_metric, affected.sums,
            affected.bench_local, affected.bench_under, self.u_price, affected.watches, self._columns, bands,
        )

    def _restore_live(self) -> None:
        for wi, w in enumerate(self.watches):
            entry = self.live.watches.get(w.watch_id)
            if entry is None or entry[0] != w.generation:
                last_alert = entry[1].last_alert_time if entry is not None else None
                self.live.watches[w.watch_id] = (w.generation, WatchLive(last_alert_time=last_alert))
                if last_alert is not None:
                    self.w_last_alert[wi] = _epoch(last_alert)
                continue
            live = entry[1]
            self.w_state[wi] = int(live.state)
            self.w_fresh[wi] = int(alerting.Freshness.STALE if live.stale else alerting.Freshness.FRESH)
            self.w_delta[wi] = live.current_delta
            self.w_lower[wi] = live.band_lower
            self.w_upper[wi] = live.band_upper
            if live.evaluate_time is not None:
                self.w_evaluated[wi] = _epoch(live.evaluate_time)
            if live.last_alert_time is not None:
                self.w_last_alert[wi] = _epoch(live.last_alert_time)
            if live.time_to_breach is not None:
                self.w_ttb_days[wi] = live.time_to_breach.total_seconds() / 86400.0
        known = set(self._watch_index)
        for stale_id in [k for k in self.live.watches if k not in known]:
            del self.live.watches[stale_id]

    # ------------------------------------------------------------------------------------------- queries

    def refresh_forecasts(self, watch_ids: Iterable[str] | None = None) -> None:
        """Bring the time-to-breach forecasts of ``watch_ids`` (default: every watch) up to date in one pass.

        ``live_state`` computes a stale forecast itself; a caller about to read many watches calls this first.
        """
        if watch_ids is None:
            self._forecasts(None)
            return
        index = self._watch_index
        self._forecasts(np.fromiter((index[w] for w in watch_ids if w in index), dtype=np.int64))

    def _forecasts(self, among: npt.NDArray[np.int64] | None) -> None:
        # Bring w_ttb_days up to date for the watches (``among``, else all) evaluated since their forecast was
        # last computed, in one vectorised pass (the forecast is elementwise, so a subset gets the same values):
        # armed watches get the forecast of their last evaluation, others none, exactly as if it had been
        # computed at that tick. The state now is the state of that evaluation: only NO_DATA evaluations, which
        # never move a watch, follow it without marking it. An alert's write reads a few watches: computing
        # every stale forecast of a 10,000-watch book there held the event loop ~2 ms.
        stale = np.flatnonzero(self.w_forecast_stale) if among is None else among[self.w_forecast_stale[among]]
        if not len(stale):
            return
        ttb = analytics.time_to_breach_days(
            self.w_delta[stale],
            self.w_lower[stale],
            self.w_upper[stale],
            self.w_charm[stale],
            analytics.expected_move_half_width(self.w_move[stale]),
            self.w_vanna[stale],
            self.settings.vol_of_vol_points,
            self.settings.forecast_horizon_days,
        )
        ttb[self.w_state[stale] != _ARMED] = np.nan
        self.w_ttb_days[stale] = ttb
        self.w_forecast_stale[stale] = False

    def live_state(self, watch_id: str) -> WatchLive | None:
        """The live state of a watch, or None when the book does not hold it."""
        wi = self._watch_index.get(watch_id)
        if wi is None:
            return None
        if self.w_forecast_stale[wi]:
            self._forecasts(np.array([wi], dtype=np.int64))
        ttb = self.w_ttb_days[wi]
        return WatchLive(
            state=WatchState(int(self.w_state[wi])),
            current_delta=float(self.w_delta[wi]),
            band_lower=float(self.w_lower[wi]),
            band_upper=float(self.w_upper[wi]),
            time_to_breach=None if math.isnan(ttb) else timedelta(days=float(ttb)),
            evaluate_time=_datetime(float(self.w_evaluated[wi])),
            last_alert_time=_datetime(float(self.w_last_alert[wi])),
            stale=bool(self.w_fresh[wi] == alerting.Freshness.STALE),
        )

    def export_live(self) -> LiveState:
        """The live state of every watch, to carry into a rebuilt book."""
        self._forecasts(None)
        for watch in self.watches:
            live = self.live_state(watch.watch_id)
            assert live is not None
            self.live.watches[watch.watch_id] = (watch.generation, live)
        return self.live

    def snapshot_live(self, watch_ids: Iterable[str]) -> dict[str, WatchLive]:
        """Live states of the named watches (for persistence), refreshing ``LiveState``."""
        out: dict[str, WatchLive] = {}
        watch_ids = list(watch_ids)
        self.refresh_forecasts(watch_ids)
        for watch_id in watch_ids:
            live = self.live_state(watch_id)
            if live is not None:
                out[watch_id] = live
        return out

    def machine_keys(self, watch_ids: Iterable[str] | None = None) -> dict[str, tuple[int, float, bool]]:
        """The state-machine values of the named watches the book holds (all without names), read from the
        columns in one pass: what persisting compares.

        Each is (state, last alert as epoch seconds or -inf, stale), the values ``live_state`` reports, at a fraction
        of a microsecond a watch where building a live state costs ~12 µs.
        """
        if watch_ids is None:
            ids: list[str] = list(self._watch_index)
            rows: slice | I64 = slice(None)
        else:
            index = self._watch_index
            ids = [w for w in watch_ids if w in index]
            rows = np.array([index[w] for w in ids], dtype=np.int64)
        stale = (self.w_fresh[rows] == alerting.Freshness.STALE).tolist()
        return dict(zip(ids, zip(self.w_state[rows].tolist(), self.w_last_alert[rows].tolist(), stale, strict=True),
                        strict=True))

    def kernel_seconds(self) -> float:
        """Time the compiled ticks (``_book_kernel.UnderlyingStep``) spent inside the pricer's C kernel."""
        return sum(rows.step.kernel_seconds for rows in self.u_rows if rows.step is not None)

    @functools.cached_property
    def symbols(self) -> frozenset[str]:
        """Every symbol whose quotes or Greeks the book uses (fixed for the book's life: a change rebuilds it)."""
        return frozenset(self.underlyings) | frozenset(self._iv_rows)

    # ------------------------------------------------------------------------------------------- events

    def on_greeks(self, symbol: str, volatility: float, when: datetime) -> None:
        """Record an option's implied vol (used from the next tick of its underlying on)."""
        if not (volatility > 0.0 and math.isfinite(volatility)):
            return
        self.market.ivs[symbol] = volatility
        self.market.updated[symbol] = _epoch(when)
        rows = self._iv_rows_arr.get(symbol)
        if rows is not None:
            self.p_iv[rows] = volatility

    def underlyings_of(self, option_symbols: Iterable[str]) -> list[str]:
        """The underlyings of the given option feed symbols that the book holds, in first-seen order."""
        seen: dict[str, None] = {}
        for symbol in option_symbols:
            rows = self._iv_rows_arr.get(symbol)
            if rows is not None and len(rows):
                seen[self.underlyings[int(self.p_under[rows[0]])]] = None
        return list(seen)

    def on_quote(self, symbol: str, price: float, when: datetime) -> Evaluation:
        """Take a new price of an underlying or benchmark: re-price its positions and evaluate its watches.

        Args:
            symbol: The underlying's symbol.
            price: Its price (mark) per share; non-positive or NaN prices are ignored.
            when: When the tick was observed.

        Returns:
            The alerts raised (drafts) and how much was evaluated.
        """
        if not (price > 0.0 and math.isfinite(price)):
            return Evaluation([], 0, 0)
        now = _epoch(when)
        self.market.prices[symbol] = price
        self.market.updated[symbol] = now
        u = self._under_index.get(symbol)
        if u is None:
            return Evaluation([], 0, 0)
        self.u_price[u] = price
        rows = self.u_rows[u]
        affected = self.u_affected[u]
        if rows.step is not None:
            # The compiled path: pricing through the pricer's C kernel, sums and (static bands) the step.
            moved = rows.step.tick(price, self.u_yield[u], self.u_beta[u] * price, now)
            if affected.adaptive:
                moved = self._step(u, affected, now)
            priced = rows.priced
        else:
            priced = self._reprice(u, price, now)
            if len(affected.watches) == 0:
                return Evaluation([], 0, priced)
            _book_kernel.watch_sums(
                self.contrib, affected.pair_local, affected.pair_position, affected.pair_metric, affected.sums
            )
            if affected.has_bench:
                affected.sums[:, affected.bench_local] /= self.u_price[affected.bench_under]
            moved = self._step(u, affected, now)
        alerts = [] if moved is None else self._alerts(u, affected, moved, when)
        return Evaluation(alerts, len(affected.watches), priced)

    def _reprice(self, u: int, spot: float, now: float) -> int:
        rows = self.u_rows[u]
        if rows.start == rows.stop:
            return 0
        priced = 0
        dividend_yield = self.u_yield[u]
        for run in rows.runs:
            years = run.years
            np.subtract(run.expiry, now, out=years)
            years /= _SECONDS_PER_YEAR
            run.spot.fill(spot)
            run.dividend_yield.fill(dividend_yield)
            block = run.greeks
            self.pricer.greeks_into(
                is_call=run.is_call,
                spot=run.spot,
                strike=run.strike,
                expiry_years=years,
                volatility=run.volatility,
                rate=run.rate,
                dividend_yield=run.dividend_yield,
                american=run.american,
                out=block,
            )
            # (T - now) / year is monotonic in T: the earliest expiry tells whether any option has expired.
            if (run.first_expiry - now) / _SECONDS_PER_YEAR <= 0.0:
                # At or past expiry an option is its exercise value: delta 1/-1 in the money, 0 out of it.
                expired = years <= 0.0
                calls = run.is_call
                strikes = run.strike
                itm = np.where(calls, spot > strikes, spot < strikes)
                intrinsic = np.where(itm, np.where(calls, 1.0, -1.0), 0.0)
                block[:, expired] = 0.0
                block[_G_DELTA, expired] = intrinsic[expired]
            priced += run.stop - run.start
        # delta, gamma, charm, vanna and move per position in shares, then x S and x beta S for the other metrics.
        _book_kernel.exposures(
            self.g_delta, self.g_gamma, self.g_charm, self.g_vanna, self.p_units, self.p_iv, spot,
            self.u_beta[u] * spot, rows.start, rows.stop, self.contrib, rows.dollars, rows.beta_dollars,
        )
        return priced

    def _step(self, u: int, affected: _Affected, now: float) -> tuple[list[int], list[float], list[int]] | None:
        # Zones, the breach table and the live columns' write-back over the sums of the tick (_book_kernel).
        ws = affected.watches
        sums = affected.sums
        if affected.adaptive:
            kind = self.w_band_kind[ws]
            adaptive = kind != _BAND_STATIC
            raw = analytics.expected_move_half_width(sums[4])
            if affected.whalley_wilmott:
                raw = np.where(kind == _BAND_WW, self._ww_half_width(u, affected, ws, len(ws)), raw)
            lo, hi = analytics.adaptive_bounds(
                self.w_center[ws], raw, self.w_mult[ws], self.w_min_hw[ws], self.w_max_hw[ws]
            )
            lower = np.where(adaptive, lo, affected.static_lower)
            upper = np.where(adaptive, hi, affected.static_upper)
            deep_lower, deep_upper = alerting.deep_bounds(lower, upper, affected.hysteresis)
        else:
            lower, upper = affected.static_lower, affected.static_upper
            deep_lower, deep_upper = affected.static_deep_lower, affected.static_deep_upper
        return self._columns.step(ws, sums, lower, upper, deep_lower, deep_upper, affected.cooldown, now)

    def _alerts(
        self, u: int, affected: _Affected, moved: tuple[list[int], list[float], list[int]], when: datetime
    ) -> list[Alert]:
        # The step recorded each alerting watch's delta and band (an alerting zone is never NO_DATA).
        ws = affected.watches
        alerting_at, before, rearmed_at = moved
        self.rearmed.extend(self.watches[int(ws[j])].watch_id for j in rearmed_at)
        alerts = []
        for local, prior in zip(alerting_at, before):
            wi = int(ws[local])
            after = float(self.w_delta[wi])
            alerts.append(
                self._breach_alert(
                    wi, u, when,
                    delta_before=prior if math.isfinite(prior) else after,
                    delta_after=after,
                    lower=float(self.w_lower[wi]),
                    upper=float(self.w_upper[wi]),
                )
            )
        return alerts

    def _ww_half_width(self, u: int, affected: _Affected, ws: I64, n: int) -> F64:
        # Whalley-Wilmott works in shares of the single underlying of position and underlying watches.
        gamma_shares: F64 = np.bincount(
            affected.pair_local,
            weights=self.c_gamma[0, affected.pair_position],
            minlength=n,
        ).astype(np.float64, copy=False)
        weight = np.abs(self.c_gamma[0, affected.pair_position])
        years = np.bincount(affected.pair_local, weights=weight * self.p_years[affected.pair_position], minlength=n)
        total = np.bincount(affected.pair_local, weights=weight, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = np.where(total > 0, years / total, 0.0)
        spot = self.u_price[u]
        shares = analytics.whalley_wilmott_half_width(
            gamma_shares, np.full(n, spot), self.w_cost[ws], self.w_aversion[ws], self.settings.rate, tau
        )
        metric = self.w_metric[ws]
        bench = self.w_bench[ws]
        bench_price = np.where(bench >= 0, self.u_price[np.maximum(bench, 0)], np.nan)
        scale = np.select([metric == 0, metric == 1], [1.0, spot], self.u_beta[u] * spot / bench_price)
        return shares * scale

    def _positions_of(self, wi: int) -> npt.NDArray[np.int64]:
        return self.pair_p[self.pair_w == wi]

    def _breach_alert(
        self, wi: int, u: int, when: datetime, *, delta_before: float, delta_after: float, lower: float, upper: float
    ) -> Alert:
        watch = self.watches[wi]
        rows = self._positions_of(wi)
        units = self.p_units[rows]
        exposure = ExposureGreeks(
            delta_shares=float(np.nansum(self.g_delta[rows] * units)),
            gamma=float(np.nansum(self.g_gamma[rows] * units)),
            theta=float(np.nansum(self.g_theta[rows] * units)),
            vega=float(np.nansum(self.g_vega[rows] * units)),
            vanna=float(np.nansum(self.g_vanna[rows] * units)),
            charm=float(np.nansum(self.g_charm[rows] * units)),
        )
        options = rows[self.p_is_option[rows]]
        weights = np.abs(self.g_vega[options] * self.p_units[options])
        ivs = self.p_iv[options]
        usable = np.isfinite(weights) & np.isfinite(ivs)
        if usable.any() and weights[usable].sum() > 0:
            iv = float(np.average(ivs[usable], weights=weights[usable]))
        elif usable.any():
            iv = float(ivs[usable].mean())
        else:
            iv = 0.0
        symbol = self.underlyings[u]
        price = float(self.u_price[u])
        metric = watch.metric
        band = watch.band
        middle = band.center if isinstance(band, (StaticBand, AdaptiveBand)) else (lower + upper) / 2.0
        need = middle - delta_after
        benchmark = watch.benchmark_symbol or DEFAULT_BENCHMARK
        if metric is Metric.BETA_WEIGHTED:
            bench_index = self._under_index.get(benchmark)
            bench_price = float(self.u_price[bench_index]) if bench_index is not None else math.nan
            beta = float(self.u_beta[u])
            hedge_symbol, hedge = benchmark, need
        else:
            bench_price, beta = 0.0, 1.0
            benchmark = ""
            hedge_symbol = symbol
            hedge = need if metric is Metric.SHARES else need / price
        direction = BreachDirection.ABOVE_UPPER if delta_after > upper else BreachDirection.BELOW_LOWER
        detail = DeltaBreach(
            metric=metric,
            delta_before=delta_before,
            delta_after=delta_after,
            band_lower=lower,
            band_upper=upper,
            direction=direction,
            underlying_symbol=symbol,
            underlying_price=price,
            implied_volatility=iv,
            exposure=exposure,
            benchmark_symbol=benchmark,
            benchmark_price=bench_price if math.isfinite(bench_price) else 0.0,
            beta=beta if math.isfinite(beta) else 1.0,
            hedge_symbol=hedge_symbol,
            suggested_hedge_quantity=float(round(hedge, 2)),
            tick_time=when,
        )
        name = watch.display_name or watch.target.describe()
        side = "above" if direction is BreachDirection.ABOVE_UPPER else "below"
        unit = {Metric.SHARES: "shares", Metric.DOLLARS: "$", Metric.BETA_WEIGHTED: f"{benchmark} shares"}[metric]
        title = f"{name} delta {delta_after:,.1f} {side} band [{lower:,.1f}, {upper:,.1f}]"
        verb = "buy" if hedge >= 0 else "sell"
        message = (
            f"Watch {name!r} on account {watch.account_number}: delta moved from {delta_before:,.2f} to "
            f"{delta_after:,.2f} {unit}, {side} its band [{lower:,.2f}, {upper:,.2f}]. {symbol} at {price:,.2f}, "
            f"IV {iv:.1%}. Exposure: delta {exposure.delta_shares:,.1f} sh, gamma {exposure.gamma:,.2f}, "
            f"charm {exposure.charm:,.2f}/day, vanna {exposure.vanna:,.2f}/vol pt. "
            f"Suggested hedge (advice only): {verb} {abs(hedge):,.0f} {hedge_symbol} to return to the band middle "
            f"{middle:,.2f}."
        )
        return Alert(
            alert_id="",
            user_id=watch.user_id,
            account_number=watch.account_number,
            watch_id=watch.watch_id,
            kind=AlertKind.DELTA_BREACH,
            severity=watch.severity,
            state=AlertState.OPEN,
            title=title,
            message=message,
            raise_time=when,
            detail=detail,
        )

    def sweep_stale(self, when: datetime, *, market_open: bool) -> list[Alert]:
        """Run the stale machine of every watch.

        Args:
            when: Now.
            market_open: Whether the watched symbols' market is open now (False: nothing is stale).

        Returns:
            Draft stale-data alerts.
        """
        n = len(self.watches)
        if n == 0:
            return []
        now = _epoch(when)
        last = np.array([self.market.updated.get(s, math.nan) for s in self.feed_symbols], dtype=np.float64)
        oldest = np.full(n, np.inf)
        if len(self.stale_w):
            effective = np.fmax(last[self.stale_s], self.w_created[self.stale_w])
            np.minimum.at(oldest, self.stale_w, effective)
        limit = self.w_stale_after
        with np.errstate(invalid="ignore"):
            stale_now = market_open & (limit > 0) & np.isfinite(oldest) & ((now - oldest) > limit)
        next_fresh, raise_alert = alerting.stale_step(self.w_fresh, stale_now)
        self.w_fresh[:] = next_fresh
        alerts = []
        for wi in np.flatnonzero(raise_alert):
            watch = self.watches[int(wi)]
            mine = self.stale_s[self.stale_w == wi]
            candidates = [(self.market.updated.get(self.feed_symbols[s], -math.inf), self.feed_symbols[s]) for s in mine]
            last_time, symbol = min(candidates)
            limit_td = timedelta(seconds=float(limit[wi]))
            last_dt = _datetime(last_time)
            name = watch.display_name or watch.target.describe()
            since = f"since {last_dt:%Y-%m-%d %H:%M:%S} UTC" if last_dt else "since the watch was created"
            alerts.append(
                Alert(
                    alert_id="",
                    user_id=watch.user_id,
                    account_number=watch.account_number,
                    watch_id=watch.watch_id,
                    kind=AlertKind.STALE_DATA,
                    severity=watch.severity,
                    state=AlertState.OPEN,
                    title=f"{name}: no data for {symbol.strip()} {since}",
                    message=(
                        f"Watch {name!r} on account {watch.account_number} cannot be evaluated: {symbol.strip()} "
                        f"has had no quote or Greeks {since} (limit {limit_td}) while the market is open."
                    ),
                    raise_time=when,
                    detail=StaleData(symbol=symbol, last_update_time=last_dt, stale_after=limit_td),
                )
            )
        return alerts

    def set_betas(self, betas: dict[str, float]) -> None:
        """Record betas to SPY (from the broker's market metrics)."""
        self.market.betas.update(betas)
        for symbol, beta in betas.items():
            u = self._under_index.get(symbol)
            if u is not None:
                self.u_beta[u] = self.market.beta(symbol)

    def set_dividend_yields(self, yields: dict[str, float]) -> None:
        """Record dividend yields."""
        self.market.dividend_yields.update(yields)
        for symbol, value in yields.items():
            u = self._under_index.get(symbol)
            if u is not None:
                self.u_yield[u] = value

