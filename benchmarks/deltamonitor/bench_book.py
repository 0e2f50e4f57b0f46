"""Delta monitor book alone: microseconds per underlying tick, the compiled tick against the step-by-step path.

The book of ``bench_deltamonitor.py`` (N option positions over 50 underlyings, one position watch per option and
one underlying watch per account, static bands), every option's IV known, quotes applied straight to
``Book.on_quote`` in one process, no event loop. Two books side by side, alternating rounds of ticks:

- ``compiled``: core_ext's pricer, which offers its array kernel as a C capsule: an underlying's whole tick is
  one call (``_book_kernel.UnderlyingStep.tick``);
- ``stepped`` (the baseline): the same core_ext pricer called from Python (``greeks_into``), then the three
  compiled steps (exposures, watch sums, zones + state table + write-back): the path a pricer without a C
  kernel takes.

Both give bit-identical results (``tests/unit/deltamonitor/test_deltamonitor_book_compiled.py``). Both price on
one thread, as the delta monitor's ticks do by default; ``--parallel-ticks`` lets both use core_ext's threads
(``TASTYPLAT_CORE_THREADS``, two on this machine) for American options.

    PYTHONPATH=. .venv/bin/python benchmarks/deltamonitor/bench_book.py --positions 1000 10000 --ticks 20000
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

import numpy as np

import core_ext
from benchmarks.deltamonitor.bench_deltamonitor import UNDERLYINGS, _book
from services.deltamonitor.adapters.pricing import CoreExtPricer
from services.deltamonitor.domain.book import Book, BookSettings


class SteppedCoreExtPricer(CoreExtPricer):
    """core_ext without its C kernel: the book prices through greeks_into and evaluates step by step."""

    def greeks_kernel(self, american: bool) -> object | None:
        return None


def _loaded_book(pricer: CoreExtPricer, n: int, american: bool) -> Book:
    positions, watches = _book(n, np.random.default_rng(11), american=american)
    book = Book(watches, positions, pricer=pricer, settings=BookSettings())
    now = datetime.now(UTC)
    for p in positions:
        if p.is_option and p.streamer_symbol:
            book.on_greeks(p.streamer_symbol, 0.3, now)
    for u in UNDERLYINGS:
        book.on_quote(u, 100.0, now)
    return book


def _run(book: Book, ticks: int, first: int) -> float:
    when = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(first, first + ticks):
        book.on_quote(UNDERLYINGS[i % len(UNDERLYINGS)], 100.0 + (i % 7) * 0.1, when)
    return time.perf_counter() - started


def main() -> None:
    """Print µs per tick of both paths and their ratio, per style and book size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ticks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--style", choices=["american", "european"], nargs="+", default=["american", "european"])
    parser.add_argument("--parallel-ticks", action="store_true", help="American pricing on core_ext's threads")
    args = parser.parse_args()
    threads = core_ext.get_threads()
    if not args.parallel_ticks:
        core_ext.set_threads(1)  # the stepped path's greeks_into on one thread too, as the compiled tick
    try:
        for style in args.style:
            for n in args.positions:
                books = {
                    "compiled": _loaded_book(CoreExtPricer(parallel_ticks=args.parallel_ticks), n, style == "american"),
                    "stepped": _loaded_book(SteppedCoreExtPricer(), n, style == "american"),
                }
                assert all(rows.step is not None for rows in books["compiled"].u_rows if rows.runs)
                seconds = dict.fromkeys(books, 0.0)
                kernel_before = books["compiled"].kernel_seconds()  # the loading ticks are not timed
                per_round = max(1, args.ticks // args.rounds)
                for r in range(args.rounds):
                    for name, book in books.items():
                        seconds[name] += _run(book, per_round, r * per_round)
                ticks = per_round * args.rounds
                us = {name: s / ticks * 1e6 for name, s in seconds.items()}
                print(json.dumps({
                    "style": style, "positions": n, "ticks": ticks, "threads": core_ext.get_threads(),
                    "compiled_us_per_tick": round(us["compiled"], 2),
                    "stepped_us_per_tick": round(us["stepped"], 2),
                    "stepped_over_compiled": round(us["stepped"] / us["compiled"], 2),
                    "kernel_share_of_compiled": round(
                        (books["compiled"].kernel_seconds() - kernel_before) / seconds["compiled"], 3
                    ),
                }), flush=True)
    finally:
        core_ext.set_threads(threads)


if __name__ == "__main__":
    main()
