"""The market data application on in-process adapters: streams, conflation, cache, bus, history."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from services.marketdata.app import MarketDataApp, StreamEnded
from services.marketdata.domain.errors import (
    CacheUnavailable,
    DatabaseUnavailable,
    FeedUnavailable,
    PageTokenInvalid,
    QuoteNotFound,
    TooManyStreams,
)
from services.marketdata.domain.events import GreeksEvent, QuoteEvent, TradeEvent
from services.marketdata.domain.history import CandleInterval, HistoryQuery
from services.platform.bus import InProcessBus
from services.platform.cache import CacheError

from tests.unit.marketdata.conftest import ScriptedFeed

NS = 1_000_000_000
T0 = 1_704_205_800 * NS


def q(symbol: str, bid: float, ask: float, at: int = T0) -> QuoteEvent:
    return QuoteEvent(symbol, bid, ask, 100.0, 100.0, at)


async def _settle(app: MarketDataApp, feed: ScriptedFeed) -> None:
    for _ in range(100):
        if feed.queue.empty():
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)


async def test_stream_sends_snapshot_then_updates(app: MarketDataApp, feed: ScriptedFeed) -> None:
    feed.push([q("SPY", 500.0, 500.02)])
    await _settle(app, feed)
    async with await app.open_quote_stream(["SPY", "QQQ"], "alice") as stream:
        assert [(u.symbol, u.bid_price) for u in stream.snapshot] == [("SPY", 500.0)]
        feed.push([q("QQQ", 430.0, 430.05), q("SPY", 500.01, 500.03)])
        batch = await stream.next(timeout=2.0)
        assert batch is not None
        updates, conflated = batch
        assert [(u.symbol, u.bid_price) for u in updates] == [("QQQ", 430.0), ("SPY", 500.01)]
        assert conflated == 0


async def test_stream_subscribes_the_feed_and_cancel_releases_at_once(app: MarketDataApp, feed: ScriptedFeed) -> None:
    stream = await app.open_quote_stream(["AAPL"], "alice")
    assert "AAPL" in feed.subscribed["Quote"] and "AAPL" in feed.subscribed["Trade"]
    assert app.open_streams() == 1
    await stream.close()
    await app.quiesce()
    assert "AAPL" not in feed.subscribed["Quote"]
    assert app.open_streams() == 0


async def test_shared_symbol_stays_subscribed_while_one_stream_follows_it(app: MarketDataApp, feed: ScriptedFeed) -> None:
    first = await app.open_quote_stream(["SPY"], "alice")
    second = await app.open_quote_stream(["SPY"], "bob")
    await first.close()
    await app.quiesce()
    assert "SPY" in feed.subscribed["Quote"]
    await second.close()
    await app.quiesce()
    assert "SPY" not in feed.subscribed["Quote"]


async def test_idle_stream_returns_none_for_a_heartbeat(app: MarketDataApp) -> None:
    async with await app.open_quote_stream(["SPY"], "alice") as stream:
        assert await stream.next(timeout=0.05) is None


async def test_slow_subscriber_is_conflated_while_fast_one_gets_every_update(
    app: MarketDataApp, feed: ScriptedFeed
) -> None:
    symbols = [f"S{i}" for i in range(8)]
    fast = await app.open_quote_stream(symbols, "alice")
    slow = await app.open_quote_stream(symbols, "bob")
    received: list[float] = []
    rounds = 50

    async def read_fast() -> None:
        while len(received) < rounds * len(symbols):
            batch = await fast.next(timeout=2.0)
            assert batch is not None
            assert batch[1] == 0
            received.extend(u.bid_price for u in batch[0])

    reader = asyncio.create_task(read_fast())
    for step in range(rounds):
        feed.push([q(symbol, float(step), float(step) + 0.01) for symbol in symbols])
        await asyncio.sleep(0.001)
    await asyncio.wait_for(reader, 5.0)
    assert len(received) == rounds * len(symbols)  # every update, none conflated
    assert slow.conflating
    updates, conflated = await slow.next(timeout=1.0)  # type: ignore[misc]
    assert sorted(u.symbol for u in updates) == sorted(symbols)
    assert {u.bid_price for u in updates} == {float(rounds - 1)}
    assert conflated == rounds * len(symbols) - len(symbols)
    await fast.close()
    await slow.close()


async def test_too_many_streams_per_caller_is_refused(app: MarketDataApp) -> None:
    streams = [await app.open_quote_stream(["SPY"], "alice") for _ in range(3)]
    with pytest.raises(TooManyStreams):
        await app.open_quote_stream(["SPY"], "alice")
    other = await app.open_quote_stream(["SPY"], "bob")
    for stream in [*streams, other]:
        await stream.close()
    again = await app.open_quote_stream(["SPY"], "alice")
    await again.close()


async def test_drain_ends_open_streams(app: MarketDataApp) -> None:
    stream = await app.open_quote_stream(["SPY"], "alice")
    await app.drain()
    with pytest.raises(StreamEnded):
        await stream.next(timeout=1.0)
    await stream.close()


async def test_feed_down_beyond_budget_ends_streams_unavailable(app: MarketDataApp, feed: ScriptedFeed) -> None:
    stream = await app.open_quote_stream(["SPY"], "alice")
    feed.connected, feed.down_for = False, 10.0
    with pytest.raises(FeedUnavailable):
        await stream.next(timeout=2.0)
    await stream.close()
    with pytest.raises(FeedUnavailable):
        await app.open_quote_stream(["SPY"], "alice")


async def test_get_quote_answers_from_the_cache(app: MarketDataApp, feed: ScriptedFeed) -> None:
    feed.push([q("SPY", 500.0, 500.02), TradeEvent("SPY", 500.01, 100, 5000, T0 + 1)])
    await _settle(app, feed)
    quote = await app.get_quote("SPY")
    assert (quote.bid_price, quote.ask_price, quote.last_price, quote.day_volume) == (500.0, 500.02, 500.01, 5000)
    with pytest.raises(QuoteNotFound):
        await app.get_quote("NOPE")


async def test_get_quote_of_a_followed_symbol_answers_from_the_live_book_before_the_cache_is_written(
    app: MarketDataApp,
) -> None:
    # A consumer that saw the tick on the bus (published at once) can ask for it at once, on any replica that
    # follows the symbol; one that does not follow it reads the cache.
    await app.follow(["QQQ"], lease_seconds=60.0)
    app.ingest([q("QQQ", 430.0, 430.02)])
    quote = await app.get_quote("QQQ")
    assert (quote.bid_price, quote.ask_price) == (430.0, 430.02)
    app.ingest([q("IWM", 200.0, 200.02)])  # seen, but not followed here: only the cache answers, once written
    with pytest.raises(QuoteNotFound):
        await app.get_quote("IWM")


async def test_occ_symbols_are_answered_in_the_requested_form(app: MarketDataApp, feed: ScriptedFeed) -> None:
    occ = "SPY   240216C00500000"
    async with await app.open_quote_stream([occ], "alice") as stream:
        assert ".SPY240216C500" in feed.subscribed["Quote"]
        assert stream.aliases == {".SPY240216C500": occ}


async def test_ticks_are_published_on_the_bus_per_underlying(app: MarketDataApp, feed: ScriptedFeed, bus: InProcessBus) -> None:
    async with await bus.subscribe("marketdata.quotes.#") as subscription:
        feed.push([q("SPY", 500.0, 500.02), q(".SPY240216C500", 5.0, 5.1), q("QQQ", 1.0, 1.1)])
        topics = {}
        for _ in range(2):
            delivery = await asyncio.wait_for(subscription.__anext__(), 2.0)
            topics[delivery.topic] = json.loads(delivery.payload)
            await delivery.ack()
    assert sorted(topics) == ["marketdata.quotes.QQQ", "marketdata.quotes.SPY"]
    spy = topics["marketdata.quotes.SPY"]
    assert spy["source"] == "simulator"
    assert [item["symbol"] for item in spy["quotes"]] == ["SPY", ".SPY240216C500"]


async def test_history_is_written_in_batches_and_candles_come_back(app: MarketDataApp, feed: ScriptedFeed) -> None:
    feed.push([TradeEvent("SPY", 100.0 + k, 10.0, 0.0, T0 + k * NS) for k in range(150)])
    await _settle(app, feed)
    await app.history_writer.flush()
    query = HistoryQuery.build("SPY", CandleInterval.ONE_MINUTE, None, T0 + 3600 * NS, 2)
    page, token = await app.get_history(query, "")
    assert [c.tick_count for c in page] == [60, 60]
    assert token
    rest, last = await app.get_history(query, token)
    assert [c.tick_count for c in rest] == [30] and last == ""
    other = HistoryQuery.build("QQQ", CandleInterval.ONE_MINUTE, None, T0 + 3600 * NS, 2)
    with pytest.raises(PageTokenInvalid):
        await app.get_history(other, token)


async def test_history_store_failure_never_blocks_the_stream(app: MarketDataApp, feed: ScriptedFeed, store) -> None:
    async def stalled_write(ticks) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(3600)

    store.write = stalled_write
    async with await app.open_quote_stream(["SPY"], "alice") as stream:
        for step in range(300):
            feed.push([q("SPY", float(step), float(step) + 0.01)])
        batch = await stream.next(timeout=2.0)
        assert batch is not None
        await asyncio.sleep(0.1)
        assert app.history_writer.pending > 0
        assert app.ingested_batches == 300


async def test_greeks_stream_carries_broker_and_model_values(app: MarketDataApp, feed: ScriptedFeed) -> None:
    expiry = datetime.now(UTC).date() + timedelta(days=60)
    option = f".SPY{expiry:%y%m%d}C500"
    async with await app.open_greeks_stream([option], "alice") as stream:
        assert option in feed.subscribed["Greeks"] and "SPY" in feed.subscribed["Quote"]
        feed.push([
            q("SPY", 499.99, 500.01),
            q(option, 10.0, 10.2),
            GreeksEvent(option, 10.1, 0.16, 0.52, 0.02, -0.1, 0.3, 0.55, T0),
        ])  # fmt: skip
        update = None
        for _ in range(20):
            batch = await stream.next(timeout=2.0)
            if batch and not math.isnan(batch[0][-1].broker_delta):
                update = batch[0][-1]
                break
        assert update is not None
        assert (update.broker_delta, update.broker_volatility) == (0.52, 0.16)
        assert update.option_price == pytest.approx(10.1)
        assert 0 < update.model_delta < 1 and 0 < update.model_volatility < 1
        assert update.underlying_price == pytest.approx(500.0)
    await app.quiesce()
    assert option not in feed.subscribed["Greeks"]


async def test_interest_lease_on_the_bus_makes_ticks_flow_until_it_expires(
    app: MarketDataApp, feed: ScriptedFeed, bus: InProcessBus
) -> None:
    expiry = datetime.now(UTC).date() + timedelta(days=30)
    option = f".QQQ{expiry:%y%m%d}P400"
    request = {"symbols": ["QQQ", option], "greeks": True, "lease_seconds": 1}
    await bus.publish("marketdata.interest", json.dumps(request).encode(), "interest-1")
    for _ in range(100):
        if app.leased() == {"QQQ", option}:
            break
        await asyncio.sleep(0.01)
    assert app.leased() == {"QQQ", option}
    assert {"QQQ", option} <= feed.subscribed["Quote"] and option in feed.subscribed["Greeks"]
    async with await bus.subscribe("marketdata.quotes.QQQ") as ticks:
        feed.push([q("QQQ", 400.0, 400.05)])
        delivery = await asyncio.wait_for(ticks.__anext__(), 2.0)
        assert json.loads(delivery.payload)["quotes"][0]["symbol"] == "QQQ"
        await delivery.ack()
    app.clock = _Later(app.clock, 5.0)  # type: ignore[assignment]
    await app.expire_leases()
    await app.quiesce()
    assert app.leased() == set()
    assert "QQQ" not in feed.subscribed["Quote"] and option not in feed.subscribed["Greeks"]


async def test_a_lease_renewed_while_an_expiry_releases_another_stays_followed(
    app: MarketDataApp, feed: ScriptedFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.follow(["QQQ"], lease_seconds=1)
    await app.follow(["SPY"], lease_seconds=1)
    app.clock = _Later(app.clock, 5.0)  # type: ignore[assignment]
    # The first release blocks in the feed's unsubscribe; meanwhile the consumer renews SPY's lease.
    gate = asyncio.Event()
    unsubscribe = feed.unsubscribe

    async def slow_unsubscribe(event_type: str, symbols):  # type: ignore[no-untyped-def]
        await gate.wait()
        await unsubscribe(event_type, symbols)

    monkeypatch.setattr(feed, "unsubscribe", slow_unsubscribe)
    expiry = asyncio.create_task(app.expire_leases())
    for _ in range(100):
        if app.leased() == {"SPY"}:
            break
        await asyncio.sleep(0.001)
    assert app.leased() == {"SPY"}  # QQQ is being released
    await app.follow(["SPY"], lease_seconds=30)
    gate.set()
    await expiry
    assert app.leased() == {"SPY"}
    assert "SPY" in feed.subscribed["Quote"] and "QQQ" not in feed.subscribed["Quote"]


async def test_malformed_interest_message_is_ignored(app: MarketDataApp, bus: InProcessBus) -> None:
    await bus.publish("marketdata.interest", b"not json", "bad-1")
    await bus.publish("marketdata.interest", json.dumps({"symbols": []}).encode(), "bad-2")
    await bus.publish("marketdata.interest", json.dumps({"symbols": ["SPY"]}).encode(), "good-1")
    for _ in range(100):
        if app.leased():
            break
        await asyncio.sleep(0.01)
    assert app.leased() == {"SPY"}


class _Later:
    """The app's clock moved `seconds` ahead (monotonic only)."""

    def __init__(self, clock, seconds: float) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._seconds = seconds

    def now(self):  # type: ignore[no-untyped-def]
        return self._clock.now()

    def monotonic(self) -> float:
        return self._clock.monotonic() + self._seconds

    async def sleep(self, seconds: float) -> None:
        await self._clock.sleep(seconds)


class _BrokenCache:
    async def get_many(self, namespace, keys):  # type: ignore[no-untyped-def]
        raise CacheError("connection refused")

    async def put_many(self, namespace, values):  # type: ignore[no-untyped-def]
        raise CacheError("connection refused")


async def test_get_quote_with_the_cache_down_is_cache_unavailable(app: MarketDataApp, feed: ScriptedFeed) -> None:
    app.cache = _BrokenCache()  # type: ignore[assignment]
    with pytest.raises(CacheUnavailable):
        await app.get_quote("SPY")
    feed.push([q("SPY", 1.0, 1.1)])
    await _settle(app, feed)
    assert app.cache_failures > 0  # writes failed, were counted, and ingest went on
    assert app.book.quote("SPY") is not None


async def test_get_history_with_the_database_down_is_database_unavailable(app: MarketDataApp, store) -> None:  # type: ignore[no-untyped-def]
    async def refused(*args):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("connection refused")

    store.candles = refused
    query = HistoryQuery.build("SPY", CandleInterval.ONE_HOUR, None, T0, 10)
    with pytest.raises(DatabaseUnavailable):
        await app.get_history(query, "")
