"""Durable-commit floor of this machine: latency of one 8 kB write + fdatasync, as a PostgreSQL WAL flush does.

A committed transaction returns only once its WAL is on disk (``synchronous_commit = on``), so every alert the
delta monitor writes waits for one such flush; this prints that flush's distribution on the database's disk,
next to PostgreSQL's own ``pg_test_fsync`` figure for the mean. Bounded: ``--seconds`` of flushes, one every
``--every`` seconds, into a temporary file of at most 8 MB that is removed at the end.

    .venv/bin/python benchmarks/platform/bench_fsync.py --dir /var/lib/postgresql --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    """Print the flush latency percentiles (ms) and how many flushes took over 10 and 25 ms."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/var/lib/postgresql", help="a directory on the database's disk")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=0.01)
    args = parser.parse_args()
    block = b"\0" * 8192
    latencies: list[float] = []
    with tempfile.NamedTemporaryFile(dir=args.dir, prefix="fsync-probe-") as handle:
        fd = handle.fileno()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            os.pwrite(fd, block, (len(latencies) % 1024) * len(block))
            started = time.perf_counter()
            os.fdatasync(fd)
            latencies.append((time.perf_counter() - started) * 1000.0)
            time.sleep(args.every)
    latencies.sort()
    n = len(latencies)

    def at(q: float) -> float:
        return round(latencies[min(n - 1, int(q * n))], 2)

    print(json.dumps({
        "flushes": n, "p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": round(latencies[-1], 2),
        "over_10ms": sum(x > 10 for x in latencies), "over_25ms": sum(x > 25 for x in latencies),
        "share_over_25ms": round(sum(x > 25 for x in latencies) / n, 4),
    }))


if __name__ == "__main__":
    main()
