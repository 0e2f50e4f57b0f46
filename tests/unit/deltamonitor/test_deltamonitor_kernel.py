"""The book's compiled per-tick steps give exactly what the NumPy expressions and the alerting table give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.deltamonitor.domain import _book_kernel, alerting
from services.deltamonitor.domain.model import WatchState

QUANTITIES, METRICS = 5, 3


def _greeks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    rows = [rng.normal(size=n) for _ in range(4)]
    for row in rows:
        row[rng.random(n) < 0.05] = np.nan  # options that did not price
    return tuple(rows)


def test_exposures_are_the_numpy_products_bit_for_bit_and_only_in_their_range() -> None:
    rng = np.random.default_rng(3)
    n = 257
    delta, gamma, charm, vanna = _greeks(rng, n)
    units = rng.integers(-20, 20, n).astype(np.float64) * 100.0
    iv = rng.uniform(0.1, 0.9, n)
    iv[::7] = 0.0  # share rows
    spot, beta = 431.17, 1.23
    start, stop = 40, 200
    contrib = np.full((QUANTITIES, METRICS, n), -1.0)
    _book_kernel.exposures(delta, gamma, charm, vanna, units, iv, spot, beta * spot, start, stop, contrib, True, False)

    # The expressions the kernel replaced (book.py before it): shares, move, then x S.
    sl = slice(start, stop)
    shares = np.stack([delta[sl], gamma[sl], charm[sl], vanna[sl], np.zeros(stop - start)]) * units[sl]
    shares[4] = shares[1] * spot
    shares[4] *= iv[sl]
    np.testing.assert_array_equal(contrib[:, 0, sl], shares)
    np.testing.assert_array_equal(contrib[:, 1, sl], shares * spot)
    assert (contrib[:, 2, :] == -1.0).all()  # beta-dollars not asked for
    assert (contrib[:, :, :start] == -1.0).all() and (contrib[:, :, stop:] == -1.0).all()

    _book_kernel.exposures(delta, gamma, charm, vanna, units, iv, spot, beta * spot, start, stop, contrib, False, True)
    np.testing.assert_array_equal(contrib[:, 2, sl], shares * (beta * spot))


def test_watch_sums_equal_bincount_over_the_pairs() -> None:
    rng = np.random.default_rng(5)
    n_positions, n_watches, n_pairs = 300, 40, 700
    contrib = rng.normal(size=(QUANTITIES, METRICS, n_positions)) * 1e3
    contrib[rng.random(contrib.shape) < 0.01] = np.nan
    pair_local = rng.integers(0, n_watches - 3, n_pairs)  # the last watches have no pair: their sums are 0
    pair_position = rng.integers(0, n_positions, n_pairs)
    pair_metric = rng.integers(0, METRICS, n_pairs)
    sums = np.full((QUANTITIES, n_watches), 99.0)
    _book_kernel.watch_sums(contrib, pair_local, pair_position, pair_metric, sums)
    for q in range(QUANTITIES):
        want = np.bincount(pair_local, weights=contrib[q, pair_metric, pair_position], minlength=n_watches)
        np.testing.assert_array_equal(sums[q], want)
    assert (sums[:, -3:] == 0.0).all()


def test_watch_sums_reject_a_pair_outside_the_arrays() -> None:
    contrib = np.zeros((QUANTITIES, METRICS, 4))
    one = np.array([0], dtype=np.int64)
    with pytest.raises(IndexError):
        _book_kernel.watch_sums(contrib, one, np.array([4], dtype=np.int64), one * 0, np.zeros((QUANTITIES, 2)))
    with pytest.raises(IndexError):
        _book_kernel.watch_sums(contrib, np.array([2], dtype=np.int64), one, one * 0, np.zeros((QUANTITIES, 2)))
    with pytest.raises(ValueError):
        _book_kernel.watch_sums(contrib, one, one, np.zeros(2, dtype=np.int64), np.zeros((QUANTITIES, 2)))


def _columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "state": rng.integers(0, len(WatchState), n).astype(np.int8),
        "last_alert": np.where(rng.random(n) < 0.3, -np.inf, 1000.0 - rng.uniform(0, 100, n)),
        "delta": rng.normal(size=n),
        "charm": rng.normal(size=n),
        "vanna": rng.normal(size=n),
        "move": rng.normal(size=n),
        "lower": rng.normal(size=n),
        "upper": rng.normal(size=n),
        "evaluated": rng.uniform(0, 900, n),
        "forecast_stale": rng.random(n) < 0.5,
    }


def test_step_follows_the_breach_table_and_writes_back_what_the_numpy_evaluation_did() -> None:
    rng = np.random.default_rng(11)
    n_book, now = 500, 1000.0
    columns = _columns(n_book, rng)
    expected = {k: v.copy() for k, v in columns.items()}
    kernel = _book_kernel.WatchColumns(*columns.values(), *alerting.breach_lookups())

    ws = np.sort(rng.choice(n_book, 300, replace=False)).astype(np.int64)
    n = len(ws)
    sums = rng.normal(scale=2.0, size=(QUANTITIES, n))
    sums[0, rng.random(n) < 0.05] = np.nan
    lower = np.full(n, -1.5)
    upper = np.full(n, 1.5)
    lower[rng.random(n) < 0.03] = np.nan
    upper[rng.random(n) < 0.03] = np.nan
    hysteresis = rng.uniform(0.0, 0.5, n)
    deep_lower, deep_upper = alerting.deep_bounds(lower, upper, hysteresis)
    cooldown = rng.choice([0.0, 30.0, 300.0], n)

    moved = kernel.step(ws, sums, lower, upper, deep_lower, deep_upper, cooldown, now)

    zones = alerting.zones_within(sums[0], lower, upper, deep_lower, deep_upper)
    cooldown_over = (now - expected["last_alert"][ws]) >= cooldown
    next_state, raise_alert, rearmed = alerting.breach_moves(expected["state"][ws], zones, cooldown_over)
    assert raise_alert.any() and rearmed.any() and (zones == alerting.Zone.NO_DATA).any()  # every path is taken
    before = expected["delta"][ws][raise_alert]
    expected["state"][ws] = next_state
    expected["last_alert"][ws[raise_alert]] = now
    evaluated = zones != alerting.Zone.NO_DATA
    target = ws[evaluated]
    for name, values in (("delta", sums[0]), ("charm", sums[2]), ("vanna", sums[3]), ("move", sums[4]),
                         ("lower", lower), ("upper", upper)):
        expected[name][target] = values[evaluated]
    expected["evaluated"][target] = now
    expected["forecast_stale"][target] = True

    assert moved is not None
    alert_at, delta_before, rearm_at = moved
    assert alert_at == np.flatnonzero(raise_alert).tolist()
    np.testing.assert_array_equal(np.array(delta_before), before)
    assert rearm_at == np.flatnonzero(rearmed).tolist()
    for name in columns:
        np.testing.assert_array_equal(columns[name], expected[name], err_msg=name)


def test_step_reports_nothing_when_no_watch_moves_across_the_table() -> None:
    rng = np.random.default_rng(2)
    columns = _columns(10, rng)
    columns["state"][:] = int(WatchState.ARMED)
    kernel = _book_kernel.WatchColumns(*columns.values(), *alerting.breach_lookups())
    ws = np.arange(10, dtype=np.int64)
    inside = np.zeros((QUANTITIES, 10))
    band = np.ones(10)
    assert kernel.step(ws, inside, -band, band, -band / 2, band / 2, np.zeros(10), 5.0) is None
    assert (columns["state"] == int(WatchState.ARMED)).all() and (columns["evaluated"] == 5.0).all()


def test_step_rejects_mismatched_lengths_and_watches_outside_the_book() -> None:
    rng = np.random.default_rng(4)
    columns = _columns(4, rng)
    columns["state"][:] = 0
    kernel = _book_kernel.WatchColumns(*columns.values(), *alerting.breach_lookups())
    sums, band = np.zeros((QUANTITIES, 2)), np.ones(2)
    with pytest.raises(ValueError):
        kernel.step(np.array([0, 1], dtype=np.int64), sums, band, band, band, band, np.ones(3), 0.0)
    with pytest.raises(IndexError):
        kernel.step(np.array([0, 4], dtype=np.int64), sums, band, band, band, band, band, 0.0)
    short_state = [np.zeros(3, dtype=np.int8), *list(columns.values())[1:]]
    with pytest.raises(ValueError):
        _book_kernel.WatchColumns(*short_state, *alerting.breach_lookups())


def test_stubs_match_the_compiled_module() -> None:
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "services.deltamonitor.domain._book_kernel"],
        cwd=root, capture_output=True, text=True, timeout=110, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
