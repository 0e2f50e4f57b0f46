"""core_ext public API: types, units, validation, expiry now, statuses and the array forms."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import core_ext
from core_ext import (
    Greeks,
    GreeksArray,
    NoConvergence,
    PriceAboveMaximum,
    PriceBelowIntrinsic,
    Status,
    greeks,
    greeks_array,
    greeks_into,
    implied_volatility,
    implied_volatility_array,
)

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm")


def test_public_names_are_exported() -> None:
    assert set(core_ext.__all__) == {
        "Greeks",
        "GreeksArray",
        "NoConvergence",
        "PriceAboveMaximum",
        "PriceBelowIntrinsic",
        "Status",
        "get_threads",
        "greeks",
        "greeks_array",
        "greeks_into",
        "greeks_kernel",
        "implied_volatility",
        "implied_volatility_array",
        "set_threads",
    }


def test_exceptions_are_value_errors() -> None:
    assert issubclass(PriceBelowIntrinsic, ValueError)
    assert issubclass(PriceAboveMaximum, ValueError)
    assert issubclass(NoConvergence, ArithmeticError)


def test_status_values() -> None:
    assert [(s.name, int(s)) for s in Status] == [
        ("OK", 0),
        ("INVALID_INPUT", 1),
        ("BELOW_INTRINSIC", 2),
        ("ABOVE_MAXIMUM", 3),
        ("NO_CONVERGENCE", 4),
    ]


def test_greeks_is_frozen_with_value_semantics() -> None:
    g = greeks("call", 100.0, 100.0, 0.5, 0.2, 0.03, 0.01)
    assert isinstance(g, Greeks)
    with pytest.raises(AttributeError):
        g.price = 1.0  # type: ignore[misc]
    same = greeks("call", 100.0, 100.0, 0.5, 0.2, 0.03, 0.01)
    assert g == same and hash(g) == hash(same)
    assert pickle.loads(pickle.dumps(g)) == g
    assert "delta=" in repr(g)


def test_greeks_units_match_finite_differences_of_price() -> None:
    # vega per vol point, theta per calendar day, rho per percentage point with q fixed, vanna per vol
    # point, charm per calendar day: check each unit against a bump of the price (or delta) itself.
    s, k, t, v, r, q = 100.0, 105.0, 0.75, 0.25, 0.04, 0.015
    g = greeks("put", s, k, t, v, r, q)

    def bumped(**kw: float) -> Greeks:
        a = {"spot": s, "strike": k, "expiry_years": t, "volatility": v, "rate": r, "dividend_yield": q} | kw
        return greeks("put", a["spot"], a["strike"], a["expiry_years"], a["volatility"], a["rate"], a["dividend_yield"])

    def price(**kw: float) -> float:
        return bumped(**kw).price

    def delta(**kw: float) -> float:
        return bumped(**kw).delta

    h = 1e-5
    assert g.vega == pytest.approx((price(volatility=v + h) - price(volatility=v - h)) / (2 * h) / 100, rel=1e-7)
    day = 1 / 365
    assert g.theta == pytest.approx(-(price(expiry_years=t + h) - price(expiry_years=t - h)) / (2 * h) * day, rel=1e-7)
    assert g.rho == pytest.approx((price(rate=r + h) - price(rate=r - h)) / (2 * h) / 100, rel=1e-7)
    assert g.vanna == pytest.approx((delta(volatility=v + h) - delta(volatility=v - h)) / (2 * h) / 100, rel=1e-6)
    assert g.charm == pytest.approx(-(delta(expiry_years=t + h) - delta(expiry_years=t - h)) / (2 * h) * day, rel=1e-6)
    assert g.theta < 0  # time decay costs the holder of this put


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"spot": math.nan}, "spot"),
        ({"spot": 0.0}, "spot"),
        ({"spot": -1.0}, "spot"),
        ({"spot": math.inf}, "spot"),
        ({"strike": 0.0}, "strike"),
        ({"strike": math.nan}, "strike"),
        ({"expiry_years": -1e-9}, "expiry_years"),
        ({"expiry_years": math.inf}, "expiry_years"),
        ({"expiry_years": math.nan}, "expiry_years"),
        ({"volatility": 0.0}, "volatility"),
        ({"volatility": -0.2}, "volatility"),
        ({"volatility": math.nan}, "volatility"),
        ({"rate": math.nan}, "rate"),
        ({"rate": -math.inf}, "rate"),
        ({"dividend_yield": math.inf}, "dividend_yield"),
    ],
)
def test_greeks_invalid_input_raises_value_error_naming_the_argument(kwargs: dict[str, float], name: str) -> None:
    a = {"spot": 100.0, "strike": 100.0, "expiry_years": 0.5, "volatility": 0.2, "rate": 0.01,
         "dividend_yield": 0.0} | kwargs
    with pytest.raises(ValueError, match=name):
        greeks("call", a["spot"], a["strike"], a["expiry_years"], a["volatility"], a["rate"], a["dividend_yield"])


def test_unknown_kind_and_style_raise_value_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        greeks("straddle", 100.0, 100.0, 0.5, 0.2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="style"):
        greeks("call", 100.0, 100.0, 0.5, 0.2, style="bermudan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        implied_volatility("Call", 5.0, 100.0, 100.0, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="style"):
        greeks_array(True, 100.0, 100.0, 0.5, 0.2, 0.0, 0.0, style="asian")  # type: ignore[arg-type]


def test_american_needs_a_non_negative_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        greeks("put", 100.0, 100.0, 0.5, 0.2, -0.01, 0.0, style="american")
    out = greeks_array(False, 100.0, 100.0, 0.5, 0.2, -0.01, 0.0, style="american")
    assert out.status[0] == Status.INVALID_INPUT and math.isnan(out.price[0])


def test_non_numeric_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        greeks("call", "100", 100.0, 0.5, 0.2)  # type: ignore[arg-type]


@pytest.mark.parametrize("style", ["european", "american"])
@pytest.mark.parametrize(
    ("kind", "spot", "price", "delta"),
    [
        ("call", 110.0, 10.0, 1.0),
        ("call", 90.0, 0.0, 0.0),
        ("call", 100.0, 0.0, 0.0),
        ("put", 90.0, 10.0, -1.0),
        ("put", 110.0, 0.0, 0.0),
    ],
)
def test_expiry_now_is_intrinsic_with_step_delta(kind: str, spot: float, price: float, delta: float, style: str) -> None:
    g = greeks(kind, spot, 100.0, 0.0, 0.3, 0.05, 0.02, style=style)  # type: ignore[arg-type]
    assert (g.price, g.delta) == (price, delta)
    assert (g.gamma, g.vega, g.theta, g.rho, g.vanna, g.charm) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_extreme_inputs_give_an_error_not_a_non_finite_value() -> None:
    with pytest.raises(ValueError, match="extreme"):
        greeks("call", 100.0, 100.0, 0.5, 1e200, 0.05, 0.0)


def test_implied_volatility_below_intrinsic_raises() -> None:
    intrinsic = 100.0 * math.exp(-0.01 * 0.5) - 90.0 * math.exp(-0.03 * 0.5)
    with pytest.raises(PriceBelowIntrinsic):
        implied_volatility("call", intrinsic - 0.01, 100.0, 90.0, 0.5, 0.03, 0.01)
    with pytest.raises(PriceBelowIntrinsic):
        implied_volatility("put", -0.5, 100.0, 90.0, 0.5, 0.03, 0.01)
    with pytest.raises(PriceBelowIntrinsic):
        implied_volatility("put", 0.0, 100.0, 90.0, 0.5, 0.03, 0.01)  # zero for an OTM option is intrinsic


def test_implied_volatility_above_maximum_raises() -> None:
    cap = 100.0 * math.exp(-0.01 * 0.5)  # a European call never exceeds S e^{-qT}
    with pytest.raises(PriceAboveMaximum):
        implied_volatility("call", cap, 100.0, 90.0, 0.5, 0.03, 0.01)
    with pytest.raises(PriceAboveMaximum):
        implied_volatility("call", cap + 0.01, 100.0, 90.0, 0.5, 0.03, 0.01)
    with pytest.raises(PriceAboveMaximum):
        implied_volatility("put", 90.0 * math.exp(-0.03 * 0.5), 100.0, 90.0, 0.5, 0.03, 0.01)
    with pytest.raises(PriceAboveMaximum):
        implied_volatility("put", 100.0, 100.0, 90.0, 0.5, 0.03, 0.01, style="american")


def test_implied_volatility_invalid_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="price"):
        implied_volatility("call", math.nan, 100.0, 100.0, 0.5)
    with pytest.raises(ValueError, match="expiry_years"):
        implied_volatility("call", 5.0, 100.0, 100.0, 0.0)
    with pytest.raises(ValueError, match="strike"):
        implied_volatility("call", 5.0, 100.0, -100.0, 0.5)


def test_implied_volatility_round_trip_both_styles() -> None:
    for style in ("european", "american"):
        for kind in ("call", "put"):
            p = greeks(kind, 100.0, 95.0, 0.75, 0.3, 0.05, 0.03, style=style).price  # type: ignore[arg-type]
            assert implied_volatility(kind, p, 100.0, 95.0, 0.75, 0.05, 0.03, style=style) == pytest.approx(  # type: ignore[arg-type]
                0.3, rel=1e-12
            )


def test_greeks_array_matches_scalar_greeks_and_broadcasts() -> None:
    rng = np.random.default_rng(1)
    n = 1000  # spans several SIMD blocks and a remainder
    spot = rng.uniform(50, 150, n)
    strike = rng.uniform(50, 150, n)
    t = rng.uniform(0.01, 2, n)
    vol = rng.uniform(0.05, 1.0, n)
    is_call = rng.random(n) < 0.5
    out = greeks_array(is_call, spot, strike, t, vol, 0.03, 0.01)
    assert isinstance(out, GreeksArray) and len(out) == n
    assert out.status.dtype == np.int8 and np.all(out.status == Status.OK)
    for i in range(0, n, 37):
        g = greeks("call" if is_call[i] else "put", spot[i], strike[i], t[i], vol[i], 0.03, 0.01)
        for f in FIELDS:
            got = getattr(out, f)[i]
            want = getattr(g, f)
            assert got.dtype == np.float64
            # The array loop runs glibc's SIMD maths, the scalar call the scalar libm: same maths, a few ulps.
            assert got == pytest.approx(want, rel=1e-13, abs=1e-15), f


@pytest.mark.parametrize("style", ["european", "american"])
def test_greeks_into_writes_what_greeks_array_returns_into_a_column_slice(style: str) -> None:
    rng = np.random.default_rng(7)
    n = 300
    spot = rng.uniform(50, 150, n)
    strike = rng.uniform(50, 150, n)
    t = rng.uniform(0.01, 2, n)
    t[5] = 0.0  # expiring now
    vol = rng.uniform(0.05, 1.0, n)
    vol[9] = math.nan  # invalid: NaN with INVALID_INPUT
    is_call = rng.random(n) < 0.5
    want = greeks_array(is_call, spot, strike, t, vol, 0.03, 0.01, style=style)  # type: ignore[arg-type]
    # A column slice of a wider array (strided rows, contiguous columns), as a book's columns are.
    wide = np.full((8, n + 20), -7.0)
    status = np.full(n, 99, dtype=np.int8)
    greeks_into(is_call, spot, strike, t, vol, 0.03, 0.01, wide[:, 10 : 10 + n], status, style=style)  # type: ignore[arg-type]
    for row, field in enumerate(FIELDS):
        np.testing.assert_array_equal(wide[row, 10 : 10 + n], getattr(want, field), err_msg=field)
    np.testing.assert_array_equal(status, want.status)
    assert status[9] == Status.INVALID_INPUT and math.isnan(wide[1, 19])
    assert (wide[:, :10] == -7.0).all() and (wide[:, 10 + n :] == -7.0).all()  # nothing written outside


def test_greeks_into_rejects_outputs_of_the_wrong_shape_dtype_or_layout() -> None:
    args = (np.array([True, False]), 100.0, np.array([90.0, 110.0]), 0.5, 0.2, 0.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        greeks_into(*args, np.empty((8, 3)))
    with pytest.raises(ValueError, match="shape"):
        greeks_into(*args, np.empty((6, 2)))
    with pytest.raises(TypeError, match="float64"):
        greeks_into(*args, np.empty((8, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        greeks_into(*args, np.empty((2, 8)).T)
    with pytest.raises(TypeError, match="int8"):
        greeks_into(*args, np.empty((8, 2)), np.empty(2, dtype=np.int64))
    with pytest.raises(ValueError, match="status"):
        greeks_into(*args, np.empty((8, 2)), np.empty(3, dtype=np.int8))
    with pytest.raises(ValueError, match="style"):
        greeks_into(*args, np.empty((8, 2)), style="asian")  # type: ignore[arg-type]


def test_greeks_kernel_is_a_named_capsule_per_style() -> None:
    import ctypes

    is_valid = ctypes.pythonapi.PyCapsule_IsValid
    is_valid.restype = ctypes.c_int
    is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    european, american = core_ext.greeks_kernel("european"), core_ext.greeks_kernel("american")
    assert is_valid(european, b"tastyplat.greeks_kernel") and is_valid(american, b"tastyplat.greeks_kernel")
    assert not is_valid(european, b"another.name")
    with pytest.raises(ValueError, match="style"):
        core_ext.greeks_kernel("asian")  # type: ignore[arg-type]


_KERNEL_CALL = """
import ctypes, json, os, sys
import numpy as np
import core_ext

