"""One contract for every TickStore: in memory and real PostgreSQL (partitioned by day) give the same candles."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.marketdata.adapters.memory_history import InMemoryTickStore
from services.marketdata.adapters.postgres_history import PostgresTickStore
from services.marketdata.domain.history import Candle, CandleInterval, HistoryTick
from services.marketdata.ports import TickStore

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
S = 1_000_000_000
MINUTE = 60 * S
T0 = 1_704_205_800 * S  # 2024-01-02T14:30:00Z, on a minute boundary


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TickStore]:
    if request.param == "memory":
        yield InMemoryTickStore()
        return
    schema = f"md_test_{uuid.uuid4().hex[:10]}"
    postgres = await PostgresTickStore.connect(POSTGRES_DSN, schema=schema)
    await postgres.ensure_schema()
    try:
        yield postgres
    finally:
        await postgres.drop_schema()
        await postgres.close()


def trade(symbol: str, at: int, price: float, size: float = 100.0) -> HistoryTick:
    return HistoryTick(symbol, at, price, size, True)


def quote(symbol: str, at: int, mid: float) -> HistoryTick:
    return HistoryTick(symbol, at, mid, 0.0, False)


async def test_one_minute_candles_from_trades(store: TickStore) -> None:
    await store.write([
        trade("SPY", T0 + 1 * S, 100.0, 10), trade("SPY", T0 + 20 * S, 103.0, 20),
        trade("SPY", T0 + 40 * S, 99.0, 30), trade("SPY", T0 + 59 * S, 101.0, 40),
        trade("SPY", T0 + MINUTE + 5 * S, 102.0, 5),
    ])  # fmt: skip
    candles = await store.candles("SPY", CandleInterval.ONE_MINUTE, T0, T0 + 10 * MINUTE, 100)
    assert candles == [
        Candle(T0, 100.0, 103.0, 99.0, 101.0, 100.0, 4),
        Candle(T0 + MINUTE, 102.0, 102.0, 102.0, 102.0, 5.0, 1),
    ]


async def test_bucket_without_trades_uses_quote_mids(store: TickStore) -> None:
    await store.write([quote("QQQ", T0 + 1 * S, 10.0), quote("QQQ", T0 + 2 * S, 12.0), quote("QQQ", T0 + 3 * S, 11.0)])
    (candle,) = await store.candles("QQQ", CandleInterval.ONE_MINUTE, None, T0 + MINUTE, 10)
    assert candle == Candle(T0, 10.0, 12.0, 10.0, 11.0, 0.0, 3)


async def test_bucket_with_trades_ignores_quotes(store: TickStore) -> None:
    await store.write([quote("AAPL", T0 + 1 * S, 50.0), trade("AAPL", T0 + 2 * S, 10.0, 7)])
    (candle,) = await store.candles("AAPL", CandleInterval.ONE_MINUTE, None, T0 + MINUTE, 10)
    assert (candle.open_price, candle.high_price, candle.volume, candle.tick_count) == (10.0, 10.0, 7.0, 1)


async def test_five_minute_hour_and_day_buckets(store: TickStore) -> None:
    ticks = [trade("TSLA", T0 + k * MINUTE, 200.0 + k) for k in range(0, 130, 7)]
    await store.write(ticks)
    five = await store.candles("TSLA", CandleInterval.FIVE_MINUTES, None, T0 + 200 * MINUTE, 100)
    assert [c.start_ns for c in five][:3] == [T0, T0 + 5 * MINUTE, T0 + 10 * MINUTE]
    hours = await store.candles("TSLA", CandleInterval.ONE_HOUR, None, T0 + 200 * MINUTE, 100)
    assert [c.tick_count for c in hours] == [5, 8, 6]  # minutes after 14:30: 0-28 | 35-84 | 91-126
    assert hours[0].start_ns == T0 - 30 * MINUTE
    (day,) = await store.candles("TSLA", CandleInterval.ONE_DAY, None, T0 + 200 * MINUTE, 100)
    assert (day.open_price, day.close_price, day.tick_count) == (200.0, 326.0, len(ticks))
    assert day.start_ns == T0 - (14 * 60 + 30) * MINUTE


async def test_range_and_limit_are_respected(store: TickStore) -> None:
    await store.write([trade("IWM", T0 + k * MINUTE, float(k)) for k in range(10)])
    candles = await store.candles("IWM", CandleInterval.ONE_MINUTE, T0 + 2 * MINUTE, T0 + 8 * MINUTE, 3)
    assert [c.open_price for c in candles] == [2.0, 3.0, 4.0]


async def test_other_symbols_are_not_mixed_in(store: TickStore) -> None:
    await store.write([trade("SPY", T0, 1.0), trade("QQQ", T0, 2.0)])
    (candle,) = await store.candles("SPY", CandleInterval.ONE_MINUTE, None, T0 + MINUTE, 10)
    assert candle.open_price == 1.0


async def test_ticks_across_midnight_land_in_two_days(store: TickStore) -> None:
    midnight = 1_704_240_000 * S  # 2024-01-03T00:00:00Z
    await store.write([trade("SPY", midnight - S, 1.0), trade("SPY", midnight + S, 2.0)])
    days = await store.candles("SPY", CandleInterval.ONE_DAY, None, midnight + 3600 * S, 10)
    assert [(c.start_ns, c.close_price) for c in days] == [(midnight - 86400 * S, 1.0), (midnight, 2.0)]


async def test_no_ticks_no_candles(store: TickStore) -> None:
    assert await store.candles("NONE", CandleInterval.ONE_HOUR, None, T0, 10) == []
