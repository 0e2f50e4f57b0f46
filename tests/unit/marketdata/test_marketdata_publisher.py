"""Two market data replicas on one bus: only the holder of the publisher lease publishes ticks; the other
takes over when the lease frees, starting with the latest value of each symbol it saw meanwhile."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from services.marketdata.adapters.memory_history import InMemoryTickStore
from services.marketdata.app import AppSettings, MarketDataApp
from services.marketdata.domain.events import QuoteEvent
from services.platform.bus import InProcessBus
from services.platform.cache import InProcessCache
from services.platform.clock import SystemClock

from tests.unit.marketdata.conftest import ScriptedFeed

T0 = 1_704_205_800 * 1_000_000_000


class Leases:
    """One lease shared by the replicas of a test: the first to ask holds it until it releases."""

    def __init__(self) -> None:
        self.holder: Lease | None = None


class Lease:
    def __init__(self, leases: Leases) -> None:
        self._leases = leases

    async def hold(self) -> bool:
        if self._leases.holder is None:
            self._leases.holder = self
        return self._leases.holder is self

    async def release(self) -> None:
        if self._leases.holder is self:
            self._leases.holder = None


def _replica(bus: InProcessBus, feed: ScriptedFeed, lease: Lease, instance: str) -> MarketDataApp:
    settings = AppSettings(
        cache_flush_interval=0.01,
        bus_publish_interval=0.01,
        publisher_check_interval=0.02,
        pinned_symbols=("SPY",),
        instance_id=instance,
    )
    return MarketDataApp(
        feed=feed, cache=InProcessCache(), bus=bus, history=InMemoryTickStore(), clock=SystemClock(),
        settings=settings, publisher=lease,
    )  # fmt: skip


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[InProcessBus, list[ScriptedFeed], list[MarketDataApp]]]:
    bus, leases = InProcessBus(), Leases()
    feeds = [ScriptedFeed(), ScriptedFeed()]
    apps = [_replica(bus, feeds[0], Lease(leases), "first"), _replica(bus, feeds[1], Lease(leases), "second")]
    for app in apps:
        await app.start()  # the first to start takes the lease
    yield bus, feeds, apps
    for app in apps:
        await app.stop()
    await bus.close()


def q(bid: float, at: int) -> QuoteEvent:
    return QuoteEvent("SPY", bid, bid + 0.02, 100.0, 100.0, at)


async def _next(subscription) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    delivery = await asyncio.wait_for(subscription.__anext__(), 2.0)
    await delivery.ack()
    return delivery.message_id, json.loads(delivery.payload)["quotes"]


async def test_only_the_lease_holder_publishes_ticks_every_replica_sees(replicas) -> None:  # type: ignore[no-untyped-def]
    bus, feeds, apps = replicas
    assert [app.publishing for app in apps] == [True, False]
    async with await bus.subscribe("marketdata.quotes.#") as subscription:
        for k in range(5):
            for feed in feeds:
                feed.push([q(500.0 + k, T0 + k)])
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.05)
        messages = []
        for _ in range(50):
            try:
                messages.append(await asyncio.wait_for(_next(subscription), 0.2))
            except TimeoutError:
                break
    assert messages
    assert {message_id.split("-")[1] for message_id, _ in messages} == {"first"}
    bids = [item["bid_price"] for _, items in messages for item in items]
    assert bids == sorted(bids) and bids[-1] == 504.0, "one replica's ticks, once each, in order"


async def test_standby_takes_over_when_the_holder_stops_with_its_latest_value_first(replicas) -> None:  # type: ignore[no-untyped-def]
    bus, feeds, apps = replicas
    feeds[1].push([q(501.0, T0 + 1), q(502.0, T0 + 2)])  # seen by the standby only
    await asyncio.sleep(0.05)
    async with await bus.subscribe("marketdata.quotes.#") as subscription:
        await apps[0].stop()  # releases the lease
        message_id, items = await _next(subscription)
        assert apps[1].publishing
        assert message_id.startswith("md-second-")
        assert [(item["symbol"], item["bid_price"]) for item in items] == [("SPY", 502.0)]
        feeds[1].push([q(503.0, T0 + 3)])
        _, items = await _next(subscription)
        assert [item["bid_price"] for item in items] == [503.0]
