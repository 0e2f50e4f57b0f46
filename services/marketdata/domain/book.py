"""The quote book: merges Quote, Trade and Greeks events into the latest state of each symbol."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.marketdata.domain.events import (
    FeedEvent,
    GreeksEvent,
    QuoteEvent,
    QuoteUpdate,
    SummaryEvent,
    TradeEvent,
)

__all__ = ["BookChanges", "QuoteBook"]

NAN = math.nan


@dataclass(slots=True)
class BookChanges:
    """What one batch of events changed.

    Attributes:
        quotes: One merged update per Quote or Trade event, in arrival order (a symbol may repeat).
        greeks_symbols: Symbols whose quote or dxFeed Greeks changed (candidates for new model Greeks).
        underlyings: Symbols whose quote changed and that may be an underlying of followed options.
    """

    quotes: list[QuoteUpdate] = field(default_factory=list)
    greeks_symbols: set[str] = field(default_factory=set)
    underlyings: set[str] = field(default_factory=set)


class QuoteBook:
    """Latest quote (with last trade) and latest dxFeed Greeks per symbol."""

    def __init__(self) -> None:
        self._quotes: dict[str, QuoteUpdate] = {}
        self._greeks: dict[str, GreeksEvent] = {}

    def quote(self, symbol: str) -> QuoteUpdate | None:
        """The latest merged quote of `symbol`, or None."""
        return self._quotes.get(symbol)

    def broker_greeks(self, symbol: str) -> GreeksEvent | None:
        """The latest dxFeed Greeks of `symbol`, or None."""
        return self._greeks.get(symbol)

    def apply(self, events: Iterable[FeedEvent]) -> BookChanges:
        """Fold a batch of feed events into the book and report what changed."""
        changes = BookChanges()
        quotes = self._quotes
        for event in events:
            if isinstance(event, QuoteEvent):
                previous = quotes.get(event.symbol)
                update = QuoteUpdate(
                    symbol=event.symbol,
                    bid_price=event.bid_price,
                    ask_price=event.ask_price,
                    last_price=previous.last_price if previous is not None else NAN,
                    bid_size=event.bid_size,
                    ask_size=event.ask_size,
                    day_volume=previous.day_volume if previous is not None else NAN,
                    time_ns=event.time_ns,
                )
            elif isinstance(event, TradeEvent):
                previous = quotes.get(event.symbol)
                update = QuoteUpdate(
                    symbol=event.symbol,
                    bid_price=previous.bid_price if previous is not None else NAN,
                    ask_price=previous.ask_price if previous is not None else NAN,
                    last_price=event.price,
                    bid_size=previous.bid_size if previous is not None else NAN,
                    ask_size=previous.ask_size if previous is not None else NAN,
                    day_volume=event.day_volume,
                    time_ns=event.time_ns,
                )
            elif isinstance(event, GreeksEvent):
                self._greeks[event.symbol] = event
                changes.greeks_symbols.add(event.symbol)
                continue
            elif isinstance(event, SummaryEvent):
                previous = quotes.get(event.symbol)
                if previous is None or not math.isnan(previous.last_price) or math.isnan(event.day_close_price):
                    continue
                # Before the first trade of a session the last price is the latest close.
                update = QuoteUpdate(
                    symbol=event.symbol,
                    bid_price=previous.bid_price,
                    ask_price=previous.ask_price,
                    last_price=event.day_close_price,
                    bid_size=previous.bid_size,
                    ask_size=previous.ask_size,
                    day_volume=previous.day_volume,
                    time_ns=previous.time_ns,
                )
            else:
                continue
            quotes[update.symbol] = update
            changes.quotes.append(update)
            changes.greeks_symbols.add(update.symbol)
            changes.underlyings.add(update.symbol)
        return changes