def call(capsule, arrays, out, status):
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    d = ctypes.POINTER(ctypes.c_double)
    kernel = ctypes.CFUNCTYPE(None, ctypes.c_ssize_t, ctypes.POINTER(ctypes.c_uint8), d, d, d, d, d, d,
                              ctypes.POINTER(d), ctypes.POINTER(ctypes.c_int8))(get(capsule, b"tastyplat.greeks_kernel"))
    rows = (d * 8)(*(out[j].ctypes.data_as(d) for j in range(8)))
    kernel(len(arrays[1]), arrays[0].ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
           *(a.ctypes.data_as(d) for a in arrays[1:]), rows, status.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))

def threads():
    return len(os.listdir("/proc/self/task"))

core_ext.set_threads(2)
n = 4000
rng = np.random.default_rng(3)
# Puts with a positive rate and calls with a dividend yield: all take the 2002 formula (the costly ones).
is_call = (np.arange(n) % 2).astype(np.uint8)
arrays = [is_call, rng.uniform(80, 120, n), np.full(n, 100.0), rng.uniform(0.05, 2.0, n), rng.uniform(0.1, 0.6, n),
          np.full(n, 0.05), np.where(is_call == 1, 0.03, 0.0)]
seen = {}
for name in sys.argv[1:]:
    out, status = np.empty((8, n)), np.empty(n, dtype=np.int8)
    before = threads()
    if name == "into":
        core_ext.greeks_into(is_call.astype(bool), *arrays[1:], out, status, style="american")
    else:
        call(core_ext.greeks_kernel("american", parallel=name == "parallel"), arrays, out, status)
    seen[name] = {"new_threads": threads() - before, "out": out.tobytes().hex(), "status": status.tobytes().hex()}
