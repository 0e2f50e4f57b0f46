"""The tick consumer: market data events from the bus into the monitor, and interest leases for its symbols.

It reads the market data service's bus messages (``marketdata.quotes.<UNDERLYING>`` with
``{"source", "quotes": [...]}`` and ``marketdata.greeks.<UNDERLYING>`` with ``{"source", "greeks": [...]}``,
each item the ``QuoteUpdate`` / ``GreeksUpdate`` JSON: ``symbol``, ``time_unix_nanos``, ``mark_price`` for
quotes, ``broker_volatility`` / ``model_volatility`` for Greeks, null for unknown values) and hands every item
to the monitor, in order. Market data follows only the symbols someone asked for, so the consumer also
publishes ``marketdata.interest`` leases (``{"symbols", "greeks": true, "lease_seconds"}``) for every symbol
the book uses, renewed before they lapse and re-sent when the book's symbols change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from services.deltamonitor.app import Monitor
from services.platform import telemetry
from services.platform.bus import BusError, MessageBus, Subscription

__all__ = ["INTEREST_TOPIC", "TickConsumer", "parse_tick", "parse_ticks"]

INTEREST_TOPIC = "marketdata.interest"
_INTEREST_CHUNK = 1000
_MAX_WRITES = 64
_YIELD_SECONDS = 0.0005
_ALERT_TURNS_SECONDS = 0.005
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

log = logging.getLogger("tastyplat.deltamonitor.ticks")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _item(data: Any, greeks: bool | None) -> tuple[str, str, float, datetime] | None:
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
    if greeks is None:
        greeks = "broker_volatility" in data or "model_volatility" in data
    if greeks:
        vol = _number(data.get("broker_volatility"))
        if not vol > 0:
            vol = _number(data.get("model_volatility"))
        return ("greeks", symbol, vol, when) if vol > 0 and math.isfinite(vol) else None
    price = _number(data.get("mark_price"))
    if not price > 0:
        price = _number(data.get("last_price"))
    return ("quote", symbol, price, when) if price > 0 and math.isfinite(price) else None


def parse_ticks(payload: bytes) -> list[tuple[str, str, float, datetime]]:
    """Every usable event of a market data message: ``("quote" | "greeks", symbol, value, time)`` in order.

    The value is the mark price (the last price when there is no two-sided market) for quotes and the
    implied vol (dxFeed's, else the platform model's) for Greeks. Items without one are skipped.
    """
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:  # a ValueError, as json's; also for invalid UTF-8
        return []
    if isinstance(data, dict) and isinstance(data.get("quotes"), list):
        items, greeks = data["quotes"], False
    elif isinstance(data, dict) and isinstance(data.get("greeks"), list):
        items, greeks = data["greeks"], True
    else:
        items, greeks = [data], None
    out = []
    for item in items:
        tick = _item(item, greeks)
        if tick is not None:
            out.append(tick)
    return out


def parse_tick(payload: bytes) -> tuple[str, str, float, datetime] | None:
    """The single event of a one-item message, or None."""
    ticks = parse_ticks(payload)
    return ticks[0] if len(ticks) == 1 else None


class TickConsumer:
    """Subscribes to the market data topics and feeds the monitor."""

    def __init__(
        self,
        bus: MessageBus,
        monitor: Monitor,
        patterns: Sequence[str],
        *,
        prefetch: int = 256,
        lease_seconds: float = 600.0,
        interest_check_seconds: float = 1.0,
    ) -> None:
        """Configure the consumer (``start`` subscribes)."""
        self._bus = bus
        self._monitor = monitor
        self._patterns = list(patterns)
        self._prefetch = prefetch
        self._lease = lease_seconds
        self._check = interest_check_seconds
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._announced: frozenset[str] = frozenset()
        self._announced_at = -math.inf
        self._instance = uuid.uuid4().hex[:8]
        self._sequence = 0
        self._writes: set[asyncio.Task[Any]] = set()
        # Until then (perf_counter), the consumer yields after every message: an alert just written is on its
        # way to its streams (hub, gRPC, the subscriber's read), a few event-loop turns.
        self._alert_turns_until = 0.0
        self._lag = telemetry.histogram(
            "deltamonitor_tick_lag_seconds",
            "Age of a tick message's newest quote (its source time) when the monitor has applied the message",
            buckets=LAG_BUCKETS,
        )

    async def start(self) -> None:
        """Subscribe (a private queue: every monitor replica sees every tick) and start consuming."""
        self._subscription = await self._bus.subscribe(self._patterns, prefetch=self._prefetch)
        self._tasks = [
            asyncio.create_task(self._run(self._subscription), name="deltamonitor-ticks"),
            asyncio.create_task(self._interest_loop(), name="deltamonitor-interest"),
        ]

    async def stop(self) -> None:
        """Stop consuming."""
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._monitor.writes_done()

    async def announce_interest(self) -> int:
        """Publish interest leases for the book's symbols if they changed or are due for renewal.

        Returns:
            How many symbols were announced (0 when nothing was due).
        """
        loop = asyncio.get_running_loop()
        symbols = self._monitor.book.symbols
        renew = loop.time() - self._announced_at > self._lease / 2
        if not symbols or (symbols == self._announced and not renew):
            return 0
        ordered = sorted(symbols)
        for start in range(0, len(ordered), _INTEREST_CHUNK):
            self._sequence += 1
            payload = {"symbols": ordered[start : start + _INTEREST_CHUNK], "greeks": True, "lease_seconds": self._lease}
            await self._bus.publish(
                INTEREST_TOPIC, json.dumps(payload).encode(), f"dm-interest-{self._instance}-{self._sequence}"
            )
        self._announced = symbols
        self._announced_at = loop.time()
        return len(ordered)

    async def _interest_loop(self) -> None:
        while True:
            try:
                await self.announce_interest()
            except (BusError, ValueError) as error:
                log.warning("cannot announce market data interest", extra={"error": repr(error)})
            await asyncio.sleep(self._check)

    async def _track(self, written: asyncio.Task[Any]) -> None:
        # The next tick is applied while an alert is written; past _MAX_WRITES queued writes (a slow database)
        # the feed waits for the oldest, so memory stays bounded and the consumer's prefetch pushes back.
        self._writes.add(written)
        written.add_done_callback(self._written)
        while len(self._writes) > _MAX_WRITES:
            await asyncio.wait(set(self._writes), return_when=asyncio.FIRST_COMPLETED)

    def _written(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        self._alert_turns_until = time.perf_counter() + _ALERT_TURNS_SECONDS
        if not task.cancelled() and (error := task.exception()) is not None:
            # The monitor keeps the unwritten alerts and writes them with the next tick or flush.
            log.error("alert write failed", exc_info=error)

    async def _run(self, subscription: Subscription) -> None:
        monitor = self._monitor
        turn_started = time.perf_counter()
        async for delivery in subscription:
            vols: list[str] = []
            latest: datetime | None = None
            newest_quote: datetime | None = None
            try:
                for kind, symbol, value, when in parse_ticks(delivery.payload):
                    if kind == "quote":
                        written = monitor.apply_quote(symbol, value, when)
                        if written is not None:
                            await self._track(written)
                        newest_quote = when if newest_quote is None or when > newest_quote else newest_quote
                    else:
                        monitor.on_greeks(symbol, value, when)
                        vols.append(symbol)
                        latest = when if latest is None or when > latest else latest
                # New implied vols move deltas too: one re-pricing per underlying of the batch, at its last price.
                if vols and latest is not None:
                    await monitor.after_greeks(vols, latest)
            except Exception:
                # A failure to store alerts must not stop the feed; the monitor keeps the unwritten alerts and
                # writes them with the next tick or flush.
                log.exception("tick processing failed", extra={"message_id": delivery.message_id})
            if newest_quote is not None:
                self._lag.observe(max(0.0, time.time() - newest_quote.timestamp()))
            await delivery.ack()
            # Taking a ready message does not yield to the event loop, so without this a backlog of ticks runs
            # to its end before an alert's next step (database round trip, outbox relay, stream) gets a turn.
            # Yielding after every message (measured with 10,000 positions at 5,000 ticks/s: alert p50 20 ->
            # 10 ms) costs an event-loop turn per message: that is done while an alert is being written and
            # streamed, and otherwise once per _YIELD_SECONDS of work.
            now = time.perf_counter()
            if self._writes or now < self._alert_turns_until or now - turn_started >= _YIELD_SECONDS:
                await asyncio.sleep(0)
                turn_started = time.perf_counter()
