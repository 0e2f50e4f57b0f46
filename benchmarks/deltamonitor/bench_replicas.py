"""Delta monitor replicas: ticks fully processed per second by one process and by two sharing the book by leases.

Set-up: one PostgreSQL schema (127.0.0.1:5432, database ``test``) holding N option positions (``--style``) over 50
underlyings in accounts of 50 positions (one position watch per option, one underlying watch per account, bands
never crossed), and RabbitMQ (127.0.0.1:5672). Each replica is a real process running the delta monitor's
application (store, partition keeper, monitor, the service's ``TickConsumer``) with the core_ext pricer; the
replicas split the 64 account partitions by leases in PostgreSQL, so each re-prices and evaluates its half of the
book on every tick.

The feeder costs nothing during the measurement: before the replicas start consuming, it declares one queue per
replica bound to ``marketdata.quotes.*`` and publishes the burst of T quote messages (market data's wire format,
one quote per message, round-robin over the underlyings) into them. The replicas load their partitions, report
ready, and are told to go together; each reports when it has applied all T ticks. A tick is fully processed
when every replica has applied it, so the wall figure is T / (last replica's finish - go). Each replica also
reports its process CPU time: T / (the busiest replica's CPU seconds) is what the replicas sustain when each
has a core to itself, a figure that holds on a shared machine where the wall figure does not (two replicas plus
the RabbitMQ broker need three cores).

    PYTHONPATH=. .venv/bin/python benchmarks/deltamonitor/bench_replicas.py --positions 10000 --ticks 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.deltamonitor.adapters.peers import InMemoryBroker
from services.deltamonitor.adapters.postgres_store import PostgresStore
from services.deltamonitor.adapters.pricing import CoreExtPricer
from services.deltamonitor.adapters.records import position_to_json, watch_spec_to_json
from services.deltamonitor.app import AppSettings
from services.deltamonitor.domain.model import (
    HeldPosition,
    Metric,
    PositionTarget,
    Severity,
    StaticBand,
    UnderlyingTarget,
    Watch,
)
from services.deltamonitor.domain.partitions import PARTITION_COUNT, partition_of
from services.deltamonitor.wiring import assemble
from services.platform.bus import RabbitMqBus
from services.platform.clock import SystemClock
from services.platform.identity import JwtAuthenticator, StaticKeySource
from tests.fakes.access_tokens import TokenIssuer

DSN = "postgresql://postgres@127.0.0.1:5432/test"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
EXCHANGE = "bench-deltamonitor-replicas"
UNDERLYINGS = [f"U{i:02d}" for i in range(50)]
PER_ACCOUNT = 50
TICKS = ("marketdata.quotes.*",)
USER = "bench-user"


def _american() -> bool:
    # Set by --style in the driver; the replica processes inherit it through the environment.
    return os.environ.get("BENCH_DMR_STYLE", "european") == "american"


def _book(n_positions: int) -> tuple[list[HeldPosition], list[Watch]]:
    now = datetime.now(UTC)
    american = _american()
    positions: list[HeldPosition] = []
    watches: list[Watch] = []
    for i in range(n_positions):
        account = f"R{i // PER_ACCOUNT:05d}"
        u = UNDERLYINGS[i % len(UNDERLYINGS)]
        h = zlib.crc32(f"{u}-{i}".encode())
        symbol = f"{u}-{i}"
        positions.append(HeldPosition(account, symbol, u, float(h % 39 - 19 or 1), 100.0, True, bool(h & 1),
                                      float(80 + h % 41), now + timedelta(days=7 + h % 393), american, f".{symbol}"))
        watches.append(Watch(f"p{i}", USER, account, "", PositionTarget(symbol), Metric.SHARES, "",
                             StaticBand(-1e9, 1e9), 0.2, timedelta(0), timedelta(0), Severity.INFO, now, now))
    for a in range(n_positions // PER_ACCOUNT):
        watches.append(Watch(f"a{a}", USER, f"R{a:05d}", "", UnderlyingTarget(UNDERLYINGS[a % len(UNDERLYINGS)]),
                             Metric.DOLLARS, "", StaticBand(-1e12, 1e12), 0.2, timedelta(0), timedelta(0),
                             Severity.INFO, now, now))
    return positions, watches


def _vol(symbol: str) -> float:
    return 0.15 + (zlib.crc32(symbol.encode()) % 45) / 100


def _quote(symbol: str, price: float, i: int) -> bytes:
    item = {"symbol": symbol, "bid_price": price - 0.01, "ask_price": price + 0.01, "mark_price": price,
            "last_price": None, "time_unix_nanos": time.time_ns() + i}
    return json.dumps({"source": "simulator", "quotes": [item]}, separators=(",", ":")).encode()


class _QueueBus:
    """The RabbitMQ bus, with the tick subscription on a named, pre-filled queue instead of a private one."""

    def __init__(self, bus: RabbitMqBus, queue: str) -> None:
        self._bus = bus
        self._queue = queue

    async def subscribe(self, patterns: Any, **kwargs: Any) -> Any:
        if tuple(patterns) == TICKS:
            kwargs.pop("max_length", None)
            return await self._bus.subscribe(patterns, queue=self._queue, **kwargs)
        return await self._bus.subscribe(patterns, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)


# ------------------------------------------------------------------------------------------- replica process


async def replica(schema: str, queue: str, replicas: int, ticks: int, lease: float, n_positions: int) -> None:
    """One replica: claim its share, prime the book, report READY, wait for GO, apply the burst, report."""
    positions, _ = _book(n_positions)
    tokens, clock = TokenIssuer(), SystemClock()
    store = PostgresStore(DSN, schema=schema)
    bus = await RabbitMqBus.connect(AMQP, exchange=EXCHANGE)
    assembly = assemble(
        settings=AppSettings(stale_check_seconds=3600.0, live_flush_seconds=3600.0, lease_seconds=lease,
                             reconcile_seconds=3600.0, watch_limit=10**9),
        store=store, bus=_QueueBus(bus, queue), clock=clock, positions=InMemoryBroker(), inputs=None,  # type: ignore[arg-type]
        authenticator=JwtAuthenticator(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience=tokens.audience,
                                       clock=clock),
        pricer=CoreExtPricer(), calendar=ExchangeCalendar(around=datetime.now(UTC)), tick_patterns=TICKS,
    )
    app, monitor = assembly.app, assembly.app.monitor
    await store.start()
    await app.start()
    assert app.keeper is not None
    deadline = time.monotonic() + 20 * lease
    while True:
        view = app.keeper.last_view
        if view is not None and len(view.replicas) == replicas and monitor.partitions is not None \
                and len(monitor.partitions) == view.target and time.monotonic() > 0:
            break
        assert time.monotonic() < deadline, "partitions did not settle"
        await asyncio.sleep(0.05)
    now = datetime.now(UTC)
    for p in positions:
        monitor.on_greeks(p.streamer_symbol, _vol(p.streamer_symbol), now)
    for u in UNDERLYINGS:
        await monitor.on_quote(u, 100.0, now)
    owned = sum(1 for p in positions if partition_of(p.account_number) in monitor.partitions)
    print(json.dumps({"ready": True, "partitions": len(monitor.partitions), "positions": owned}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    before, book_before = monitor.stats.ticks, monitor.stats.book_seconds
    started, cpu = time.monotonic(), time.process_time()
    await assembly.ticks.start()
    while monitor.stats.ticks - before < ticks:
        await asyncio.sleep(0.001)
    finished, cpu = time.monotonic(), time.process_time() - cpu
    print(json.dumps({"start": started, "end": finished, "cpu_seconds": cpu,
                      "book_seconds": monitor.stats.book_seconds - book_before}),
          flush=True)
    await assembly.ticks.stop()
    await app.stop()
    await store.close()
    await bus.close()


# ------------------------------------------------------------------------------------------- feeder and driver


async def _populate(schema: str, n_positions: int) -> None:
    positions, watches = _book(n_positions)
    store = PostgresStore(DSN, schema=schema)
    await store.start()
    try:
        await store.pool.executemany(
            "INSERT INTO watches (watch_id, user_id, account_number, request_id, spec, create_time, update_time)"
            " VALUES ($1, $2, $3, NULL, $4::jsonb, $5, $6)",
            [(w.watch_id, w.user_id, w.account_number, json.dumps(watch_spec_to_json(w)), w.create_time, w.update_time)
             for w in watches],
        )
        by_account: dict[str, list[HeldPosition]] = {}
        for p in positions:
            by_account.setdefault(p.account_number, []).append(p)
        await store.pool.executemany(
            "INSERT INTO accounts (account_number, positions, inputs) VALUES ($1, $2::jsonb, $3::jsonb)",
            [(a, json.dumps([position_to_json(p) for p in ps]),
              json.dumps({"betas": {}, "dividend_yields": {}, "rate": None})) for a, ps in by_account.items()],
        )
    finally:
        await store.close()


async def _fill(queues: list[str], ticks: int) -> float:
    bus = await RabbitMqBus.connect(AMQP, exchange=EXCHANGE)
    try:
        for queue in queues:
            await bus.delete_queue(queue)
            subscription = await bus.subscribe(list(TICKS), queue=queue, prefetch=1)
            await subscription.close()
        started = time.perf_counter()
        batch: list[Any] = []
        for i in range(ticks):
            u = UNDERLYINGS[i % len(UNDERLYINGS)]
            price = 100.0 * (1.0 + 0.002 * ((i * 7919) % 101 - 50) / 50)
            batch.append(bus.publish(f"marketdata.quotes.{u}", _quote(u, price, i), f"t{i}"))
            if len(batch) == 500:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
        return ticks / (time.perf_counter() - started)
    finally:
        await bus.close()


async def _drop_queues(queues: list[str]) -> None:
    bus = await RabbitMqBus.connect(AMQP, exchange=EXCHANGE)
    try:
        for queue in queues:
            await bus.delete_queue(queue)
    finally:
        await bus.close()


async def _reset_leases(schema: str) -> None:
    connection = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        await connection.execute("DELETE FROM replicas; DELETE FROM partition_leases")
    finally:
        await connection.close()


def _measure(schema: str, replicas: int, ticks: int, lease: float, n_positions: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    queues = [f"bench-dmr-{run}-{i}" for i in range(replicas)]
    asyncio.run(_reset_leases(schema))
    publish_rate = asyncio.run(_fill(queues, ticks))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
           # One core per replica: core_ext's American kernel would otherwise split each array over both cores.
           "TASTYPLAT_CORE_THREADS": "1"}
    children = []
    try:
        for i, queue in enumerate(queues):
            children.append(subprocess.Popen(
                [sys.executable, __file__, "--replica", schema, queue, str(replicas), str(ticks), str(lease),
                 str(n_positions)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            ))
            time.sleep(0.5)  # start in order, so the shares are settled by one rebalance
        ready = [json.loads(c.stdout.readline()) for c in children]  # type: ignore[union-attr]
        for child in children:
            child.stdin.write("go\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]
        reports = [json.loads(c.stdout.readline()) for c in children]  # type: ignore[union-attr]
        for child in children:
            child.wait(timeout=60)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        asyncio.run(_drop_queues(queues))
    elapsed = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return {
        "replicas": replicas,
        "ticks_per_second": ticks / elapsed,
        "split": "/".join(str(r["positions"]) for r in ready),
        "book_us_per_tick": [round(r["book_seconds"] / ticks * 1e6) for r in reports],
        "cpu_us_per_tick": [round(r["cpu_seconds"] / ticks * 1e6) for r in reports],
        # What the replicas sustain when each has a core to itself: the busiest one's CPU time per tick.
        "capacity": ticks / max(r["cpu_seconds"] for r in reports),
        "publish_rate": publish_rate,
    }


def main() -> None:
    """Parse arguments, run one and two replicas, print the figures and the ratio."""
    if len(sys.argv) > 1 and sys.argv[1] == "--replica":
        schema, queue, replicas, ticks, lease, n_positions = sys.argv[2:8]
        asyncio.run(replica(schema, queue, int(replicas), int(ticks), float(lease), int(n_positions)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=20_000)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--style", choices=["european", "american"], default="european",
                        help="exercise style of every option (American: Bjerksund-Stensland 2002 for the puts)")
    args = parser.parse_args()
    os.environ["BENCH_DMR_STYLE"] = args.style
    schema = f"bench_dmr_{uuid.uuid4().hex[:8]}"
    asyncio.run(_populate(schema, args.positions))
    try:
        rows = []
        for _ in range(args.repeat):
            for replicas in (1, 2):
                rows.append(_measure(schema, replicas, args.ticks, args.lease, args.positions))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        async def drop() -> None:
            connection = await asyncpg.connect(DSN)
            await connection.execute(f"DROP SCHEMA {schema} CASCADE")
            await connection.close()

        asyncio.run(drop())
    print(f"\n{args.positions:,} {args.style.capitalize()} positions over {len(UNDERLYINGS)} underlyings, "
          f"{args.positions // PER_ACCOUNT} accounts, {args.ticks:,} ticks, {PARTITION_COUNT} partitions")
    print("| replicas | positions per replica | ticks/s fully processed (wall) | CPU µs per tick (each replica) |"
          " book µs per tick | ticks/s at one core per replica (CPU) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['replicas']} | {row['split']} | {row['ticks_per_second']:,.0f} | {row['cpu_us_per_tick']} |"
              f" {row['book_us_per_tick']} | {row['capacity']:,.0f} |")
    for key, label in (("ticks_per_second", "wall"), ("capacity", "CPU")):
        ones = [r[key] for r in rows if r["replicas"] == 1]
        twos = [r[key] for r in rows if r["replicas"] == 2]
        print(f"ratio 2/1 ({label}): {sum(twos) / len(twos) / (sum(ones) / len(ones)):.2f}")


if __name__ == "__main__":
    main()
