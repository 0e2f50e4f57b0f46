"""Two market data replicas behind Envoy (distributed mode): one publishes ticks on the bus; when a replica is
SIGKILLed, its StreamQuotes subscribers see their stream fail, resubscribe through the gateway, and get a
fresh snapshot then live updates from the survivor, which also takes the bus over."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence

import grpc
import grpc.aio
import pytest
from distributed_proc import DistributedPlatform, cleanup, start_distributed
from embedded_proc import sign_up
from tastyplat.marketdata.v1 import marketdata_service_pb2 as md_pb2
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as md_grpc

from services.platform.bus import RabbitMqBus

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

CLUSTER = "tastyplat_marketdata"
# Bounds that only tell a hang from a slow machine; nothing here asserts how fast anything is.
PATIENCE = 45.0
# Codes resubscribing cannot fix.
FINAL = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
SYMBOL_SETS = (("SPY", "QQQ"), ("AAPL", "MSFT", "NVDA"), ("TSLA", "IWM"), ("AMZN", "META", "GOOGL"))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributedPlatform]:
    running = start_distributed(
        tmp_path_factory.mktemp("md-replicas"), services=("user", "marketdata"), replicas={"marketdata": 2}
    )
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()
        cleanup(running.run_id, running.vhost)


@pytest.fixture(scope="module")
def token(platform: DistributedPlatform) -> str:
    return str(sign_up(platform.rest_base, prefix="md-replicas")["access_token"])


# ------------------------------------------------------------------------------ the reconnecting subscriber


@dataclasses.dataclass
class Session:
    """One StreamQuotes call of a subscriber."""

    started: float
    snapshot_at: float | None = None
    snapshot_symbols: frozenset[str] = frozenset()
    updated_at: dict[str, float] = dataclasses.field(default_factory=dict)  # first update of each symbol
    last_update: float = 0.0
    ended_at: float | None = None
    code: grpc.StatusCode | None = None

    def complete(self, symbols: Sequence[str]) -> bool:
        """A snapshot arrived, then a live update of every symbol."""
        return self.snapshot_at is not None and set(symbols) <= set(self.updated_at)


class ReconnectingSubscriber:
    """StreamQuotes that resubscribes after a failed or ended stream (the recipe of services/marketdata/README.md).

    Each new call starts with a snapshot of the latest values, so nothing has to be replayed: the subscriber
    replaces its view with the snapshot and applies the updates that follow. Backoff doubles from 0.1 s to
    2 s and resets once a call delivers its snapshot; `attempts` consecutive failed calls, or a status no
    retry can fix (`FINAL`), give up.
    """

    def __init__(self, channel: grpc.aio.Channel, symbols: Sequence[str], token: str, *, attempts: int = 8) -> None:
        self.symbols = tuple(symbols)
        self.sessions: list[Session] = []
        self.latest: dict[str, float] = {}  # symbol -> mark price: the subscriber's view
        self._stub = md_grpc.MarketDataServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._attempts = attempts
        self.changed = asyncio.Event()

    async def run(self) -> None:
        failures, backoff = 0, 0.1
        while failures < self._attempts:
            session = Session(started=time.monotonic())
            self.sessions.append(session)
            call = self._stub.StreamQuotes(md_pb2.StreamQuotesRequest(symbols=self.symbols), metadata=self._metadata)
            try:
                async for message in call:
                    if message.WhichOneof("event") != "quotes":
                        continue  # heartbeats; a StreamEnd is followed by the end of the call
                    batch, now = message.quotes, time.monotonic()
                    if batch.snapshot:
                        session.snapshot_at, session.snapshot_symbols = now, frozenset(batch.symbols)
                        self.latest = dict(zip(batch.symbols, batch.mark_prices, strict=True))
                        failures, backoff = 0, 0.1
                    else:
                        for symbol, mark in zip(batch.symbols, batch.mark_prices, strict=True):
                            session.updated_at.setdefault(symbol, now)
                            self.latest[symbol] = mark
                        session.last_update = now
                    self.changed.set()
                session.code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                session.code = error.code()
                if session.code in FINAL:
                    session.ended_at = time.monotonic()
                    self.changed.set()
                    return
                failures += 1
            session.ended_at = time.monotonic()
            self.changed.set()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def wait_for(self, condition, what: str, timeout: float = PATIENCE) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not condition(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.symbols}: {what} within {timeout:.0f} s; sessions: {self.sessions}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass


@pytest.fixture
async def gateway_channel(platform: DistributedPlatform) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(platform.gateway_target) as channel:
        yield channel


# ------------------------------------------------------------------------------ who is who


def _instances(platform: DistributedPlatform) -> dict[str, dict]:
    """The market data replicas' process table rows by address."""
    return {row["address"]: row for row in platform.process_table() if row["service"] == "marketdata"}


