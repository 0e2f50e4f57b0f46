"""Delta monitor benchmark: ticks per second re-priced and evaluated, and tick-to-StreamAlerts alert latency.

Set-up (embedded mode, one process, one event loop, as ``make run`` has them): the market data service and the
delta monitor on one gRPC server on loopback, the in-process bus between them, their PostgreSQL schemas on
127.0.0.1:5432 (database ``test``, throw-away schemas: the delta monitor's store, market data's tick history),
the core_ext pricer, and N watched option positions spread over 50 underlyings (one position watch per option,
plus one underlying watch per account). Ticks enter through the market data service's feed port: the market
simulator (its 50 underlyings at 100) is stepped as fast as the pipeline takes its quotes, each step one quote
per underlying; market data folds them into its book, writes their history and publishes every quote on the bus
(``marketdata.quotes.<U>``, a round at most every 2 ms, as embedded); the delta monitor re-prices every affected
position on every quote. Option implied vols are set once at the start (the load is underlying ticks).

Phase 1 (throughput): T ticks; the simulator runs ahead of the delta monitor by at most ``--window`` ticks
(a closed loop: nothing is dropped or conflated, the figure is what the whole pipeline sustains); figure =
ticks / wall time until the monitor has processed all of them; the share of the book's time spent inside
core_ext is measured by timing core_ext's kernel inside the book's compiled tick (and any pricer call from Python), market data's share by timing its ingest and bus rounds.

Phase 2 (latency under load): a paced background load (``--rate`` ticks/s over the 50 underlyings, a few quotes
every 2 ms, capped at 80 % of the phase-1 throughput so the pipeline does not just build a backlog) plus, every ``--alert-every``
seconds, a feed quote that moves one canary watch across its band (and the next one back deep inside,
re-arming it); latency = the quote entering the market data service (its feed batch) -> the alert read by a
StreamAlerts subscriber over gRPC (through market data, the bus, the book, the store, the outbox and the hub).

``--entry bus`` skips the market data service and publishes one quote per bus message instead (the cost of the
delta monitor alone).

    .venv/bin/python benchmarks/deltamonitor/bench_deltamonitor.py --positions 1000 10000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as pb
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2_grpc as pb_grpc

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.platform.identity import JwtAuthenticator, StaticKeySource
from services.deltamonitor.adapters.peers import InMemoryBroker
from services.deltamonitor.adapters.postgres_store import PostgresStore
from services.deltamonitor.adapters.pricing import CoreExtPricer
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
from services.deltamonitor.wiring import assemble
from services.marketdata.config import MarketDataSettings
from services.marketdata.domain.events import FeedEvent, FeedKind, QuoteEvent
from services.marketdata.domain.simulator import MarketSimulator, UnderlyingSpec
from services.marketdata.ports import FeedStatus
from services.marketdata.wiring import build as build_marketdata
from services.marketdata.wiring import registration as marketdata_registration
from services.platform.bus import InProcessBus
from services.platform.settings import Secret
from services.platform.clock import SystemClock
from services.platform.testing import client_channel, running_server
from tests.fakes.access_tokens import TokenIssuer

DSN = "postgresql://postgres@127.0.0.1:5432/test"
UNDERLYINGS = [f"U{i:02d}" for i in range(50)]
USER = "bench-user"
CANARY = "CANARY"


class DrivenFeed:
    """The market data service's feed port, fed by the benchmark (the simulator stepped on demand)."""

    kind = FeedKind.SIMULATOR

    def __init__(self) -> None:
        self._queue: asyncio.Queue[list[FeedEvent]] = asyncio.Queue()
        self.subscribed: dict[str, set[str]] = {}

    def put(self, events: list[FeedEvent]) -> None:
        self._queue.put_nowait(events)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def subscribe(self, event_type: str, symbols) -> None:  # type: ignore[no-untyped-def]
        self.subscribed.setdefault(event_type, set()).update(symbols)

    async def unsubscribe(self, event_type: str, symbols) -> None:  # type: ignore[no-untyped-def]
        self.subscribed.setdefault(event_type, set()).difference_update(symbols)

    async def batches(self):  # type: ignore[no-untyped-def]
        while True:
            yield await self._queue.get()

    def status(self) -> FeedStatus:
        return FeedStatus(connected=True, down_for=0.0, reconnects=0, last_error=None)


