"""The tick consumer: market data events from the bus into the monitor.

It reads the market data service's JSON events (the ``QuoteUpdate`` / ``GreeksUpdate`` forms it publishes:
``symbol``, ``time_unix_nanos``, ``mark_price`` for quotes; ``broker_volatility`` / ``model_volatility`` for
Greeks, with null for unknown values), tells them apart by their fields, and hands them to the monitor one
at a time, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.deltamonitor.app import Monitor
from services.platform.bus import MessageBus, Subscription

__all__ = ["TickConsumer", "parse_tick"]

log = logging.getLogger("tastyplat.deltamonitor.ticks")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def parse_tick(payload: bytes) -> tuple[str, str, float, datetime] | None:
    """Return ``("quote" | "greeks", symbol, value, time)`` for a market data event, None when unusable.

    The value is the mark price (last price when there is no two-sided market) for quotes and the implied vol
    (dxFeed's, else the platform model's) for Greeks.
    """
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    symbol = data.get("symbol")
    nanos = data.get("time_unix_nanos")
    if not isinstance(symbol, str) or not symbol or not isinstance(nanos, int) or isinstance(nanos, bool):
        return None
    try:
        when = datetime.fromtimestamp(nanos / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if "broker_volatility" in data or "model_volatility" in data:
        vol = _number(data.get("broker_volatility"))
        if not vol > 0:
            vol = _number(data.get("model_volatility"))
        return ("greeks", symbol, vol, when) if vol > 0 and math.isfinite(vol) else None
    price = _number(data.get("mark_price"))
    if not price > 0:
        price = _number(data.get("last_price"))
    return ("quote", symbol, price, when) if price > 0 and math.isfinite(price) else None


class TickConsumer:
    """Subscribes to the market data topics and feeds the monitor."""

    def __init__(self, bus: MessageBus, monitor: Monitor, patterns: Sequence[str], *, prefetch: int = 256) -> None:
        """Configure the consumer (``start`` subscribes)."""
        self._bus = bus
        self._monitor = monitor
        self._patterns = list(patterns)
        self._prefetch = prefetch
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe (a private queue: every monitor replica sees every tick) and start consuming."""
        self._subscription = await self._bus.subscribe(self._patterns, prefetch=self._prefetch)
        self._task = asyncio.create_task(self._run(self._subscription), name="deltamonitor-ticks")

    async def stop(self) -> None:
        """Stop consuming."""
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self, subscription: Subscription) -> None:
        monitor = self._monitor
        async for delivery in subscription:
            tick = parse_tick(delivery.payload)
            try:
                if tick is not None:
                    kind, symbol, value, when = tick
                    if kind == "quote":
                        await monitor.on_quote(symbol, value, when)
                    else:
                        monitor.on_greeks(symbol, value, when)
            except Exception:
                # A failure to store alerts must not stop the feed; the monitor keeps the unwritten alerts and
                # writes them with the next tick or flush.
                log.exception("tick processing failed", extra={"symbol": tick[1] if tick else ""})
            await delivery.ack()
