"""The delta monitor benchmark runs end to end on a small book (so that its published figures stay reproducible).

Real PostgreSQL (127.0.0.1:5432), the market data service and the delta monitor in one process, as the benchmark
sets them up; the figures themselves are not asserted (performance is measured, not tested), only that every tick
entered through market data was processed and every canary crossing reached the StreamAlerts subscriber.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "deltamonitor" / "bench_deltamonitor.py"


def _benchmark():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_deltamonitor_under_test", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("entry", ["marketdata", "bus"])
async def test_the_benchmark_processes_every_tick_and_measures_every_alert(entry: str) -> None:
    bench = _benchmark()
    figures = await bench.run(100, 300, 200.0, 0.05, 4, "american", entry, 120)
    assert figures["ticks_processed"] == 300
    assert figures["alerts"] == 4
    assert figures["options_repriced_per_second"] > 0
    assert 0 < figures["core_ext_share_of_book"] < 1
    assert figures["alert_max_ms"] > 0
    if entry == "marketdata":
        assert figures["marketdata_us_per_tick"] > 0


def test_the_book_benchmark_times_both_paths(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import sys

    root = str(_PATH.parents[2])
    monkeypatch.syspath_prepend(root)
    spec = importlib.util.spec_from_file_location("bench_book_under_test", _PATH.parent / "bench_book.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["bench_book", "--positions", "200", "--ticks", "400", "--rounds", "2"])
    module.main()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["style"], r["positions"]) for r in rows] == [("american", 200), ("european", 200)]
    for row in rows:
        assert row["ticks"] == 400
        assert row["compiled_us_per_tick"] > 0 and row["stepped_us_per_tick"] > 0
        assert 0 < row["kernel_share_of_compiled"] < 1