def _active(platform: DistributedPlatform) -> dict[str, int]:
    return {host: int(stats.get("rq_active", "0")) for host, stats in platform.host_stats(CLUSTER).items()}


def _publishing(row: dict) -> bool:
    try:
        with urllib.request.urlopen(f"http://{row['metrics']}/metrics", timeout=5) as response:  # noqa: S310
            text = response.read().decode()
    except OSError:  # a dead replica publishes nothing
        return False
    return "tastyplat_marketdata_bus_publisher 1.0" in text


async def _publishers(platform: DistributedPlatform) -> list[str]:
    """Addresses of the replicas that say they hold the publisher lease (exactly one once it settles)."""
    for _ in range(100):
        holders = [address for address, row in _instances(platform).items() if await asyncio.to_thread(_publishing, row)]
        if len(holders) == 1:
            return holders
        await asyncio.sleep(0.2)
    return holders


async def _tick_publishers(platform: DistributedPlatform, seconds: float) -> list[str]:
    """The instance part of the ids of every tick message published during `seconds` (``md-<instance>-<n>``)."""
    bus = await RabbitMqBus.connect(f"amqp://guest:guest@127.0.0.1:5672/{platform.vhost}", exchange="tastyplat")
    seen: list[str] = []
    try:
        async with await bus.subscribe("marketdata.quotes.#") as ticks:
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    delivery = await asyncio.wait_for(ticks.__anext__(), remaining)
                except TimeoutError:
                    break
                seen.append(delivery.message_id.split("-")[1])
                await delivery.ack()
    finally:
        await bus.close()
    return seen


# ------------------------------------------------------------------------------ tests


async def test_both_replicas_serve_and_one_publishes_ticks_on_the_bus(platform: DistributedPlatform) -> None:
    hosts = platform.host_stats(CLUSTER)
    assert sorted(hosts) == sorted(_instances(platform)) and len(hosts) == 2
    assert all(stats["health_flags"] == "healthy" for stats in hosts.values()), hosts
    assert len(await _publishers(platform)) == 1
    publishers = await _tick_publishers(platform, 2.0)
    assert publishers, "no ticks on the bus"
    assert len(set(publishers)) == 1, f"ticks from several replicas: {sorted(set(publishers))}"