class Timed:
    """Seconds spent in one method of an object (the method is wrapped in place)."""

    def __init__(self, owner: object, name: str) -> None:
        self.seconds = 0.0
        self.calls = 0
        method = getattr(owner, name)
        own = name in vars(owner)
        self._restore = (lambda: setattr(owner, name, method)) if own else (lambda: delattr(owner, name))
        if asyncio.iscoroutinefunction(method):
            async def timed_async(*args, **kwargs):  # type: ignore[no-untyped-def]
                started = time.perf_counter()
                try:
                    return await method(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - started
                    self.calls += 1
            setattr(owner, name, timed_async)
        else:
            def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
                started = time.perf_counter()
                try:
                    return method(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - started
                    self.calls += 1
            setattr(owner, name, timed)

    def restore(self) -> None:
        """Unwrap the method (the timing costs the event loop a little per call)."""
        self._restore()


def _feed_quote(symbol: str, price: float) -> QuoteEvent:
    return QuoteEvent(symbol, round(price - 0.01, 2), round(price + 0.01, 2), 100.0, 100.0, time.time_ns())


def _book(n_positions: int, rng: np.random.Generator, american: bool = True) -> tuple[list[HeldPosition], list[Watch]]:
    now = datetime.now(UTC)
    positions: list[HeldPosition] = []
    watches: list[Watch] = []
    per_account = 50
    for i in range(n_positions):
        account = f"B{i // per_account:05d}"
        u = UNDERLYINGS[i % len(UNDERLYINGS)]
        strike = float(round(100.0 * rng.uniform(0.8, 1.2)))
        expiry = now + timedelta(days=int(rng.integers(7, 400)))
        call = bool(rng.integers(0, 2))
        symbol = f"{u}-{i}"
        positions.append(HeldPosition(account, symbol, u, float(rng.integers(-20, 20) or 1), 100.0, True, call, strike,
                                      expiry, american, f".{symbol}"))
        watches.append(Watch(f"p{i}", USER, account, "", PositionTarget(symbol), Metric.SHARES, "",
                             StaticBand(-1e9, 1e9), 0.2, timedelta(0), timedelta(0), Severity.INFO, now, now))
    for a in range(n_positions // per_account):
        account = f"B{a:05d}"
        watches.append(Watch(f"a{a}", USER, account, "", UnderlyingTarget(UNDERLYINGS[a % len(UNDERLYINGS)]),
                             Metric.DOLLARS, "", StaticBand(-1e12, 1e12), 0.2, timedelta(0), timedelta(0),
                             Severity.INFO, now, now))
    # The canary: 10 calls and short shares on its own underlying, band crossed on demand.
    positions.append(HeldPosition("CANARY-ACCT", f"{CANARY}-C", CANARY, 10.0, 100.0, True, True, 100.0,
                                  now + timedelta(days=365), True, f".{CANARY}-C"))
    positions.append(HeldPosition("CANARY-ACCT", CANARY, CANARY, -500.0, 1.0))
    watches.append(Watch("canary", USER, "CANARY-ACCT", "canary", UnderlyingTarget(CANARY), Metric.SHARES, "",
                         StaticBand(-200.0, 200.0), 0.2, timedelta(0), timedelta(0), Severity.WARNING, now, now))
    return positions, watches


def _quote(symbol: str, price: float) -> bytes:
    item = {"symbol": symbol, "bid_price": price - 0.01, "ask_price": price + 0.01, "mark_price": price,
            "last_price": None, "time_unix_nanos": time.time_ns()}
    return json.dumps({"source": "simulator", "quotes": [item]}, separators=(",", ":")).encode()


async def run(
    n_positions: int,
    ticks: int,
    rate: float,
    alert_every: float,
    alerts: int,
    style: str,
    entry: str = "marketdata",
    window: int = 2000,
    dsn: str = DSN,
    parallel_ticks: bool = False,
) -> dict[str, float | str]:
    """One benchmark configuration; returns its figures."""
    rng = np.random.default_rng(11)
    positions, watches = _book(n_positions, rng, american=style == "american")
    schema = f"bench_dm_{uuid.uuid4().hex[:8]}"
    md_schema = f"bench_md_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(dsn, schema=schema)
    tokens = TokenIssuer()
    clock = SystemClock()
    bus = InProcessBus()
    pricer = CoreExtPricer(parallel_ticks=parallel_ticks)
    core_ext = Timed(pricer, "greeks_into")  # time inside core_ext called from Python (books without a C path)
    broker = InMemoryBroker()
    assembly = assemble(
        # The live states are flushed every 2 s, as the service's default; the stale sweep is off (the options'
        # IVs are set once, so their Greeks would go stale).
        settings=AppSettings(heartbeat_seconds=5.0, stale_check_seconds=3600.0, watch_limit=10**9),
        store=store, bus=bus, clock=clock, positions=broker, inputs=None,
        authenticator=JwtAuthenticator(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience=tokens.audience, clock=clock),
        pricer=pricer, calendar=ExchangeCalendar(around=datetime.now(UTC)),
        tick_patterns=("marketdata.quotes.*",),
    )
    registrations = [assembly.registration]
    feed = DrivenFeed()
    marketdata = None
    if entry == "marketdata":
        md_settings = MarketDataSettings.from_env(
            {}, port=0, feed="simulator", bus="memory", cache="memory", history="postgres",
            database_url=Secret(dsn), database_schema=md_schema, bus_publish_seconds=0.002, pinned_symbols=(),
        )
        marketdata = build_marketdata(md_settings, clock=clock, bus=bus, postgres_dsn=dsn, feed=feed)
        registrations.insert(0, marketdata_registration(marketdata))
    # The simulated market: the benchmark's 50 underlyings at 100, no trades (a tick is a quote).
    simulator = MarketSimulator([UnderlyingSpec(u, 100.0, 0.3, 0.6, spread=0.02) for u in UNDERLYINGS], seed=5,
                                trade_probability=0.0)
    monitor = assembly.app.monitor
    figures: dict[str, float | str] = {"style": style, "entry": entry, "positions": n_positions, "watches": len(watches),
                                       "parallel_ticks": str(parallel_ticks).lower()}

    unsent: list[str] = []
    stepped: list[QuoteEvent] = []

    async def send_ticks(count: int, tag: str) -> None:
        # The next `count` underlyings' quotes, round robin; the simulator steps at the start of each round.
        if entry == "marketdata":
            # A step's quotes of all 50 underlyings come from one simulator call (as the simulator feed makes
            # them) and enter market data `count` at a time: the load generator costs the event loop little.
            events: list[FeedEvent] = []
            while len(events) < count:
                if not stepped:
                    simulator.step(0.01)
                    stepped.extend(simulator.underlying_events(UNDERLYINGS, time.time_ns())[0])
                take = min(count - len(events), len(stepped))
                events += stepped[:take]
                del stepped[:take]
            feed.put(events)
            return
        names: list[str] = []
        while len(names) < count:
            if not unsent:
                simulator.step(0.01)
                unsent.extend(UNDERLYINGS)
            take = min(count - len(names), len(unsent))
            names += unsent[:take]
            del unsent[:take]
        for k, u in enumerate(names):
            await bus.publish(f"marketdata.quotes.{u}", _quote(u, simulator.spot(u)), f"{tag}-{k}")

    try:
        async with running_server(registrations) as server:
            for first in range(0, len(watches), 32):
                await asyncio.gather(*(store.create_watch(w, "", 10**9) for w in watches[first : first + 32]))
            by_account: dict[str, list[HeldPosition]] = {}
            for p in positions:
                by_account.setdefault(p.account_number, []).append(p)
            built = time.perf_counter()
            # Positions as the broker would report them for every watched account, then one book build.
            for account, account_positions in by_account.items():
                monitor.positions_snapshot(account, account_positions)
            await monitor.load()
            figures["build_seconds"] = time.perf_counter() - built
            for p in positions:
                if p.is_option:
                    vol = 0.2 if p.underlying_symbol == CANARY else float(rng.uniform(0.15, 0.6))
                    monitor.on_greeks(p.streamer_symbol, vol, datetime.now(UTC))
            for u in UNDERLYINGS:
                await monitor.on_quote(u, 100.0, datetime.now(UTC))
            await monitor.on_quote(CANARY, 100.0, datetime.now(UTC))
            md_ingest = md_rounds = None
            if marketdata is not None:
                assert marketdata.app is not None
                md_ingest = Timed(marketdata.app, "ingest")
                md_rounds = Timed(marketdata.app, "publish_ticks")

            # The service freezes what is alive after start-up (DELTAMONITOR_GC_FREEZE, default on); here the
            # book is loaded after the server started, so freeze once it is built, as the service's start would.
            gc.collect()
            gc.freeze()
            # Phase 1: throughput, the simulator at most `window` ticks ahead of the monitor.
            start_ticks = monitor.stats.ticks
            priced_before = monitor.stats.priced
            core_ext.seconds, monitor.stats.book_seconds = 0.0, 0.0
            kernel_before = monitor.book.kernel_seconds()  # core_ext's kernel called from the compiled ticks
            produced, step = 0, 0
            started = time.perf_counter()
            while produced < ticks:
                if produced - (monitor.stats.ticks - start_ticks) >= window:
                    await asyncio.sleep(0.0005)
                    continue
                count = min(len(UNDERLYINGS), ticks - produced)
                await send_ticks(count, f"t{step}")
                produced += count
                step += 1
                await asyncio.sleep(0)
            deadline = time.perf_counter() + 120.0
            while monitor.stats.ticks - start_ticks < ticks and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            elapsed = time.perf_counter() - started
            processed = monitor.stats.ticks - start_ticks
            core_ext.seconds += monitor.book.kernel_seconds() - kernel_before
            figures["ticks_processed"] = processed
            figures["ticks_per_second"] = processed / elapsed
            figures["options_repriced_per_second"] = (monitor.stats.priced - priced_before) / elapsed
            figures["book_share_of_wall"] = monitor.stats.book_seconds / elapsed
            figures["core_ext_share_of_book"] = core_ext.seconds / monitor.stats.book_seconds
            figures["core_ext_share_of_wall"] = core_ext.seconds / elapsed
            figures["book_us_per_tick"] = monitor.stats.book_seconds / max(processed, 1) * 1e6
            if md_ingest is not None and md_rounds is not None:
                figures["marketdata_share_of_wall"] = (md_ingest.seconds + md_rounds.seconds) / elapsed
                figures["marketdata_us_per_tick"] = (md_ingest.seconds + md_rounds.seconds) / max(processed, 1) * 1e6

            # Phase 2: alert latency under paced load, without phase 1's timers.
            for timer in (core_ext, md_ingest, md_rounds):
                if timer is not None:
                    timer.restore()
            channel = client_channel(server)
            stub = pb_grpc.DeltaMonitorServiceStub(channel)
            stream = stub.StreamAlerts(pb.StreamAlertsRequest(), metadata=tokens.metadata(USER))
            await stream.read()
            sent: dict[int, float] = {}
            latencies: list[float] = []
            done = asyncio.Event()

            async def receive() -> None:
                while len(latencies) < alerts:
                    message = await stream.read()
                    if message.WhichOneof("event") == "alert":
                        latencies.append(time.perf_counter() - sent[len(latencies)])
                done.set()

            # Load beyond the measured capacity only grows a backlog (latency then measures the queue, not the
            # monitor), so phase 2 runs at the requested rate or 80 % of phase 1's throughput, whichever is lower.
            paced = min(rate, 0.8 * float(figures["ticks_per_second"]))
            figures["load_rate_asked"] = rate
            figures["load_rate_used"] = paced

            async def load() -> None:
                # The quotes of the simulator's steps spread evenly, a few every 2 ms, as a live feed spreads them.
                period = 0.002
                owed = 0.0
                sent_ticks = 0
                next_at = time.perf_counter()
                while not done.is_set():
                    owed += paced * period
                    if owed >= 1.0:
                        await send_ticks(int(owed), f"l{sent_ticks}")
                        sent_ticks += int(owed)
                        owed -= int(owed)
                    next_at += period
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                figures["load_ticks_per_second"] = sent_ticks / (time.perf_counter() - load_started)

            async def canary(price: float, tag: str) -> None:
                if entry == "marketdata":
                    feed.put([_feed_quote(CANARY, price)])
                else:
                    await bus.publish(f"marketdata.quotes.{CANARY}", _quote(CANARY, price), tag)

            # The periodic flush's scan of the whole book for states to save (its cost grows with the book).
            flush_scan = Timed(monitor, "_moved")
            receiver = asyncio.create_task(receive())
            load_started = time.perf_counter()
            loader = asyncio.create_task(load())
            for k in range(alerts):
                await asyncio.sleep(alert_every / 2)
                await canary(100.0, f"c-down-{k}")
                await asyncio.sleep(alert_every / 2)
                sent[k] = time.perf_counter()
                await canary(140.0, f"c-up-{k}")
            await asyncio.wait_for(done.wait(), 120)
            await loader
            await receiver
            stream.cancel()
            await channel.close()
            flush_scan.restore()
            figures["flushes"] = flush_scan.calls
            figures["flush_scan_ms"] = flush_scan.seconds / max(flush_scan.calls, 1) * 1e3
            ms = sorted(x * 1000 for x in latencies)
            figures["alerts"] = len(ms)
            figures["alert_p50_ms"] = statistics.median(ms)
            figures["alert_p99_ms"] = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
            figures["alert_max_ms"] = ms[-1]
    finally:
        gc.unfreeze()
        await bus.close()
        connection = await asyncpg.connect(dsn)
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.execute(f"DROP SCHEMA IF EXISTS {md_schema} CASCADE")
        await connection.close()
    return figures


def main() -> None:
    """Run the configurations and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ticks", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=5000.0, help="background ticks per second in phase 2")
    parser.add_argument("--alert-every", type=float, default=0.1)
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--style", choices=["american", "european"], nargs="+", default=["american", "european"],
                        help="exercise style of the benchmark's options (equity options are American)")
    parser.add_argument("--entry", choices=["marketdata", "bus"], nargs="+", default=["marketdata"],
                        help="where ticks enter: the market data service's feed (embedded mode) or the bus directly")
    parser.add_argument("--window", type=int, default=2000, help="phase 1: most ticks ahead of the monitor")
    parser.add_argument("--dsn", default=DSN, help="PostgreSQL for both services' schemas (asyncpg DSN; query "
                        "parameters such as ?synchronous_commit=off become session settings)")
    parser.add_argument("--parallel-ticks", action="store_true",
                        help="let a tick's American pricing use core_ext's threads (DELTAMONITOR_PARALLEL_TICKS)")
    args = parser.parse_args()
    for entry in args.entry:
        for style in args.style:
            for n in args.positions:
                figures = asyncio.run(
                    run(n, args.ticks, args.rate, args.alert_every, args.alerts, style, entry, args.window, args.dsn,
                        args.parallel_ticks)
                )
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}), flush=True)


if __name__ == "__main__":
    main()
