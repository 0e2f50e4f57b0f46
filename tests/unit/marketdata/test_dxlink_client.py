"""The DXLink client against the fake DXLink server: handshake, decode, keepalive, reconnects, token renewal."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.marketdata.adapters.dxlink import protocol
from services.marketdata.adapters.dxlink.client import DXLinkClient, DXLinkSettings
from services.marketdata.domain.events import GreeksEvent, QuoteEvent
from services.marketdata.ports import QuoteToken
from tests.fakes.dxlink import FakeDXLinkServer

FAST = DXLinkSettings(
    keepalive_timeout=2.0,
    keepalive_interval=0.2,
    silence_timeout=0.6,
    handshake_timeout=2.0,
    reconnect_delay=0.05,
    reconnect_delay_max=0.2,
    renewal_margin=0.0,
)


class FakeTokens:
    """Quote tokens from the fake server, as `/api-quote-tokens` would hand them out."""

    def __init__(self, server: FakeDXLinkServer, ttl: float = 3600.0) -> None:
        self.server = server
        self.ttl = ttl
        self.fetched: list[str] = []

    async def fetch(self) -> QuoteToken:
        token = self.server.issue_token(self.ttl)
        self.fetched.append(token)
        return QuoteToken(token, self.server.url, datetime.now(UTC) + timedelta(seconds=self.ttl))


@pytest.fixture
async def server() -> AsyncIterator[FakeDXLinkServer]:
    async with FakeDXLinkServer(keepalive_timeout=2.0, keepalive_interval=0.2) as fake:
        yield fake


async def _client(server: FakeDXLinkServer, settings: DXLinkSettings = FAST, ttl: float = 3600.0) -> DXLinkClient:
    client = DXLinkClient(FakeTokens(server, ttl), settings=settings)
    client.start()
    await client.wait_connected(5.0)
    return client


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def _next_batch(client: DXLinkClient, timeout: float = 5.0):
    iterator = client.batches()
    return await asyncio.wait_for(iterator.__anext__(), timeout)


async def test_handshake_sends_setup_auth_after_unauthorized_then_channel_setup(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await client.subscribe("Quote", ["SPY"])
        await _until(lambda: server.subscribed("Quote") == {"SPY"})
        kinds = [m["type"] for m in server.sessions[0].received if m["type"] != "KEEPALIVE"]
        assert kinds == ["SETUP", "AUTH", "CHANNEL_REQUEST", "FEED_SETUP", "FEED_SUBSCRIPTION"]
        setup = server.messages_of_type("FEED_SETUP")[0]
        assert setup["channel"] == 7
        assert setup["acceptDataFormat"] == "COMPACT"
        assert setup["acceptEventFields"] == {"Quote": list(protocol.EVENT_FIELDS["Quote"])}
    finally:
        await client.close()


async def test_compact_quote_is_decoded_in_requested_field_order(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await client.subscribe("Quote", ["SPY"])
        await _until(lambda: server.subscribed("Quote") == {"SPY"})
        await server.publish_quote("SPY", 500.25, 500.27, bid_size=300, ask_size=200, time_ms=1_700_000_000_123)
        batch = await _next_batch(client)
        assert batch == [QuoteEvent("SPY", 500.25, 500.27, 300.0, 200.0, 1_700_000_000_123_000_000)]
    finally:
        await client.close()


async def test_nan_strings_decode_to_nan(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await client.subscribe("Greeks", [".SPY240419C500"])
        await _until(lambda: server.subscribed("Greeks") == {".SPY240419C500"})
        await server.publish_greeks(
            ".SPY240419C500", price=26.33, volatility=0.3969, delta=0.52, gamma=math.nan, theta=-0.045,
            rho=0.018, vega=0.12, time_ms=1_700_000_000_000,
        )  # fmt: skip
        (event,) = await _next_batch(client)
        assert isinstance(event, GreeksEvent)
        assert (event.price, event.volatility, event.delta, event.theta) == (26.33, 0.3969, 0.52, -0.045)
        assert math.isnan(event.gamma)
    finally:
        await client.close()


async def test_several_events_in_one_frame_are_all_decoded(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await client.subscribe("Quote", ["SPY", "QQQ"])
        await _until(lambda: server.subscribed("Quote") == {"SPY", "QQQ"})
        await server.publish("Quote", [
            {"eventSymbol": "SPY", "bidPrice": 1.0, "askPrice": 2.0, "bidSize": 1, "askSize": 1, "bidTime": 5},
            {"eventSymbol": "QQQ", "bidPrice": 3.0, "askPrice": 4.0, "bidSize": 1, "askSize": 1, "bidTime": 5},
        ])  # fmt: skip
        batch = await _next_batch(client)
        assert [(e.symbol, e.bid_price) for e in batch] == [("SPY", 1.0), ("QQQ", 3.0)]
    finally:
        await client.close()


async def test_keepalive_keeps_an_idle_connection_open(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await asyncio.sleep(2.6)  # longer than the server's 2 s keepalive timeout
        assert client.connected
        assert client.reconnects == 0
        assert server.messages_of_type("KEEPALIVE")
    finally:
        await client.close()


async def test_silent_feed_is_detected_and_subscriptions_are_restored(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await client.subscribe("Quote", ["SPY", "AAPL"])
        await _until(lambda: server.subscribed("Quote") == {"SPY", "AAPL"})
        server.stall()
        await _until(lambda: not client.connected, timeout=3.0)
        server.resume()
        await _until(lambda: client.reconnects >= 1 and server.subscribed("Quote") == {"SPY", "AAPL"})
        await server.publish_quote("AAPL", 190.0, 190.02)
        batch = await _next_batch(client)
        assert batch[0].symbol == "AAPL"
    finally:
        await client.close()


async def test_dropped_connection_reconnects_with_subscriptions(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await client.subscribe("Quote", ["SPY"])
        await client.subscribe("Greeks", [".SPY240419C500"])
        await _until(lambda: server.subscribed("Greeks") == {".SPY240419C500"})
        server.drop()
        await _until(lambda: client.reconnects >= 1 and server.subscribed("Greeks") == {".SPY240419C500"})
        assert server.subscribed("Quote") == {"SPY"}
    finally:
        await client.close()


async def test_server_restart_and_502_upgrades_are_survived(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await client.subscribe("Quote", ["SPY"])
        await _until(lambda: server.subscribed("Quote") == {"SPY"})
        server.reject_upgrades(2)
        await server.restart()
        await _until(lambda: client.reconnects >= 1 and server.subscribed("Quote") == {"SPY"})
        assert server.connections_accepted >= 2
    finally:
        await client.close()


async def test_quote_token_is_renewed_before_expiry_without_reconnecting(server: FakeDXLinkServer) -> None:
    settings = dataclasses.replace(FAST, renewal_margin=0.6, silence_timeout=5.0)
    client = await _client(server, settings, ttl=1.0)
    try:
        await client.subscribe("Quote", ["SPY"])
        await asyncio.sleep(1.5)  # past the first token's expiry
        assert client.token_renewals >= 1
        assert client.connected and client.reconnects == 0
        assert len(server.auth_tokens_seen) >= 2
        assert len(set(server.auth_tokens_seen)) == len(server.auth_tokens_seen)
    finally:
        await client.close()


async def test_refused_token_is_replaced_by_a_fresh_one(server: FakeDXLinkServer) -> None:
    tokens = FakeTokens(server)
    client = DXLinkClient(tokens, settings=FAST)
    stale = QuoteToken("qt-stale", server.url, datetime.now(UTC) + timedelta(hours=1))
    client._token = stale
    client.start()
    try:
        await client.wait_connected(5.0)
        assert server.auth_tokens_seen[0] == "qt-stale"
        assert server.auth_tokens_seen[-1] == tokens.fetched[-1]
    finally:
        await client.close()


async def test_large_subscription_is_split_into_small_messages(server: FakeDXLinkServer) -> None:
    settings = dataclasses.replace(FAST, max_symbols_per_message=100)
    client = await _client(server, settings)
    symbols = [f".SPY240419C{strike}" for strike in range(1, 1251)]
    try:
        await client.subscribe("Greeks", symbols)
        await _until(lambda: len(server.subscribed("Greeks")) == 1250)
        adds = [m for m in server.messages_of_type("FEED_SUBSCRIPTION") if "add" in m]
        assert len(adds) == 13
        assert max(len(m["add"]) for m in adds) == 100
    finally:
        await client.close()


async def test_unsubscribe_removes_symbols_at_the_server(server: FakeDXLinkServer) -> None:
    client = await _client(server)
    try:
        await client.subscribe("Quote", ["SPY", "QQQ"])
        await _until(lambda: server.subscribed("Quote") == {"SPY", "QQQ"})
        await client.unsubscribe("Quote", ["QQQ"])
        await _until(lambda: server.subscribed("Quote") == {"SPY"})
    finally:
        await client.close()
