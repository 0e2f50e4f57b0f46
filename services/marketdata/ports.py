"""The market data service's ports: the feed, quote tokens and the tick history (bus and cache come from platform)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.marketdata.domain.events import FeedEvent, FeedKind
from services.marketdata.domain.history import Candle, CandleInterval, HistoryTick

__all__ = ["FeedStatus", "MarketFeed", "PublisherLease", "QuoteToken", "QuoteTokenSource", "TickStore"]


@dataclass(frozen=True)
class QuoteToken:
    """An API quote token for DXLink.

    Attributes:
        token: The opaque token sent in AUTH.
        dxlink_url: The websocket URL the token is for.
        expires_at: When it stops working (Tastytrade: 24 hours after issue); None when unknown.
    """

    token: str = field(repr=False)
    dxlink_url: str
    expires_at: datetime | None


class QuoteTokenSource(Protocol):
    """Where DXLink quote tokens come from (Tastytrade's `GET /api-quote-tokens`)."""

    async def fetch(self) -> QuoteToken:
        """Get a fresh token."""
        ...


@dataclass(frozen=True)
class FeedStatus:
    """How the feed is doing.

    Attributes:
        connected: Whether events can flow now.
        down_for: Seconds the feed has been down, 0 while connected.
        reconnects: Successful reconnections since start.
        last_error: The last failure, for health reports and logs.
    """

    connected: bool
    down_for: float
    reconnects: int
    last_error: str | None


class MarketFeed(Protocol):
    """A source of market events (DXLink or the simulator) with per-event-type symbol subscriptions.

    Event types are dxFeed's names: "Quote", "Trade", "Greeks", "Summary", "Profile". A symbol the feed does
    not know produces no events and no error.
    """

    kind: FeedKind

    async def start(self) -> None:
        """Start producing events (connect, or start the simulation clock)."""
        ...

    async def close(self) -> None:
        """Stop and release resources."""
        ...

    async def subscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        """Follow `symbols` for `event_type`."""
        ...

    async def unsubscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        """Stop following `symbols` for `event_type`."""
        ...

    def batches(self) -> AsyncIterator[list[FeedEvent]]:
        """Yield events in batches, as they arrive."""
        ...

    def status(self) -> FeedStatus:
        """The feed's current health."""
        ...


class TickStore(Protocol):
    """Stored ticks and the candles aggregated from them."""

    async def ensure_schema(self) -> None:
        """Create the tables if they do not exist."""
        ...

    async def write(self, ticks: Sequence[HistoryTick]) -> None:
        """Store a batch of ticks in one round trip."""
        ...

    async def candles(
        self,
        symbol: str,
        interval: CandleInterval,
        start_ns: int | None,
        end_ns: int,
        limit: int,
    ) -> list[Candle]:
        """Candles of `symbol` with start in [start_ns, end_ns), oldest first, at most `limit`."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class PublisherLease(Protocol):
    """Which replica publishes ticks on the bus: at most one holds the lease at a time.

    Every replica follows the same symbols (pinned ones, and interest leases reach each of them), so without
    the lease every tick would reach the bus once per replica, and with the simulator each replica's copy
    comes from its own simulated market.
    """

    async def hold(self) -> bool:
        """Take the lease if it is free, or confirm this replica still holds it; True while it does.

        Never raises: a backend that cannot be reached means the lease is not held.
        """
        ...

    async def release(self) -> None:
        """Give the lease up (at shutdown), so another replica takes it at once."""
        ...
