"""The `tastytrade` SDK's DXLinkStreamer, as a test-time client, reads Quote and Greeks from the fake DXLink."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest

tastytrade = pytest.importorskip("tastytrade")

# DXLinkStreamer creates one anyio memory stream pair per event type and never closes them: the SDK's leak,
# reported by anyio as ResourceWarning at garbage collection, not a failure of the fake.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    # The fake Tastytrade API (tests/fakes/tastytrade_api.py) stores per-request data under string keys.
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

import tastytrade.session  # noqa: E402
from tastytrade import DXLinkStreamer, Session  # noqa: E402
from tastytrade.dxfeed import Greeks, Quote  # noqa: E402

from tests.fakes.dxlink import FakeDXLinkServer  # noqa: E402
from tests.fakes.tastytrade_api import FakeTastytrade  # noqa: E402


@pytest.fixture
async def session(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Session, FakeDXLinkServer]]:
    async with FakeDXLinkServer() as dxlink, FakeTastytrade() as api:
        api.quote_token = dxlink.issue_token()
        api.dxlink_url = dxlink.url
        # The SDK has no base-URL argument; pointing its module constant at the fake is the documented way.
        monkeypatch.setattr(tastytrade.session, "API_URL", api.url)
        async with Session(provider_secret=api.client_secret, refresh_token="refresh-alice") as sdk_session:
            yield sdk_session, dxlink
    gc.collect()  # collect the SDK's unclosed streams here, where this module's warning filters apply


async def _wait_subscribed(dxlink: FakeDXLinkServer, event_type: str, symbol: str) -> None:
    for _ in range(500):
        if symbol in dxlink.subscribed(event_type):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the SDK never subscribed {event_type} {symbol}")


async def test_sdk_streamer_reads_quotes_from_the_fake(session: tuple[Session, FakeDXLinkServer]) -> None:
    sdk_session, dxlink = session
    async with DXLinkStreamer(sdk_session) as streamer:
        await streamer.subscribe(Quote, ["SPY"])
        await _wait_subscribed(dxlink, "Quote", "SPY")
        await dxlink.publish_quote("SPY", 500.25, 500.27, bid_size=300, ask_size=200)
        quote = await asyncio.wait_for(streamer.get_event(Quote), 5)
    assert (quote.event_symbol, float(quote.bid_price), float(quote.ask_price)) == ("SPY", 500.25, 500.27)
    assert (float(quote.bid_size), float(quote.ask_size)) == (300.0, 200.0)


async def test_sdk_streamer_reads_greeks_from_the_fake(session: tuple[Session, FakeDXLinkServer]) -> None:
    sdk_session, dxlink = session
    async with DXLinkStreamer(sdk_session) as streamer:
        await streamer.subscribe(Greeks, [".SPY240419C500"])
        await _wait_subscribed(dxlink, "Greeks", ".SPY240419C500")
        await dxlink.publish_greeks(
            ".SPY240419C500", price=26.33, volatility=0.3969, delta=0.52, gamma=0.031, theta=-0.045,
            rho=0.018, vega=0.12,
        )  # fmt: skip
        greeks = await asyncio.wait_for(streamer.get_event(Greeks), 5)
    assert greeks.event_symbol == ".SPY240419C500"
    assert (float(greeks.volatility), float(greeks.delta), float(greeks.vega)) == (0.3969, 0.52, 0.12)
