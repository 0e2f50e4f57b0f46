"""The service wired for distributed mode: RabbitMQ bus, Redis cache, PostgreSQL history, simulator feed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as pb_grpc

from services.embedded.resources import EmbeddedResources
from services.marketdata.config import MarketDataSettings
from services.marketdata.wiring import build, embedded, registration
from services.platform.bus import InProcessBus, RabbitMqBus
from services.platform.cache import InProcessCache
from services.platform.clock import SystemClock
from services.platform.settings import Secret
from services.platform.testing import client_channel, running_server

pytestmark = pytest.mark.integration

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def names() -> dict[str, str]:
    run = uuid.uuid4().hex[:10]
    return {"exchange": f"test.md.{run}", "prefix": f"testmd{run}", "schema": f"md_dist_{run}"}


@pytest.fixture
async def cleanup(names: dict[str, str]) -> AsyncIterator[None]:
    yield
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{names['prefix']}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    connection = await asyncpg.connect(POSTGRES_DSN)
    await connection.execute(f"DROP SCHEMA IF EXISTS {names['schema']} CASCADE")
    await connection.close()
    bus = await RabbitMqBus.connect(RABBITMQ_URL, exchange=names["exchange"])
    await bus.delete_exchanges()
    await bus.close()


async def test_distributed_wiring_streams_caches_publishes_and_stores(names: dict[str, str], cleanup: None) -> None:
    settings = MarketDataSettings.from_env(
        {
            "MARKETDATA_RABBITMQ_URL": RABBITMQ_URL,
            "MARKETDATA_REDIS_URL": REDIS_URL,
            "MARKETDATA_DATABASE_URL": POSTGRES_DSN,
            "MARKETDATA_BUS_EXCHANGE": names["exchange"],
            "MARKETDATA_CACHE_PREFIX": names["prefix"],
            "MARKETDATA_DATABASE_SCHEMA": names["schema"],
            "MARKETDATA_SIMULATOR_TICK_INTERVAL": "0.02",
            "MARKETDATA_PINNED_SYMBOLS": "SPY",
        },
        port=0,
    )
    listener = await RabbitMqBus.connect(RABBITMQ_URL, exchange=names["exchange"])
    components = build(settings, clock=SystemClock())
    try:
        async with await listener.subscribe("marketdata.quotes.SPY") as ticks:
            async with running_server([registration(components)]) as server, client_channel(server) as channel:
                stub = pb_grpc.MarketDataServiceStub(channel)
                delivery = await asyncio.wait_for(ticks.__anext__(), 10)
                payload: dict[str, Any] = json.loads(delivery.payload)
                await delivery.ack()
                assert payload["source"] == "simulator" and payload["quotes"][0]["symbol"] == "SPY"
                quote = (await stub.GetQuote(pb.GetQuoteRequest(symbol="SPY"))).quote
                assert 0 < quote.bid_price < quote.ask_price
                call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["SPY"]))
                snapshot = await asyncio.wait_for(call.read(), 5)
                assert list(snapshot.quotes.symbols) == ["SPY"]
                update = await asyncio.wait_for(call.read(), 5)
                assert update.WhichOneof("event") in ("quotes", "heartbeat")
                call.cancel()
                assert components.app is not None
                await components.app.history_writer.flush()
                history = await stub.GetHistory(
                    pb.GetHistoryRequest(symbol="SPY", interval=pb.CANDLE_INTERVAL_ONE_MINUTE)
                )
                assert history.candles and history.candles[-1].tick_count > 0
                await components.app.quiesce()
    finally:
        await listener.close()
    redis_client = redis_asyncio.Redis.from_url(REDIS_URL)
    assert await redis_client.exists(f"{names['prefix']}:quotes:SPY")
    await redis_client.aclose()


async def test_embedded_factory_uses_shared_bus_cache_and_its_postgres_schema(cleanup: None) -> None:
    bus, cache = InProcessBus(), InProcessCache()
    resources = EmbeddedResources(
        postgres_dsn=POSTGRES_DSN, bus=bus, cache=cache, clock=SystemClock(), grpc_target="127.0.0.1:0"
    )
    registration_ = await embedded(resources)
    try:
        async with running_server([registration_]) as server, client_channel(server) as channel:
            stub = pb_grpc.MarketDataServiceStub(channel)
            for _ in range(100):
                if await cache.get_many("quotes", ["SPY"]):
                    break
                await asyncio.sleep(0.05)
            quote = (await stub.GetQuote(pb.GetQuoteRequest(symbol="SPY"))).quote
            assert quote.source == pb.QUOTE_SOURCE_SIMULATOR
    finally:
        connection = await asyncpg.connect(POSTGRES_DSN)
        await connection.execute("DROP SCHEMA IF EXISTS marketdata CASCADE")
        await connection.close()
        await bus.close()


def test_missing_required_setting_is_named() -> None:
    from services.platform.settings import MissingSettingError

    with pytest.raises(MissingSettingError, match="MARKETDATA_REDIS_URL"):
        MarketDataSettings.from_env({"MARKETDATA_RABBITMQ_URL": RABBITMQ_URL}, port=0)
    with pytest.raises(MissingSettingError, match="MARKETDATA_TASTYTRADE_REFRESH_TOKEN"):
        MarketDataSettings.from_env(
            {}, port=0, feed="dxlink", bus="memory", cache="memory", history="memory",
            tastytrade_client_secret=Secret("s"),
        )  # fmt: skip
