"""Quote fan-out benchmark: ticks ingested and delivered to 1, 10 and 100 StreamQuotes subscribers, tick-to-
subscriber latency, and a bare grpc.aio small-message stream as the ceiling, measured in the same run.

The service runs in one process (pinned to CPU 0): the real MarketDataApp with the simulator feed on a
universe of `--symbols` underlyings, in-process bus and cache and an in-memory tick store, served by the
platform's grpc.aio server. The subscribers run in this process (pinned to CPU 1) on grpc.aio channels.
Latency is the subscriber's wall clock at receipt minus the tick's source time (`quote_times_unix_nanos`,
stamped by the simulator when it generated the tick); both processes read the same system clock.

Usage:
    .venv/bin/python benchmarks/marketdata/bench_streams.py [--seconds 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

ECHO_METHOD = "/bench.Echo/Stream"
PAYLOAD = b"x" * 32
SERVER_EXTRA: list[str] = []


# ---------------------------------------------------------------------------------------------- server side


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


async def _serve_marketdata(args: argparse.Namespace) -> None:
    from services.marketdata.adapters.simulator_feed import SimulatorFeed
    from services.marketdata.config import MarketDataSettings
    from services.marketdata.domain.simulator import MarketSimulator, UnderlyingSpec
    from services.marketdata.wiring import build, registration
    from services.platform.bus import InProcessBus
    from services.platform.cache import InProcessCache
    from services.platform.clock import SystemClock
    from services.platform.server import build_server
    from services.platform.settings import ServerSettings

    clock = SystemClock()
    if args.history == "postgres":
        from services.marketdata.adapters.postgres_history import PostgresTickStore

        history: Any = await PostgresTickStore.connect(args.postgres_dsn, schema=f"md_bench_{os.getpid()}")
    else:
        history = CountingTickStore()
    universe = [UnderlyingSpec(f"SYM{i:03d}", 100.0 + i, 0.3, 0.6, spread=0.02) for i in range(args.symbols)]
    simulator = MarketSimulator(universe, seed=7, trade_probability=0.0)
    feed = SimulatorFeed(simulator, clock, tick_interval=args.tick_interval, queue_size=100_000)
    settings = MarketDataSettings.from_env(
        {}, port=0, bus="memory", cache="memory", history="memory", pinned_symbols=(), heartbeat_seconds=5.0,
        max_streams_per_caller=10_000, gc_freeze=False,
    )  # fmt: skip
    components = build(
        settings, clock=clock, bus=InProcessBus(), cache=InProcessCache(), history=history, feed=feed
    )
    server = build_server(
        [registration(components)],
        ServerSettings(host="127.0.0.1", port=0, drain_seconds=0.0, grace_seconds=1.0, log_level="WARNING"),
    )
    await server.start()
    import gc
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    if not args.no_gc_freeze:
        gc.freeze()  # what the service's start hook does by default (MARKETDATA_GC_FREEZE)
    print(f"READY {server.port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    started = time.perf_counter()
    await stop.wait()
    app = components.app
    assert app is not None
    stats = {
        "ingested_events": app.ingested_events,
        "history_written": app.history_writer.written,
        "history_dropped": app.history_writer.dropped,
        "seconds": time.perf_counter() - started,
        "dropped_feed_batches": feed.dropped_batches,
    }
    print("STATS " + json.dumps(stats), flush=True)
    await server.stop(0)
    if args.history == "postgres":
        await history.drop_schema()
        await history.close()


class CountingTickStore:
    """A TickStore that counts and discards: keeps the benchmark about fan-out, not about an ever-growing heap."""

    def __init__(self) -> None:
        self.written = 0

    async def ensure_schema(self) -> None:
        return None

    async def write(self, ticks: Any) -> None:
        self.written += len(ticks)

    async def candles(self, *args: Any) -> list[Any]:
        return []

    async def close(self) -> None:
        return None


async def _serve_echo(args: argparse.Namespace) -> None:
    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> Any:
        while True:
            yield PAYLOAD

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {"Stream": grpc.unary_stream_rpc_method_handler(stream, lambda b: b, lambda b: b)},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print("STATS {}", flush=True)
    await server.stop(0)


# ---------------------------------------------------------------------------------------------- client side


class Server:
    """A benchmark server subprocess pinned to CPU 0."""

    def __init__(self, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, *extra],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY"):
            self.process.kill()
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.stdout is not None
        stats: dict[str, Any] = {}
        for line in self.process.stdout:
            if line.startswith("STATS "):
                stats = json.loads(line[6:])
        self.process.wait(timeout=10)
        return stats


@dataclass
class Result:
    scenario: str
    subscribers: int
    symbols: int
    seconds: float
    ingested_per_s: float
    delivered_per_s: float
    messages_per_s: float
    updates_per_message: float
    conflated: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def _channels(port: int, subscribers: int) -> list[grpc.aio.Channel]:
    count = max(1, min(subscribers, 10))
    return [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(count)]


async def _measure_streams(port: int, subscribers: int, symbols: list[str], warmup: float, seconds: float) -> dict[str, Any]:
    from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb
    from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as pb_grpc

    channels = _channels(port, subscribers)
    measuring = asyncio.Event()
    done = asyncio.Event()
    counts = {"updates": 0, "messages": 0, "conflated": 0}
    latencies: list[np.ndarray] = []

    async def subscriber(channel: grpc.aio.Channel) -> None:
        stub = pb_grpc.MarketDataServiceStub(channel)
        call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=symbols))
        try:
            while not done.is_set():
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                if not measuring.is_set() or message.WhichOneof("event") != "quotes" or message.quotes.snapshot:
                    continue
                now = time.time_ns()
                times = np.frombuffer(
                    np.array(message.quotes.quote_times_unix_nanos, dtype=np.int64).tobytes(), dtype=np.int64
                )
                latencies.append((now - times) / 1e6)
                counts["updates"] += len(times)
                counts["messages"] += 1
                counts["conflated"] += message.quotes.conflated_count
        finally:
            call.cancel()

    tasks = [asyncio.create_task(subscriber(channels[i % len(channels)])) for i in range(subscribers)]
    await asyncio.sleep(warmup)
    measuring.set()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - started
    done.set()
    measuring.clear()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    all_latencies = np.concatenate(latencies) if latencies else np.array([np.nan])
    return {"elapsed": elapsed, **counts, "latencies": all_latencies}


async def _measure_echo(port: int, subscribers: int, warmup: float, seconds: float) -> dict[str, Any]:
    channels = _channels(port, subscribers)
    measuring = asyncio.Event()
    counts = {"messages": 0}

    async def subscriber(channel: grpc.aio.Channel) -> None:
        call = channel.unary_stream(ECHO_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b)(b"")
        try:
            async for _ in call:
                if measuring.is_set():
                    counts["messages"] += 1
        finally:
            call.cancel()

    tasks = [asyncio.create_task(subscriber(channels[i % len(channels)])) for i in range(subscribers)]
    await asyncio.sleep(warmup)
    measuring.set()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - started
    measuring.clear()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return {"elapsed": elapsed, **counts}


def run_stream_scenario(subscribers: int, symbols: int, tick_interval: float, warmup: float, seconds: float) -> Result:
    server = Server("--serve", "--symbols", str(symbols), "--tick-interval", str(tick_interval), *SERVER_EXTRA)
    try:
        names = [f"SYM{i:03d}" for i in range(symbols)]
        measured = asyncio.run(_measure_streams(server.port, subscribers, names, warmup, seconds))
    finally:
        server.stop()
    lat = measured["latencies"]
    elapsed = measured["elapsed"]
    return Result(
        scenario=f"StreamQuotes tick every {tick_interval * 1000:g} ms",
        subscribers=subscribers,
        symbols=symbols,
        seconds=round(elapsed, 2),
        # Every subscriber follows every symbol, so each tick reaches each one, delivered or conflated.
        ingested_per_s=round((measured["updates"] + measured["conflated"]) / subscribers / elapsed, 1),
        delivered_per_s=round(measured["updates"] / elapsed, 1),
        messages_per_s=round(measured["messages"] / elapsed, 1),
        updates_per_message=round(measured["updates"] / max(measured["messages"], 1), 2),
        conflated=measured["conflated"],
        p50_ms=round(float(np.nanpercentile(lat, 50)), 3),
        p99_ms=round(float(np.nanpercentile(lat, 99)), 3),
        max_ms=round(float(np.nanmax(lat)), 3),
    )


def run_echo(subscribers: int, warmup: float, seconds: float) -> dict[str, Any]:
    server = Server("--serve-echo")
    try:
        measured = asyncio.run(_measure_echo(server.port, subscribers, warmup, seconds))
    finally:
        server.stop()
    total = measured["messages"] / measured["elapsed"]
    return {"subscribers": subscribers, "messages_per_s": round(total, 1), "per_subscriber": round(total / subscribers, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--tick-interval", type=float, default=0.01)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--history", choices=("discard", "postgres"), default="discard",
                        help="tick store of the service: counting (default) or the machine's PostgreSQL")
    parser.add_argument("--no-gc-freeze", action="store_true", help="leave the garbage collector as Python sets it")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    if args.serve:
        _pin(0)
        asyncio.run(_serve_marketdata(args))
        return
    if args.serve_echo:
        _pin(0)
        asyncio.run(_serve_echo(args))
        return
    _pin(1)
    SERVER_EXTRA.extend(["--history", args.history, "--postgres-dsn", args.postgres_dsn])
    if args.no_gc_freeze:
        SERVER_EXTRA.append("--no-gc-freeze")
    ceiling = [run_echo(n, args.warmup, args.seconds) for n in (1, 100)]
    # 50 symbols. 1 and 10 subscribers at a 10 ms simulator step (up to 5,000 ticks/s ingested). 100
    # subscribers at a 200 ms step (250 ticks/s, 25,000/s to deliver: the target row), then at 100 ms
    # and 20 ms steps to find where latency gives way.
    scenarios = [(1, 0.01), (10, 0.01), (100, 0.2), (100, 0.1), (100, 0.02)]
    results = [run_stream_scenario(n, args.symbols, interval, args.warmup, args.seconds) for n, interval in scenarios]
    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_implementation()} {platform.python_version()}, grpcio {grpc.__version__}",
        "ceiling_bare_grpc_aio_32B": ceiling,
        "streams": [asdict(r) for r in results],
    }
    print(f"# {report['machine']}")
    print("ceiling: bare grpc.aio server stream of 32-byte messages")
    for row in ceiling:
        print(f"  {row['subscribers']:>3} subscribers: {row['messages_per_s']:>10,.0f} msgs/s total ({row['per_subscriber']:,.0f} each)")
    print("StreamQuotes (packed QuoteBatch), simulator feed")
    header = f"  {'subs':>4} {'symbols':>7} {'ingested/s':>11} {'delivered/s':>12} {'msgs/s':>8} {'upd/msg':>8} {'conflated':>9} {'p50 ms':>7} {'p99 ms':>7} {'vs ceiling msgs':>15}"
    print(header)
    for r in results:
        ceiling_msgs = ceiling[0]["messages_per_s"] if r.subscribers == 1 else ceiling[1]["messages_per_s"]
        ratio = r.delivered_per_s / ceiling_msgs if ceiling_msgs else float("nan")
        print(
            f"  {r.subscribers:>4} {r.symbols:>7} {r.ingested_per_s:>11,.0f} {r.delivered_per_s:>12,.0f} "
            f"{r.messages_per_s:>8,.0f} {r.updates_per_message:>8.1f} {r.conflated:>9,} {r.p50_ms:>7.2f} "
            f"{r.p99_ms:>7.2f} {ratio:>14.2f}x"
        )
    target = [r for r in results if r.subscribers == 100 and r.symbols >= 50]
    met = any(r.delivered_per_s >= 20_000 and r.p99_ms < 20.0 for r in target)
    print(f"target (100 subscribers x 50 symbols: >= 20,000 delivered/s, p99 < 20 ms): {'MET' if met else 'NOT MET'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
