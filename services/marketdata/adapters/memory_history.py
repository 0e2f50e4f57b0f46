"""Tick history in memory: the `TickStore` contract without a database (unit tests, tools)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from services.marketdata.domain.history import Candle, CandleInterval, HistoryTick

__all__ = ["InMemoryTickStore"]


class InMemoryTickStore:
    """A `TickStore` holding ticks in per-symbol lists sorted by time; candles computed like the SQL does."""

    def __init__(self) -> None:
        self._ticks: dict[str, list[tuple[int, int, HistoryTick]]] = {}
        self._seq = 0
        self.closed = False

    async def ensure_schema(self) -> None:
        return None

    async def write(self, ticks: Sequence[HistoryTick]) -> None:
        for tick in ticks:
            self._seq += 1
            bisect.insort(self._ticks.setdefault(tick.symbol, []), (tick.time_ns, self._seq, tick))

    async def candles(
        self,
        symbol: str,
        interval: CandleInterval,
        start_ns: int | None,
        end_ns: int,
        limit: int,
    ) -> list[Candle]:
        rows = self._ticks.get(symbol, [])
        low = bisect.bisect_left(rows, (start_ns if start_ns is not None else 0, 0))
        high = bisect.bisect_left(rows, (end_ns, 0))
        width = interval.nanos
        buckets: dict[int, list[HistoryTick]] = {}
        for time_ns, _, tick in rows[low:high]:
            buckets.setdefault(time_ns - time_ns % width, []).append(tick)
        candles: list[Candle] = []
        for start in sorted(buckets)[:limit]:
            ticks = buckets[start]
            if any(t.is_trade for t in ticks):
                ticks = [t for t in ticks if t.is_trade]
            prices = [t.price for t in ticks]
            candles.append(
                Candle(
                    start_ns=start,
                    open_price=prices[0],
                    high_price=max(prices),
                    low_price=min(prices),
                    close_price=prices[-1],
                    volume=sum(t.size for t in ticks if t.is_trade),
                    tick_count=len(ticks),
                )
            )
        return candles

    async def close(self) -> None:
        self.closed = True
