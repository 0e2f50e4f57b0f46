"""MARKETDATA_BUS_PUBLISH_SECONDS bounds the tick messages on the bus; the subscriber gauge follows open streams."""

from __future__ import annotations

import asyncio
import time

import prometheus_client
from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as pb_grpc

from services.marketdata.config import MarketDataSettings
from services.marketdata.wiring import build, registration
from services.platform.clock import SystemClock
from services.platform.testing import client_channel, running_server


async def _messages_per_second(publish_seconds: float, window: float = 1.0) -> float:
    settings = MarketDataSettings.from_env(
        {"MARKETDATA_BUS_PUBLISH_SECONDS": str(publish_seconds)},
        port=0, bus="memory", cache="memory", history="memory", simulator_tick_interval=0.01, pinned_symbols=("SPY",),
    )
    components = build(settings, clock=SystemClock())
    async with running_server([registration(components)]):
        assert components.bus is not None
        subscription = await components.bus.subscribe("marketdata.quotes.SPY")
        count, started = 0, time.monotonic()
        while time.monotonic() - started < window:
            try:
                await asyncio.wait_for(subscription.__anext__(), timeout=max(0.01, window - (time.monotonic() - started)))
            except TimeoutError:
                break
            count += 1
        return count / window


async def test_the_publish_period_bounds_messages_per_underlying() -> None:
    fast = await _messages_per_second(0.02)
    slow = await _messages_per_second(0.25)
    assert slow <= 1 / 0.25 + 1
    assert fast > 2 * slow


def _subscribers() -> float:
    return prometheus_client.REGISTRY.get_sample_value("tastyplat_marketdata_stream_subscribers", {"stream": "quotes"}) or 0.0


async def test_the_subscriber_gauge_counts_open_quote_streams() -> None:
    settings = MarketDataSettings.from_env(
        {}, port=0, bus="memory", cache="memory", history="memory", simulator_tick_interval=0.02, pinned_symbols=("SPY",),
    )
    components = build(settings, clock=SystemClock())
    async with running_server([registration(components)]) as server, client_channel(server) as channel:
        stub = pb_grpc.MarketDataServiceStub(channel)
        assert _subscribers() == 0
        call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["SPY"]))
        await call.read()
        assert _subscribers() == 1
        call.cancel()
        for _ in range(200):
            if _subscribers() == 0:
                break
            await asyncio.sleep(0.01)
        assert _subscribers() == 0


async def test_a_tick_on_a_quiet_bus_leaves_at_once_and_the_next_waits_for_the_period() -> None:
    from services.marketdata.domain.events import QuoteEvent

    settings = MarketDataSettings.from_env(
        {"MARKETDATA_BUS_PUBLISH_SECONDS": "1.5"}, port=0, bus="memory", cache="memory", history="memory",
        pinned_symbols=(),
    )
    components = build(settings, clock=SystemClock())
    async with running_server([registration(components)]):
        assert components.bus is not None and components.app is not None
        subscription = await components.bus.subscribe("marketdata.quotes.*")
        await asyncio.sleep(0.2)
        started = time.monotonic()
        components.app.ingest([QuoteEvent("SPY", 500.0, 500.02, 100.0, 100.0, time.time_ns())])
        first = await asyncio.wait_for(subscription.__anext__(), timeout=5.0)
        quiet_wait = time.monotonic() - started
        await first.ack()
        # Two more ticks right after: they leave together, one period after the first round.
        components.app.ingest([QuoteEvent("SPY", 500.01, 500.03, 100.0, 100.0, time.time_ns())])
        components.app.ingest([QuoteEvent("SPY", 500.02, 500.04, 100.0, 100.0, time.time_ns())])
        second = await asyncio.wait_for(subscription.__anext__(), timeout=5.0)
        loaded_wait = time.monotonic() - started
    assert quiet_wait < 0.5, quiet_wait
    assert 1.2 < loaded_wait < 3.0, loaded_wait
    assert second.payload.count(b'"symbol":"SPY"') == 2  # every quote of the round, in one message


async def _round_after_burst(environ: dict[str, str]) -> list[float]:
    import json

    from services.marketdata.domain.events import QuoteEvent

    settings = MarketDataSettings.from_env(
        {"MARKETDATA_BUS_PUBLISH_SECONDS": "1.0", **environ}, port=0, bus="memory", cache="memory",
        history="memory", pinned_symbols=(),
    )
    components = build(settings, clock=SystemClock())
    async with running_server([registration(components)]):
        assert components.bus is not None and components.app is not None
        subscription = await components.bus.subscribe("marketdata.quotes.*")
        await asyncio.sleep(0.1)
        components.app.ingest([QuoteEvent("SPY", 500.0, 500.02, 100.0, 100.0, time.time_ns())])
        first = await asyncio.wait_for(subscription.__anext__(), timeout=5.0)
        await first.ack()
        # Three quotes within one period: they leave together in the next round.
        for cents in (1, 2, 3):
            components.app.ingest([QuoteEvent("SPY", 500.0 + cents / 100, 500.02 + cents / 100, 100.0, 100.0, time.time_ns())])
        second = await asyncio.wait_for(subscription.__anext__(), timeout=5.0)
    return [q["bid_price"] for q in json.loads(second.payload)["quotes"]]


async def test_every_quote_reaches_the_bus_unless_conflation_is_asked_for() -> None:
    assert await _round_after_burst({}) == [500.01, 500.02, 500.03]
    assert await _round_after_burst({"MARKETDATA_BUS_CONFLATE": "true"}) == [500.03]
