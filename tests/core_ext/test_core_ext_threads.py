"""The American array kernel on several threads: same bits for any thread count, and how the count is set."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from core_ext import Status, get_threads, greeks_array, set_threads

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm", "status")


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = get_threads()
    yield
    set_threads(before)


def _book(n: int, seed: int) -> tuple[np.ndarray, ...]:
    # Puts and calls, with and without dividends (2002 formula or European closed form), a few options
    # expiring now and a few invalid ones, shuffled so that every chunk of the kernel holds a mix.
    rng = np.random.default_rng(seed)
    is_call = rng.integers(0, 2, n).astype(bool)
    spot = rng.uniform(50.0, 150.0, n)
    strike = rng.uniform(50.0, 150.0, n)
    years = rng.uniform(1 / 365, 3.0, n)
    vol = rng.uniform(0.05, 1.0, n)
    rate = rng.uniform(0.0, 0.08, n)
    dividend = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.0, 0.06, n))
    years[rng.choice(n, 20, replace=False)] = 0.0
    vol[rng.choice(n, 10, replace=False)] = np.nan
    rate[rng.choice(n, 10, replace=False)] = -0.01
    return is_call, spot, strike, years, vol, rate, dividend


def _outputs(threads: int, inputs: tuple[np.ndarray, ...]) -> list[bytes]:
    set_threads(threads)
    result = greeks_array(*inputs, style="american")
    return [np.asarray(getattr(result, name)).tobytes() for name in FIELDS]


@pytest.mark.parametrize("n", [23, 64, 1000, 4099])
def test_american_greeks_are_bit_identical_for_any_thread_count(n: int) -> None:
    inputs = _book(n, seed=n)
    one = _outputs(1, inputs)
    for threads in (2, 3, 4):
        assert _outputs(threads, inputs) == one, threads


def test_american_greeks_on_threads_flag_invalid_options() -> None:
    inputs = _book(1000, seed=5)
    set_threads(2)
    result = greeks_array(*inputs, style="american")
    invalid = np.isnan(inputs[4]) | (inputs[5] < 0.0)
    assert np.array_equal(np.asarray(result.status) != Status.OK, invalid)
    assert np.isnan(np.asarray(result.price)[invalid]).all()
    assert np.isfinite(np.asarray(result.price)[~invalid]).all()


def test_set_threads_changes_the_count() -> None:
    set_threads(3)
    assert get_threads() == 3
    set_threads(1)
    assert get_threads() == 1


@pytest.mark.parametrize("threads", [0, -2])
def test_set_threads_below_one_raises(threads: int) -> None:
    with pytest.raises(ValueError, match="threads must be >= 1"):
        set_threads(threads)


@pytest.mark.parametrize("threads", [2.0, "2", True])
def test_set_threads_not_an_int_raises(threads: object) -> None:
    with pytest.raises(TypeError, match="threads must be an int"):
        set_threads(threads)  # type: ignore[arg-type]


def _import_in_child(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **environment}
    code = "import os, core_ext; print(core_ext.get_threads(), os.environ.get('GOMP_SPINCOUNT'))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)


def test_thread_count_comes_from_the_environment() -> None:
    result = _import_in_child({"TASTYPLAT_CORE_THREADS": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "3"


def test_thread_count_defaults_to_at_most_two_cpus() -> None:
    result = _import_in_child({})
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[0]) == min(2, len(os.sched_getaffinity(0)))


def test_invalid_thread_count_in_the_environment_stops_the_import() -> None:
    result = _import_in_child({"TASTYPLAT_CORE_THREADS": "zero"})
    assert result.returncode != 0
    assert "TASTYPLAT_CORE_THREADS must be an integer >= 1, got 'zero'" in result.stderr


def test_bounded_spin_is_set_unless_the_environment_chooses() -> None:
    assert _import_in_child({}).stdout.split()[1] == "20000"
    assert _import_in_child({"GOMP_SPINCOUNT": "5"}).stdout.split()[1] == "5"
    assert _import_in_child({"OMP_WAIT_POLICY": "passive"}).stdout.split()[1] == "None"
