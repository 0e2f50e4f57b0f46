"""DXLink as a MarketFeed: the reconnecting client behind the feed port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

from services.marketdata.adapters.dxlink.client import DXLinkClient
from services.marketdata.domain.events import FeedEvent, FeedKind
from services.marketdata.ports import FeedStatus, QuoteTokenSource

__all__ = ["DXLinkFeed"]


class DXLinkFeed:
    """A `MarketFeed` over `DXLinkClient`."""

    kind = FeedKind.DXFEED

    def __init__(self, client: DXLinkClient, tokens: QuoteTokenSource | None = None) -> None:
        self.client = client
        self._tokens = tokens

    async def start(self) -> None:
        self.client.start()

    async def close(self) -> None:
        await self.client.close()
        close_tokens = getattr(self._tokens, "close", None)
        if close_tokens is not None:
            await close_tokens()

    async def subscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        await self.client.subscribe(event_type, symbols)

    async def unsubscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        await self.client.unsubscribe(event_type, symbols)

    def batches(self) -> AsyncIterator[list[FeedEvent]]:
        return self.client.batches()

    def status(self) -> FeedStatus:
        client = self.client
        down_since = client.down_since
        down_for = 0.0 if client.connected or down_since is None else time.monotonic() - down_since
        return FeedStatus(client.connected, down_for, client.reconnects, client.last_error)
