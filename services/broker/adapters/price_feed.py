"""Paper marks that follow the market: underlying quotes from the market data service's bus topics.

The market data service publishes ``{"source": ..., "quotes": [{"symbol", "mark_price", "last_price", ...}]}``
on ``marketdata.quotes.<UNDERLYING>``; each underlying's mark (mid, else last) moves the paper broker's
``ReferenceMarks``, and its option marks with it. Malformed messages are logged and dropped, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from services.broker.adapters.paper import ReferenceMarks
from services.platform.bus import BusClosed, MessageBus, Subscription

log = logging.getLogger("tastyplat.broker.marks")
CENT = Decimal("0.01")


class BusPriceFollower:
    """Moves ``marks`` with the underlying quotes published on the bus.

    Args:
        bus: The platform bus.
        marks: The paper broker's mark source.
        symbols: Underlyings to follow.
    """

    def __init__(self, bus: MessageBus, marks: ReferenceMarks, symbols: Iterable[str]) -> None:
        self._bus = bus
        self._marks = marks
        self._symbols = sorted(set(symbols))
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self.applied = 0

    async def start(self) -> None:
        """Subscribe (a private queue: every broker replica follows every tick) and start consuming."""
        patterns = [f"marketdata.quotes.{symbol}" for symbol in self._symbols]
        self._subscription = await self._bus.subscribe(patterns)
        self._task = asyncio.create_task(self._consume(self._subscription), name="broker-price-follower")

    async def stop(self) -> None:
        """Stop consuming and close the subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def _consume(self, subscription: Subscription) -> None:
        try:
            async for delivery in subscription:
                self.apply(delivery.payload)
                await delivery.ack()
        except BusClosed:
            log.info("price feed subscription closed")

    def apply(self, payload: bytes) -> None:
        """Apply one bus message's underlying quotes (option symbols and unusable prices are skipped)."""
        try:
            body = json.loads(payload)
            quotes = body["quotes"] if isinstance(body, dict) else None
            if not isinstance(quotes, list):
                raise ValueError("no quotes list")
        except (ValueError, KeyError) as exc:
            log.warning("dropped a malformed quote message: %s", exc)
            return
        for quote in quotes:
            if not isinstance(quote, dict) or quote.get("symbol") not in self._symbols:
                continue
            price = quote.get("mark_price") or quote.get("last_price")
            try:
                value = Decimal(str(price)).quantize(CENT)
            except (InvalidOperation, ValueError):
                continue
            if value.is_finite() and value > 0:
                self._marks.set_underlying_price(quote["symbol"], value)
                self.applied += 1


__all__ = ["BusPriceFollower"]