async def test_killed_replicas_subscribers_resume_on_the_survivor(
    platform: DistributedPlatform, gateway_channel: grpc.aio.Channel, token: str
) -> None:
    (victim,) = await _publishers(platform)  # killing the publisher also checks the bus takeover
    (survivor,) = [address for address in _instances(platform) if address != victim]
    subscribers: list[ReconnectingSubscriber] = []
    served_by: dict[int, str] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        # Open subscribers one by one and tell, from Envoy's per-host active requests, which replica took each;
        # round robin spreads them, so both replicas soon serve some.
        for n in range(12):
            before = _active(platform)
            subscriber = ReconnectingSubscriber(gateway_channel, SYMBOL_SETS[n % len(SYMBOL_SETS)], token)
            subscribers.append(subscriber)
            tasks.append(asyncio.create_task(subscriber.run()))
            await subscriber.wait_for(lambda s: s.sessions and s.sessions[0].complete(s.symbols), "a first snapshot and updates")
            after = _active(platform)
            (host,) = [h for h in after if after[h] > before.get(h, 0)]
            served_by[n] = host
            on_victim = sum(h == victim for h in served_by.values())
            if on_victim >= 2 and len(served_by) - on_victim >= 1:
                break
        doomed = [s for n, s in enumerate(subscribers) if served_by[n] == victim]
        spared = [s for n, s in enumerate(subscribers) if served_by[n] == survivor]
        assert len(doomed) >= 2 and spared, served_by

        killed_at = time.monotonic()
        platform.kill(_instances(platform)[victim]["name"])

        for subscriber in doomed:
            await subscriber.wait_for(lambda s: s.sessions[0].ended_at is not None, "the cut stream to fail")
            first = subscriber.sessions[0]
            assert first.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL), first
        for subscriber in doomed:
            await subscriber.wait_for(
                lambda s: any(session.complete(s.symbols) for session in s.sessions[1:]),
                "a new snapshot and updates of every symbol through the gateway",
            )
            resumed = next(session for session in subscriber.sessions[1:] if session.complete(subscriber.symbols))
            assert resumed.code is None, "the resumed stream is still open"
            assert resumed.snapshot_symbols == set(subscriber.symbols), "the survivor follows them all: full snapshot"
            assert set(subscriber.latest) == set(subscriber.symbols)
        # The survivor's subscribers never noticed.
        for subscriber in spared:
            mark = time.monotonic()
            await subscriber.wait_for(lambda s: s.sessions[0].last_update > mark, "a further update")
            assert len(subscriber.sessions) == 1 and subscriber.sessions[0].ended_at is None

        reconnects = sorted(
            next(x.snapshot_at for x in s.sessions[1:] if x.snapshot_at) - killed_at for s in doomed  # type: ignore[operator]
        )
        failures = sorted(s.sessions[0].ended_at - killed_at for s in doomed)  # type: ignore[operator]
        print(
            f"\n{len(doomed)} subscribers on the killed replica, {len(spared)} on the survivor; stream failed after "
            f"{', '.join(f'{t:.3f}' for t in failures)} s; new snapshot after {', '.join(f'{t:.3f}' for t in reconnects)} s; "
            f"calls per subscriber {[len(s.sessions) for s in doomed]}; codes {[s.sessions[0].code for s in doomed]}"
        )
        # Every stream is on the survivor now.
        assert _active(platform).get(survivor, 0) >= len(subscribers)

        # A new subscriber after the kill is served (by the survivor: the dead replica refuses connections and
        # Envoy retries connect failures on another host).
        latecomer = ReconnectingSubscriber(gateway_channel, ("SPY", "TSLA"), token)
        tasks.append(asyncio.create_task(latecomer.run()))
        await latecomer.wait_for(lambda s: s.sessions and s.sessions[0].complete(s.symbols), "a snapshot and updates")
        assert len(latecomer.sessions) == 1

        # The survivor took the publisher lease over: ticks keep reaching the bus, from it alone.
        assert await _publishers(platform) == [survivor]
        publishers = await _tick_publishers(platform, 2.0)
        assert publishers and len(set(publishers)) == 1

        # Envoy takes the dead replica out of rotation (active health check or outlier detection).
        for _ in range(int(PATIENCE * 5)):
            if platform.host_stats(CLUSTER)[victim]["health_flags"] != "healthy":
                break
            await asyncio.sleep(0.2)
        flags = platform.host_stats(CLUSTER)[victim]["health_flags"]
        assert "failed" in flags, flags
        print(f"Envoy marked the killed replica {flags} after {time.monotonic() - killed_at:.1f} s")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
