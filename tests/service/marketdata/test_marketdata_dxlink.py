"""The service on the DXLink feed: quote tokens from the fake Tastytrade API, quotes from the fake DXLink, through gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


import grpc
import pytest
from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as pb_grpc

from services.marketdata.adapters.quote_tokens import TastytradeQuoteTokens
from services.marketdata.config import MarketDataSettings
from services.marketdata.domain.errors import FeedNotAuthorized
from services.marketdata.wiring import build, registration
from services.platform.clock import SystemClock
from services.platform.settings import Secret
from services.platform.testing import client_channel, running_server
from tests.fakes.dxlink import FakeDXLinkServer
from tests.fakes.tastytrade_api import FakeTastytrade

# The fake Tastytrade API stores per-request data under string keys, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTastytrade, FakeDXLinkServer]]:
    async with FakeDXLinkServer(keepalive_timeout=5.0, keepalive_interval=0.5) as dxlink, FakeTastytrade() as api:
        api.quote_token = dxlink.issue_token()
        api.dxlink_url = dxlink.url
        yield api, dxlink


async def test_quote_tokens_come_from_the_tastytrade_api(fakes: tuple[FakeTastytrade, FakeDXLinkServer]) -> None:
    api, dxlink = fakes
    tokens = TastytradeQuoteTokens(
        base_url=api.url, client_secret=api.client_secret, refresh_token="refresh-alice", clock=SystemClock()
    )
    try:
        token = await tokens.fetch()
    finally:
        await tokens.close()
    assert (token.token, token.dxlink_url) == (api.quote_token, dxlink.url)
    assert token.expires_at is not None
    assert api.count("GET", "/api-quote-tokens") == 1
    assert "secrets=<redacted>" in repr(tokens) and api.client_secret not in repr(tokens)


async def test_refused_refresh_token_is_feed_not_authorized(fakes: tuple[FakeTastytrade, FakeDXLinkServer]) -> None:
    api, _ = fakes
    tokens = TastytradeQuoteTokens(
        base_url=api.url, client_secret=api.client_secret, refresh_token="not-a-token", clock=SystemClock()
    )
    try:
        with pytest.raises(FeedNotAuthorized):
            await tokens.fetch()
    finally:
        await tokens.close()


async def test_stream_quotes_from_dxlink_survive_a_dropped_connection(
    fakes: tuple[FakeTastytrade, FakeDXLinkServer],
) -> None:
    api, dxlink = fakes
    settings = MarketDataSettings.from_env(
        {},
        port=0,
        feed="dxlink",
        bus="memory",
        cache="memory",
        history="memory",
        tastytrade_api_url=api.url,
        tastytrade_client_secret=Secret(api.client_secret),
        tastytrade_refresh_token=Secret("refresh-alice"),
        dxlink_silence_timeout=1.0,
        dxlink_keepalive_interval=0.5,
        heartbeat_seconds=0.5,
    )
    components = build(settings, clock=SystemClock())
    components.feed.client._settings = _fast(components.feed.client._settings)  # type: ignore[attr-defined]
    async with running_server([registration(components)]) as server, client_channel(server) as channel:
        stub = pb_grpc.MarketDataServiceStub(channel)
        call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["SPY"]))
        snapshot = await asyncio.wait_for(call.read(), 5)
        assert snapshot.quotes.snapshot
        await _until(lambda: "SPY" in dxlink.subscribed("Quote"))
        await dxlink.publish_quote("SPY", 500.25, 500.27)
        first = await _next_quotes(call)
        assert (list(first.symbols), list(first.bid_prices)) == (["SPY"], [500.25])
        assert first.source == pb.QUOTE_SOURCE_DXFEED
        dxlink.drop()
        await _until(lambda: components.feed.client.reconnects >= 1 and "SPY" in dxlink.subscribed("Quote"))  # type: ignore[attr-defined]
        await dxlink.publish_quote("SPY", 501.0, 501.02)
        second = await _next_quotes(call)
        assert list(second.bid_prices) == [501.0]
        quote = None
        for _ in range(250):  # the cache is written every few tens of milliseconds (until then: NOT_FOUND)
            try:
                quote = (await stub.GetQuote(pb.GetQuoteRequest(symbol="SPY"))).quote
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND, error
            if quote is not None and quote.bid_price == 501.0:
                break
            await asyncio.sleep(0.02)
        assert quote is not None
        assert (quote.bid_price, quote.source) == (501.0, pb.QUOTE_SOURCE_DXFEED)
        call.cancel()
        await _until(lambda: components.app is not None and components.app.open_streams() == 0)


def _fast(settings: Any) -> Any:
    import dataclasses

    return dataclasses.replace(settings, reconnect_delay=0.05, reconnect_delay_max=0.2)


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def _next_quotes(call: Any) -> pb.QuoteBatch:
    while True:
        message = await asyncio.wait_for(call.read(), 5)
        if message.WhichOneof("event") == "quotes" and len(message.quotes.symbols):
            return message.quotes




async def test_rfc6749_shaped_oauth_error_is_feed_not_authorized() -> None:
    async with FakeTastytrade(oauth_error_style="rfc6749") as api:
        tokens = TastytradeQuoteTokens(
            base_url=api.url, client_secret=api.client_secret, refresh_token="not-a-token", clock=SystemClock()
        )
        try:
            with pytest.raises(FeedNotAuthorized, match="invalid_grant"):
                await tokens.fetch()
        finally:
            await tokens.close()
