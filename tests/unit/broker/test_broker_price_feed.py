"""Paper marks follow the market data service's underlying quotes on the bus."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

from services.broker.adapters.paper import ReferenceMarks
from services.broker.adapters.price_feed import BusPriceFollower
from services.platform.bus import InProcessBus
from services.platform.clock import FakeClock


def _message(*quotes: dict[str, object]) -> bytes:
    return json.dumps({"source": "simulator", "quotes": list(quotes)}).encode()


async def test_underlying_quotes_on_the_bus_move_the_marks() -> None:
    bus = InProcessBus()
    marks = ReferenceMarks(FakeClock(datetime(2026, 3, 4, 15, 0, tzinfo=UTC)))
    follower = BusPriceFollower(bus, marks, ["SPY", "AAPL"])
    await follower.start()
    try:
        await bus.publish("marketdata.quotes.SPY", _message({"symbol": "SPY", "mark_price": 601.234}), "m1")
        for _ in range(50):
            if follower.applied:
                break
            await asyncio.sleep(0.01)
        assert marks.underlying_price("SPY") == Decimal("601.23")
    finally:
        await follower.stop()
        await bus.close()


def test_option_symbols_malformed_messages_and_bad_prices_are_skipped() -> None:
    marks = ReferenceMarks(FakeClock(datetime(2026, 3, 4, 15, 0, tzinfo=UTC)))
    follower = BusPriceFollower(InProcessBus(), marks, ["SPY"])
    before = marks.underlying_price("SPY")
    follower.apply(b"not json")
    follower.apply(_message({"symbol": ".SPY260320C600", "mark_price": 3.1}))
    follower.apply(_message({"symbol": "SPY", "mark_price": None, "last_price": None}))
    follower.apply(_message({"symbol": "SPY", "mark_price": -5}))
    assert marks.underlying_price("SPY") == before and follower.applied == 0
    follower.apply(_message({"symbol": "SPY", "mark_price": None, "last_price": 590.5}))
    assert marks.underlying_price("SPY") == Decimal("590.50")
