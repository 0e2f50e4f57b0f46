"""Over real gRPC flow control: a subscriber that stops reading is conflated while a reading one misses nothing."""

from __future__ import annotations

import asyncio

import grpc.aio
from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as pb_grpc

from services.marketdata.adapters.simulator_feed import SimulatorFeed
from services.marketdata.config import MarketDataSettings
from services.marketdata.domain.simulator import MarketSimulator, UnderlyingSpec
from services.marketdata.wiring import build, registration
from services.platform.clock import SystemClock
from services.platform.testing import client_channel, running_server

SYMBOLS = [f"S{i:03d}" for i in range(200)]


async def test_slow_reader_is_conflated_while_fast_reader_gets_every_update() -> None:
    clock = SystemClock()
    simulator = MarketSimulator([UnderlyingSpec(s, 100.0, 0.3, 0.5) for s in SYMBOLS], seed=1, trade_probability=0)
    feed = SimulatorFeed(simulator, clock, tick_interval=0.01)
    settings = MarketDataSettings.from_env(
        {}, port=0, bus="memory", cache="memory", history="memory", subscriber_capacity=400, pinned_symbols=(),
        gc_freeze=False,
    )  # fmt: skip
    components = build(settings, clock=clock, feed=feed)
    async with running_server([registration(components)]) as server:
        # Separate connections, so the slow stream's flow-control window cannot hold back the fast one.
        # The slow client keeps HTTP/2's default 64 KiB window (no BDP probing grows it), as a congested
        # mobile client would.
        slow_options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 65536)]
        async with client_channel(server) as fast_channel, grpc.aio.insecure_channel(
            server.address, options=slow_options
        ) as slow_channel:
            request = pb.StreamQuotesRequest(symbols=SYMBOLS)
            fast = pb_grpc.MarketDataServiceStub(fast_channel).StreamQuotes(request)
            slow = pb_grpc.MarketDataServiceStub(slow_channel).StreamQuotes(request)
            await fast.read()
            await slow.read()
            fast_updates = fast_conflated = 0
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.0
            while loop.time() < deadline:  # only the fast one reads; the slow one's window fills up
                message = await asyncio.wait_for(fast.read(), 2)
                if message.WhichOneof("event") == "quotes":
                    fast_updates += len(message.quotes.symbols)
                    fast_conflated += message.quotes.conflated_count
            slow_conflated = 0
            for _ in range(400):
                message = await asyncio.wait_for(slow.read(), 2)
                if message.WhichOneof("event") == "quotes":
                    slow_conflated += message.quotes.conflated_count
                if slow_conflated:
                    break
            fast.cancel()
            slow.cancel()
            assert components.app is not None
            for _ in range(200):
                if components.app.open_streams() == 0:
                    break
                await asyncio.sleep(0.01)
    assert fast_conflated == 0 and fast_updates > 10 * len(SYMBOLS)
    assert slow_conflated > 0