print(json.dumps(seen))
"""


def _kernel_calls(*names: str) -> dict[str, dict[str, object]]:
    import json

    result = subprocess.run([sys.executable, "-c", _KERNEL_CALL, *names], capture_output=True, text=True, timeout=120,
                            check=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_serial_american_kernel_stays_on_the_callers_thread_and_gives_the_same_greeks() -> None:
    # A fresh process each, with set_threads(2): the serial kernel starts no thread, the parallel one starts
    # OpenMP's worker; both give exactly what greeks_into gives.
    serial_first = _kernel_calls("serial", "parallel")
    assert serial_first["serial"]["new_threads"] == 0
    assert serial_first["parallel"]["new_threads"] == 1
    into = _kernel_calls("into")["into"]
    for name in ("serial", "parallel"):
        assert serial_first[name]["out"] == into["out"]
        assert serial_first[name]["status"] == into["status"]


def test_greeks_array_all_scalars_gives_length_one() -> None:
    out = greeks_array(True, 100.0, 100.0, 0.5, 0.2, 0.0, 0.0)
    assert out.price.shape == (1,)
    assert out.price[0] == pytest.approx(greeks("call", 100.0, 100.0, 0.5, 0.2).price, rel=1e-14)


def test_greeks_array_empty() -> None:
    out = greeks_array(np.array([], dtype=bool), np.array([]), 100.0, 0.5, 0.2, 0.0, 0.0)
    assert len(out) == 0 and out.price.shape == (0,)


def test_greeks_array_rejects_mismatched_lengths_and_non_bool_is_call() -> None:
    with pytest.raises(ValueError, match="strike"):
        greeks_array(True, np.ones(3), np.ones(4), 0.5, 0.2, 0.0, 0.0)
    with pytest.raises(TypeError, match="is_call"):
        greeks_array(np.array([1, 0]), 100.0, 100.0, 0.5, 0.2, 0.0, 0.0)
    with pytest.raises(ValueError, match="spot"):
        greeks_array(True, np.ones((2, 2)), 100.0, 0.5, 0.2, 0.0, 0.0)


def test_greeks_array_invalid_elements_are_nan_with_status_and_do_not_touch_neighbours() -> None:
    spot = np.array([100.0, math.nan, 100.0, -5.0, 100.0, 100.0, 100.0, 100.0])
    t = np.array([0.5, 0.5, 0.0, 0.5, -1.0, 0.5, 0.5, 0.5])
    vol = np.array([0.2, 0.2, 0.2, 0.2, 0.2, 0.0, math.inf, 1e200])
    out = greeks_array(True, spot, 90.0, t, vol, 0.05, 0.0)
    assert list(out.status) == [0, 1, 0, 1, 1, 1, 1, 1]
    for f in FIELDS:
        col = getattr(out, f)
        assert np.all(np.isnan(col[out.status != Status.OK]))
        assert np.all(np.isfinite(col[out.status == Status.OK]))
    assert out.price[0] == greeks("call", 100.0, 90.0, 0.5, 0.2, 0.05).price
    assert (out.price[2], out.delta[2], out.gamma[2]) == (10.0, 1.0, 0.0)  # expiry now


def test_american_greeks_array_matches_scalar() -> None:
    rng = np.random.default_rng(2)
    n = 40
    spot = rng.uniform(70, 130, n)
    vol = rng.uniform(0.1, 0.6, n)
    is_call = rng.random(n) < 0.5
    out = greeks_array(is_call, spot, 100.0, 0.5, vol, 0.05, 0.03, style="american")
    assert np.all(out.status == Status.OK)
    for i in range(n):
        g = greeks("call" if is_call[i] else "put", spot[i], 100.0, 0.5, vol[i], 0.05, 0.03, style="american")
        assert [getattr(out, f)[i] for f in FIELDS] == [getattr(g, f) for f in FIELDS]


def test_implied_volatility_array_statuses_and_nan() -> None:
    t, r, q = 0.5, 0.03, 0.01
    fair = greeks("call", 100.0, 90.0, t, 0.25, r, q).price
    cap = 100.0 * math.exp(-q * t)
    price = np.array([fair, -0.5, 0.0, cap, cap + 1.0, math.nan, fair, fair])
    expiry = np.array([t, t, t, t, t, t, 0.0, t])
    strike = np.array([90.0, 90.0, 150.0, 90.0, 90.0, 90.0, 90.0, -90.0])
    vols, status = implied_volatility_array(True, price, 100.0, strike, expiry, r, q)
    assert list(status) == [
        Status.OK,
        Status.BELOW_INTRINSIC,
        Status.BELOW_INTRINSIC,
        Status.ABOVE_MAXIMUM,
        Status.ABOVE_MAXIMUM,
        Status.INVALID_INPUT,
        Status.INVALID_INPUT,
        Status.INVALID_INPUT,
    ]
    assert vols[0] == pytest.approx(0.25, rel=1e-13)
    assert np.all(np.isnan(vols[1:]))
    assert not np.any(vols == 0.0)


def test_implied_volatility_array_american_statuses() -> None:
    fair = greeks("put", 100.0, 110.0, 0.5, 0.3, 0.05, 0.0, style="american").price
    vols, status = implied_volatility_array(
        False, np.array([fair, 9.99, 110.0, math.nan]), 100.0, 110.0, 0.5, 0.05, 0.0, style="american"
    )
    assert list(status) == [Status.OK, Status.BELOW_INTRINSIC, Status.ABOVE_MAXIMUM, Status.INVALID_INPUT]
    assert vols[0] == pytest.approx(0.3, rel=1e-11)
    assert np.all(np.isnan(vols[1:]))


@pytest.mark.parametrize("which", ["greeks_array", "implied_volatility_array", "american"])
def test_array_loops_release_the_gil(which: str) -> None:
    # With a huge switch interval the interpreter never takes the GIL away from the main thread, so a
    # second Python thread can run between the two counter reads only if the kernel itself released it.
    # The kernel runs on one thread (and long enough: 20,000 American puts take ~25 ms) so that the second
    # core is free for that Python thread: with both cores in OpenMP a 2,000-put call ended before it ran.
    import threading
    import time

    n = 400_000 if which != "american" else 20_000
    ones = np.ones(n)
    counter = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1
            if counter[0] % 1000 == 0:
                time.sleep(0)  # lets the main thread back in between kernel calls

    previous = sys.getswitchinterval()
    threads = core_ext.get_threads()
    core_ext.set_threads(1)
    sys.setswitchinterval(100.0)
    th = threading.Thread(target=spin)
    try:
        th.start()
        while counter[0] == 0:
            time.sleep(0.001)
        before = counter[0]
        if which == "greeks_array":
            greeks_array(True, 100.0 * ones, 100.0, 0.5, 0.2, 0.01, 0.0)
        elif which == "implied_volatility_array":
            implied_volatility_array(True, 5.0 * ones, 100.0, 100.0, 0.5, 0.01, 0.0)
        else:
            greeks_array(False, 100.0 * ones, 100.0, 0.5, 0.2, 0.05, 0.0, style="american")
        after = counter[0]
    finally:
        stop.set()
        sys.setswitchinterval(previous)
        core_ext.set_threads(threads)
        th.join()
    assert after > before


def test_stubs_match_the_runtime_module() -> None:
    assert (ROOT / "core_ext" / "py.typed").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "core_ext"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_results_kept_alive_are_never_reused_by_later_calls() -> None:
    # greeks_array recycles the memory of a dropped result; anything still referenced must stay intact.
    n = 300_000  # above the 1 MB floor of the recycling
    first = greeks_array(True, np.full(n, 100.0), 100.0, 0.5, 0.2, 0.0, 0.0)
    kept_delta = first.delta
    expected = kept_delta.copy()
    del first
    second = greeks_array(True, np.full(n, 90.0), 100.0, 0.5, 0.2, 0.0, 0.0)
    assert not np.shares_memory(kept_delta, second.delta)
    np.testing.assert_array_equal(kept_delta, expected)
    del kept_delta
    third = greeks_array(False, np.full(n, 80.0), 100.0, 0.5, 0.2, 0.0, 0.0)
    assert np.all(third.delta < 0) and np.all(second.delta > 0)
