"""The simulator as a MarketFeed: steps the simulated market on a clock and emits events for subscribed symbols."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable
from services.marketdata.domain.events import FeedEvent, FeedKind, time_ns_of
from services.marketdata.domain.simulator import MarketSimulator
from services.marketdata.domain.symbols import OptionSymbol, parse_option_symbol
from services.marketdata.ports import FeedStatus
from services.platform.clock import Clock

__all__ = ["SimulatorFeed"]

log = logging.getLogger("tastyplat.marketdata.simulator")


class SimulatorFeed:
    """A `MarketFeed` over `MarketSimulator`: one step per `tick_interval` seconds of the clock.

    Every step emits a Quote (and sometimes a Trade) per subscribed underlying and a Quote per subscribed
    option; Greeks for subscribed options come every `greeks_every` steps, as dxFeed sends them less often.
    Symbols the simulator does not know are accepted and produce nothing.
    """

    kind = FeedKind.SIMULATOR

    def __init__(
        self,
        simulator: MarketSimulator,
        clock: Clock,
        *,
        tick_interval: float = 0.1,
        greeks_every: int = 10,
        queue_size: int = 1000,
    ) -> None:
        if tick_interval <= 0:
            raise ValueError("tick_interval must be positive")
        self._simulator = simulator
        self._clock = clock
        self._tick_interval = tick_interval
        self._greeks_every = max(1, greeks_every)
        self._subscriptions: dict[str, set[str]] = {}
        self._options: dict[str, OptionSymbol] = {}
        self._out: asyncio.Queue[list[FeedEvent]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.dropped_batches = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="simulator-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def subscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        wanted = self._subscriptions.setdefault(event_type, set())
        for symbol in symbols:
            wanted.add(symbol)
            option = parse_option_symbol(symbol)
            if option is not None:
                self._options[symbol] = option

    async def unsubscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        wanted = self._subscriptions.get(event_type, set())
        for symbol in symbols:
            wanted.discard(symbol)

    def subscriptions(self, event_type: str) -> frozenset[str]:
        """The symbols followed for `event_type`."""
        return frozenset(self._subscriptions.get(event_type, ()))

    async def batches(self) -> AsyncIterator[list[FeedEvent]]:
        while True:
            yield await self._out.get()

    def status(self) -> FeedStatus:
        return FeedStatus(connected=self._task is not None, down_for=0.0, reconnects=0, last_error=None)

    def step_once(self) -> list[FeedEvent]:
        """Advance one step and return its events (the loop's body; tests call it directly)."""
        simulator = self._simulator
        simulator.step(self._tick_interval)
        now = self._clock.now()
        stamp = time_ns_of(now)
        quote_symbols = self._subscriptions.get("Quote", set())
        trade_symbols = self._subscriptions.get("Trade", set())
        underlyings = sorted(s for s in quote_symbols | trade_symbols if simulator.knows(s))
        quotes, trades = simulator.underlying_events(underlyings, stamp)
        events: list[FeedEvent] = [q for q in quotes if q.symbol in quote_symbols]
        events.extend(t for t in trades if t.symbol in trade_symbols)
        greeks_symbols = self._subscriptions.get("Greeks", set())
        option_symbols = sorted(s for s in quote_symbols | greeks_symbols if s in self._options)
        if option_symbols:
            option_quotes, option_greeks = simulator.option_events(
                [self._options[s] for s in option_symbols], now, stamp
            )
            # Events carry the streamer symbol; subscriptions may use either form, so map back.
            by_streamer = {self._options[s].streamer(): s for s in option_symbols}
            for quote in option_quotes:
                symbol = by_streamer.get(quote.symbol, quote.symbol)
                if symbol in quote_symbols:
                    events.append(quote if symbol == quote.symbol else _renamed(quote, symbol))
            if simulator.steps % self._greeks_every == 0:
                for greeks in option_greeks:
                    symbol = by_streamer.get(greeks.symbol, greeks.symbol)
                    if symbol in greeks_symbols:
                        events.append(greeks if symbol == greeks.symbol else _renamed(greeks, symbol))
        return events

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._tick_interval)
            try:
                events = self.step_once()
            except Exception:
                log.exception("simulator step failed")
                continue
            if not events:
                continue
            if self._out.full():
                # The consumer fell behind: the oldest batch is the least useful one to keep.
                self._out.get_nowait()
                self.dropped_batches += 1
            self._out.put_nowait(events)


def _renamed(event: FeedEvent, symbol: str) -> FeedEvent:
    return dataclasses.replace(event, symbol=symbol)
