"""Portfolio and report benchmarks of issue 8, each figure in its own process with its peak memory.

    .venv/bin/python benchmarks/portfolio/bench_portfolio.py [--repeat 5] [--json out.json] [--only NAME ...]

Figures:
  greeks          GetPortfolioGreeks' pricing of a 2,000-position book (build_book + compute_greeks), median
  greeks_with_iv  the same plus solving every option's implied vol from its mark with core_ext
  scenario_eu     a 41 x 21 x 5 grid over the 2,000-position book, every option European
  scenario_am     the same grid with the book's equity options American (Bjerksund-Stensland 2002)
  xlsx_100k       a full XLSX report (every section) of an account with 100,000 transactions, through
                  ReportingApp.create_report (tables, openpyxl write-only, SHA-256) from in-memory peers

Peak memory is the process's peak RSS (ru_maxrss) and its increase over the RSS after imports and set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

NOW = datetime(2024, 3, 6, 15, 0, tzinfo=UTC)
TARGETS = {
    "greeks": ("< 50 ms", 0.050),
    "greeks_with_iv": ("(no target)", None),
    "scenario_eu": ("< 2 s", 2.0),
    "scenario_am": ("< 10 s", 10.0),
    "xlsx_100k": ("< 60 s, < 500 MB", 60.0),
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def book(n: int = 2000, american: bool = True, seed: int = 20240306):
    """A 2,000-position book: 10 % shares, 90 % options on 50 underlyings, 7-180 days, strikes +-20 %."""
    import numpy as np

    from services.portfolio.domain.model import HeldPosition, InstrumentKind, MarketInputs, OptionTerms

    rng = np.random.default_rng(seed)
    underlyings = [f"U{i:02d}" for i in range(50)]
    prices = {u: float(rng.uniform(20, 600)) for u in underlyings}
    prices["SPY"] = 500.0
    positions = []
    vols: dict[str, float] = {}
    for i in range(n):
        u = underlyings[i % 50]
        s = prices[u]
        if i % 10 == 0:
            positions.append(HeldPosition(f"{u}-{i}", u, InstrumentKind.EQUITY, Decimal(int(rng.integers(-500, 500)) or 1),
                                          Decimal(1), Decimal(str(round(s, 2)))))
            continue
        days = int(rng.integers(7, 181))
        strike = round(s * float(rng.uniform(0.8, 1.2)), 1)
        symbol = f"{u} OPT{i}"
        terms = OptionTerms(symbol, u, bool(rng.random() < 0.5), strike, NOW + timedelta(days=days), american, 100.0)
        vols[symbol] = float(rng.uniform(0.12, 0.6))
        positions.append(HeldPosition(symbol, u, InstrumentKind.EQUITY_OPTION, Decimal(int(rng.integers(-10, 11)) or 1),
                                      Decimal(100), Decimal("1.00"), option=terms))
    inputs = MarketInputs(
        prices=prices,
        dividend_yields={u: float(rng.uniform(0.0, 0.03)) for u in underlyings},
        rate=0.045,
        implied_volatilities=vols,
    )
    return positions, inputs


def _marked(positions, inputs):
    """The positions with marks at their model values (so implied vols can be solved back from them)."""
    import dataclasses

    from services.portfolio.domain.greeks import BetaSource, build_book, compute_greeks

    g = compute_greeks(build_book(positions, inputs, NOW), {}, "SPY", 500.0)
    price = g.model[0]
    out = []
    for i, p in enumerate(positions):
        if p.option is not None:
            p = dataclasses.replace(p, mark_price=Decimal(f"{max(price[i], 0.01):.4f}"))
        out.append(p)
    _ = BetaSource
    return out


def fig_greeks(repeat: int, with_iv: bool = False) -> dict:
    from services.portfolio.domain.greeks import BetaSource, build_book, compute_greeks, solve_implied_vols
    from services.portfolio.domain.model import MarketInputs

    positions, inputs = book()
    betas = {u: (1.1, BetaSource.BROKER) for u in inputs.prices}
    if with_iv:
        positions = _marked(positions, inputs)
    base = _rss_mb()
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        used = inputs
        if with_iv:
            vols = solve_implied_vols(positions, inputs.prices, inputs.dividend_yields, inputs.rate, NOW)
            used = MarketInputs(prices=inputs.prices, dividend_yields=inputs.dividend_yields, rate=inputs.rate,
                                implied_volatilities={**inputs.implied_volatilities, **vols})
        g = compute_greeks(build_book(positions, used, NOW), betas, "SPY", 500.0)
        times.append(time.perf_counter() - start)
    assert abs(g.total_delta_dollars) > 0
    times = times[1:]
    return {"seconds": statistics.median(times), "min_seconds": min(times), "positions": len(positions),
            "peak_rss_mb": _rss_mb(), "rss_increase_mb": _rss_mb() - base}


def fig_scenario(repeat: int, american: bool) -> dict:
    from services.portfolio.domain.greeks import build_book
    from services.portfolio.domain.scenario import run_scenario, validate_grid

    positions, inputs = book(american=american)
    b = build_book(positions, inputs, NOW)
    moves = [round(-0.2 + 0.01 * i, 2) for i in range(41)]
    shifts = [round(-0.1 + 0.01 * i, 2) for i in range(21)]
    days = [0.0, 1.0, 7.0, 14.0, 30.0]
    grid = validate_grid(moves, shifts, days, b)
    base = _rss_mb()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run_scenario(b, grid, 1_000_000.0)
        times.append(time.perf_counter() - start)
    assert result.values.shape == (41 * 21 * 5,)
    options = int(b.is_option.sum())
    amer = int((b.is_option & b.american & ~(b.is_call & (b.dividend_yield <= 0))).sum())
    return {"seconds": statistics.median(times), "min_seconds": min(times), "positions": len(positions),
            "option_points": options * grid.size, "american_option_points": amer * grid.size,
            "threads": min(os.cpu_count() or 1, 4), "peak_rss_mb": _rss_mb(), "rss_increase_mb": _rss_mb() - base}


def _report_account(n_transactions: int):
    from tests.unit.reporting.reporting_data import sample_account, tx

    account = sample_account("bench")
    start = datetime(2020, 1, 1, 15, tzinfo=UTC)
    account.transactions = [
        tx(i, start + timedelta(minutes=17 * i), option=i % 3 != 0, value=f"{(i % 97) * 3.5 - 150:.2f}",
           commission="-1.00", clearing="-0.10", regulatory=f"-{(i % 7) * 0.013:.3f}")
        for i in range(n_transactions)
    ]
    return account


def fig_xlsx(n_transactions: int) -> dict:
    from services.platform.clock import SystemClock
    from services.reporting.adapters.archive import FileArchive
    from services.reporting.adapters.memory_peers import MemorySources
    from services.reporting.adapters.writers import TableWriter
    from services.reporting.api.convert import encode_metadata
    from services.reporting.app import ReportingApp
    from services.reporting.domain.requests import validate_report
    from services.reporting.ports import Caller

    sources = MemorySources()
    sources.accounts["A1"] = _report_account(n_transactions)
    base = _rss_mb()
    with tempfile.TemporaryDirectory() as directory:
        app = ReportingApp(portfolio=sources, broker=sources, alerts=sources, archive=FileArchive(directory),
                           writer=TableWriter(), clock=SystemClock(), encode_metadata=encode_metadata)
        spec = validate_report("A1", 1, [], None, None, datetime.now(UTC))
        start = time.perf_counter()
        report = asyncio.run(app.create_report(Caller("bench", "Bearer x"), spec))
        seconds = time.perf_counter() - start
        size = report.size_bytes
        rows = report.row_count
    return {"seconds": seconds, "transactions": n_transactions, "rows": rows, "file_mb": size / 1e6,
            "peak_rss_mb": _rss_mb(), "rss_increase_mb": _rss_mb() - base}


def run_one(name: str, repeat: int) -> dict:
    if name == "greeks":
        return fig_greeks(repeat)
    if name == "greeks_with_iv":
        return fig_greeks(repeat, with_iv=True)
    if name == "scenario_eu":
        return fig_scenario(max(1, repeat // 2), american=False)
    if name == "scenario_am":
        return fig_scenario(1, american=True)
    if name == "xlsx_100k":
        return fig_xlsx(100_000)
    raise SystemExit(f"unknown figure {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--only", nargs="*", default=list(TARGETS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.repeat)))
        return
    results = {}
    for name in args.only:
        done = subprocess.run([sys.executable, __file__, "--child", name, "--repeat", str(args.repeat)],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[name]
        target, limit = TARGETS[name]
        verdict = "" if limit is None else ("met" if r["seconds"] < limit else "MISSED")
        extra = {k: v for k, v in r.items() if k not in ("seconds", "peak_rss_mb", "rss_increase_mb")}
        print(f"{name:15s} {r['seconds'] * 1000:10.1f} ms  peak RSS {r['peak_rss_mb']:7.1f} MB "
              f"(+{r['rss_increase_mb']:.1f} MB)  target {target} {verdict}  {extra}", flush=True)
    load = os.getloadavg()
    meta = {"cpus": os.cpu_count(), "load_average": load, "python": sys.version.split()[0], "time": datetime.now(UTC).isoformat()}
    print(f"machine: {meta}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
