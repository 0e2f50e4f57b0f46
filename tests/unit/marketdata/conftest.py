"""Fixtures of the market data unit tests: a scripted feed and an app on in-process adapters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest

from services.marketdata.adapters.memory_history import InMemoryTickStore
from services.marketdata.app import AppSettings, MarketDataApp
from services.marketdata.domain.events import FeedEvent, FeedKind
from services.marketdata.ports import FeedStatus
from services.platform.bus import InProcessBus
from services.platform.cache import InProcessCache
from services.platform.clock import SystemClock


class ScriptedFeed:
    """A MarketFeed whose events the test pushes; records what the app subscribed."""

    kind = FeedKind.SIMULATOR

    def __init__(self) -> None:
        self.subscribed: dict[str, set[str]] = {}
        self.queue: asyncio.Queue[list[FeedEvent]] = asyncio.Queue()
        self.connected = True
        self.down_for = 0.0
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def subscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        self.subscribed.setdefault(event_type, set()).update(symbols)

    async def unsubscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        self.subscribed.setdefault(event_type, set()).difference_update(symbols)

    async def batches(self) -> AsyncIterator[list[FeedEvent]]:
        while True:
            yield await self.queue.get()

    def status(self) -> FeedStatus:
        return FeedStatus(self.connected, self.down_for, 0, None if self.connected else "test: feed down")

    def push(self, events: list[FeedEvent]) -> None:
        self.queue.put_nowait(events)


@pytest.fixture
def feed() -> ScriptedFeed:
    return ScriptedFeed()


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus()


@pytest.fixture
def store() -> InMemoryTickStore:
    return InMemoryTickStore()


@pytest.fixture
async def app(feed: ScriptedFeed, bus: InProcessBus, store: InMemoryTickStore) -> AsyncIterator[MarketDataApp]:
    settings = AppSettings(
        heartbeat_interval=0.2,
        subscriber_capacity=64,
        max_streams_per_caller=3,
        feed_down_budget=0.3,
        greeks_interval=0.02,
        cache_flush_interval=0.01,
        bus_publish_interval=0.01,
        history_batch_size=100,
        history_flush_interval=0.05,
    )
    application = MarketDataApp(
        feed=feed, cache=InProcessCache(), bus=bus, history=store, clock=SystemClock(), settings=settings
    )
    await application.start()
    yield application
    await application.stop()
    await bus.close()
