"""The book's one-call compiled tick (a pricer with a C kernel) gives exactly what its step-by-step path gives."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from services.deltamonitor.adapters.pricing import CoreExtPricer
from services.deltamonitor.domain.book import Book, BookSettings
from services.deltamonitor.domain.model import (
    AccountTarget,
    AdaptiveBand,
    BandMethod,
    HeldPosition,
    Metric,
    PositionTarget,
    StaticBand,
    UnderlyingTarget,
    Watch,
)
from tests.unit.deltamonitor.conftest import NOW, watch

UNDERLYINGS = ("SPY", "QQQ", "IWM", "AAPL")


class SteppedCoreExtPricer(CoreExtPricer):
    """core_ext without its C kernel: the book re-prices through greeks_into and evaluates step by step."""

    def greeks_kernel(self, american: bool) -> object | None:
        return None


def _positions_and_watches(rng: np.random.Generator) -> tuple[list[HeldPosition], list[Watch]]:
    positions: list[HeldPosition] = []
    watches: list[Watch] = []
    for a in range(6):
        account = f"ACC{a}"
        for i in range(12):
            u = UNDERLYINGS[(a + i) % len(UNDERLYINGS)]
            # One option already expired (exercise value) in the first account; both styles in every underlying.
            days = -1 if (a, i) == (0, 0) else int(rng.integers(3, 300))
            symbol = f"{u}-{a}-{i}"
            positions.append(HeldPosition(
                account, symbol, u, float(rng.integers(-10, 10) or 1), 100.0, True, bool(i % 2),
                float(round(100.0 * rng.uniform(0.85, 1.15))), NOW + timedelta(days=days), bool(i % 3), f".{symbol}",
            ))
            watches.append(watch(StaticBand(-300.0, 300.0), watch_id=f"p{a}-{i}", account=account,
                                 target=PositionTarget(symbol), hysteresis=0.3))
        positions.append(HeldPosition(account, UNDERLYINGS[a % 4], UNDERLYINGS[a % 4], float(50 * (a - 3)), 1.0))
        u = UNDERLYINGS[a % len(UNDERLYINGS)]
        watches.append(watch(StaticBand(-2e4, 2e4), watch_id=f"d{a}", account=account, target=UnderlyingTarget(u),
                             metric=Metric.DOLLARS, cooldown=timedelta(seconds=30)))
        watches.append(watch(StaticBand(-400.0, 400.0), watch_id=f"b{a}", account=account, target=AccountTarget(),
                             metric=Metric.BETA_WEIGHTED, benchmark="SPY" if a % 2 else "QQQ"))
        method = BandMethod.EXPECTED_MOVE if a % 2 else BandMethod.WHALLEY_WILMOTT
        watches.append(watch(AdaptiveBand(method, 0.0, 1.0, 5.0, 500.0, 0.002, 1.0), watch_id=f"x{a}",
                             account=account, target=UnderlyingTarget(u)))
    return positions, watches


def _book(pricer: CoreExtPricer, positions: list[HeldPosition], watches: list[Watch]) -> Book:
    b = Book(watches, positions, pricer=pricer, settings=BookSettings())
    b.set_betas({"QQQ": 1.1, "IWM": 1.2, "AAPL": 1.3})
    b.set_dividend_yields({"SPY": 0.013, "AAPL": 0.005})
    rng = np.random.default_rng(2)
    for p in positions:
        # Every fifth option has no IV yet: its watches cannot be evaluated (NO_DATA) until it has one.
        if p.is_option and p.streamer_symbol and rng.random() > 0.2:
            b.on_greeks(p.streamer_symbol, float(rng.uniform(0.1, 0.6)), NOW)
    return b


_COLUMNS = ("w_state", "w_delta", "w_lower", "w_upper", "w_charm", "w_vanna", "w_move", "w_evaluated",
            "w_last_alert", "w_forecast_stale", "g", "contrib", "p_years")


@pytest.mark.parametrize(("seed", "parallel_ticks"), [(1, False), (2, False), (3, True)])
def test_compiled_tick_equals_the_step_by_step_path_bit_for_bit(seed: int, parallel_ticks: bool) -> None:
    rng = np.random.default_rng(seed)
    positions, watches = _positions_and_watches(rng)
    compiled = _book(CoreExtPricer(parallel_ticks=parallel_ticks), positions, watches)
    stepped = _book(SteppedCoreExtPricer(), positions, watches)
    assert all(rows.step is not None for rows in compiled.u_rows)
    assert all(rows.step is None for rows in stepped.u_rows)

    prices = {u: 100.0 for u in UNDERLYINGS}
    raised = 0
    for k in range(400):
        u = UNDERLYINGS[int(rng.integers(0, len(UNDERLYINGS)))]
        prices[u] *= float(np.exp(rng.normal(0.0, 0.03)))
        when = NOW + timedelta(seconds=2 * k)
        got = compiled.on_quote(u, prices[u], when)
        want = stepped.on_quote(u, prices[u], when)
        assert (got.evaluated, got.priced) == (want.evaluated, want.priced)
        assert got.alerts == want.alerts
        raised += len(got.alerts)
        if k % 50 == 0:
            compiled.on_greeks(positions[k % len(positions)].streamer_symbol or "", 0.33, when)
            stepped.on_greeks(positions[k % len(positions)].streamer_symbol or "", 0.33, when)
    for name in _COLUMNS:
        np.testing.assert_array_equal(getattr(compiled, name), getattr(stepped, name), err_msg=name)
    assert compiled.rearmed == stepped.rearmed
    # The walk crosses bands both ways: alerts and re-arms were compared, not just quiet ticks.
    assert raised > 0 and compiled.rearmed
    assert np.isfinite(compiled.w_delta).any() and np.isnan(compiled.g[1]).any()


def test_a_kernel_that_is_not_a_greeks_kernel_capsule_is_refused() -> None:
    class WrongKernel(CoreExtPricer):
        def greeks_kernel(self, american: bool) -> object | None:
            return object()

    positions, watches = _positions_and_watches(np.random.default_rng(1))
    with pytest.raises(TypeError, match="tastyplat.greeks_kernel"):
        Book(watches, positions, pricer=WrongKernel(), settings=BookSettings())
