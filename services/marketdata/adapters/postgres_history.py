"""Tick history in PostgreSQL: a TimescaleDB hypertable with compression where the extension exists, else a
table partitioned by day; candles are aggregated in SQL.

Writes are one `COPY` per batch. Day partitions are created ahead of the batch that needs them (and the
next day's, so midnight never waits on DDL). Candles: ticks are bucketed with `date_bin` (PostgreSQL 14+,
the same on a hypertable); a bucket that has trades uses only its trades (volume = traded size), one without
trades uses quote mids (volume 0).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from services.marketdata.domain.events import datetime_of, time_ns_of
from services.marketdata.domain.history import Candle, CandleInterval, HistoryTick

__all__ = ["PostgresTickStore"]

log = logging.getLogger("tastyplat.marketdata.history")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_CANDLES_SQL = """
WITH bucketed AS (
    SELECT date_bin($2::interval, tick_time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
           tick_time, seq, price, size, is_trade
    FROM {table}
    WHERE symbol = $1 AND tick_time >= $3 AND tick_time < $4
), kinds AS (
    SELECT bucket, bool_or(is_trade) AS has_trades FROM bucketed GROUP BY bucket
)
SELECT b.bucket,
       (array_agg(b.price ORDER BY b.tick_time, b.seq))[1] AS open_price,
       max(b.price) AS high_price,
       min(b.price) AS low_price,
       (array_agg(b.price ORDER BY b.tick_time DESC, b.seq DESC))[1] AS close_price,
       coalesce(sum(b.size) FILTER (WHERE b.is_trade), 0) AS volume,
       count(*) AS tick_count
FROM bucketed b JOIN kinds k ON k.bucket = b.bucket
WHERE b.is_trade = k.has_trades
GROUP BY b.bucket
ORDER BY b.bucket
LIMIT $5
"""


class PostgresTickStore:
    """A `TickStore` on PostgreSQL (asyncpg pool), in its own schema."""

    def __init__(self, pool: asyncpg.Pool, *, schema: str = "marketdata", prefer_timescale: bool = True) -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self._pool = pool
        self._schema = schema
        self._table = f"{schema}.ticks"
        self._prefer_timescale = prefer_timescale
        self._partitioned_days: set[date] = set()
        self._seq = 0
        self.timescale = False

    @classmethod
    async def connect(cls, dsn: str, *, schema: str = "marketdata", min_size: int = 1, max_size: int = 4) -> PostgresTickStore:
        """Open a pool to `dsn` and return the store (call `ensure_schema` before use)."""
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30)
        return cls(pool, schema=schema)

    async def ensure_schema(self) -> None:
        # Replicas start together: concurrent CREATE ... IF NOT EXISTS of one table can still collide in the
        # catalogue (unique violation on pg_type), so the DDL runs in one transaction under an advisory lock.
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"tastyplat.marketdata.ticks:{self._schema}"
            )
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {self._schema}")
            available = await connection.fetchval(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
            )
            if available and self._prefer_timescale:
                await self._ensure_hypertable(connection)
            else:
                await self._ensure_partitioned(connection)

    async def _ensure_hypertable(self, connection: asyncpg.Connection) -> None:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        await connection.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {self._table} (
                symbol text NOT NULL,
                tick_time timestamptz NOT NULL,
                seq bigint NOT NULL,
                price double precision NOT NULL,
                size double precision NOT NULL,
                is_trade boolean NOT NULL
            )"""
        )
        await connection.execute(
            "SELECT create_hypertable($1, 'tick_time', chunk_time_interval => interval '1 day', if_not_exists => true)",
            self._table,
        )
        await connection.execute(
            f"CREATE INDEX IF NOT EXISTS ticks_symbol_time ON {self._table} (symbol, tick_time)"
        )
        await connection.execute(
            f"ALTER TABLE {self._table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol')"
        )
        await connection.execute(
            "SELECT add_compression_policy($1, interval '2 days', if_not_exists => true)", self._table
        )
        self.timescale = True
        log.info("tick history: TimescaleDB hypertable %s with compression", self._table)

    async def _ensure_partitioned(self, connection: asyncpg.Connection) -> None:
        await connection.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {self._table} (
                symbol text NOT NULL,
                tick_time timestamptz NOT NULL,
                seq bigint NOT NULL,
                price double precision NOT NULL,
                size double precision NOT NULL,
                is_trade boolean NOT NULL
            ) PARTITION BY RANGE (tick_time)"""
        )
        await connection.execute(
            f"CREATE INDEX IF NOT EXISTS ticks_symbol_time ON {self._table} (symbol, tick_time)"
        )
        log.info("tick history: table %s partitioned by day (no TimescaleDB)", self._table)

    async def _ensure_partitions(self, connection: asyncpg.Connection, days: set[date]) -> None:
        for day in sorted(days - self._partitioned_days):
            name = f"{self._schema}.ticks_{day:%Y%m%d}"
            start = datetime.combine(day, datetime.min.time(), UTC)
            end = start + timedelta(days=1)
            try:
                await connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {self._table} "
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
            except (asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
                pass  # another replica created it between our check and our DDL
            self._partitioned_days.add(day)

    async def write(self, ticks: Sequence[HistoryTick]) -> None:
        if not ticks:
            return
        first = datetime_of(min(t.time_ns for t in ticks)).date()
        last = datetime_of(max(t.time_ns for t in ticks)).date()
        days = {first + timedelta(days=k) for k in range((last - first).days + 1)}
        seq = self._seq
        self._seq += len(ticks)
        async with self._pool.acquire() as connection:
            if not self.timescale:
                days |= {day + timedelta(days=1) for day in days}
                await self._ensure_partitions(connection, days)
            await connection.copy_records_to_table(
                "ticks",
                schema_name=self._schema,
                records=_records(ticks, seq),
                columns=["symbol", "tick_time", "seq", "price", "size", "is_trade"],
            )

    async def candles(
        self,
        symbol: str,
        interval: CandleInterval,
        start_ns: int | None,
        end_ns: int,
        limit: int,
    ) -> list[Candle]:
        start = datetime_of(start_ns) if start_ns is not None else datetime(1970, 1, 1, tzinfo=UTC)
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                _CANDLES_SQL.format(table=self._table),
                symbol,
                timedelta(seconds=interval.value),
                start,
                datetime_of(end_ns),
                limit,
            )
        return [
            Candle(
                start_ns=time_ns_of(row["bucket"]),
                open_price=row["open_price"],
                high_price=row["high_price"],
                low_price=row["low_price"],
                close_price=row["close_price"],
                volume=float(row["volume"]),
                tick_count=row["tick_count"],
            )
            for row in rows
        ]

    async def drop_schema(self) -> None:
        """Drop the whole schema (tests with a per-run schema)."""
        async with self._pool.acquire() as connection:
            await connection.execute(f"DROP SCHEMA IF EXISTS {self._schema} CASCADE")

    async def close(self) -> None:
        await self._pool.close()


_SLICE = 256


async def _records(ticks: Sequence[HistoryTick], seq: int) -> AsyncIterator[tuple[Any, ...]]:
    # A batch is thousands of rows: built and encoded in slices, with the event loop's other work (the ticks
    # going to the bus, alerts) between them, instead of one stall of several milliseconds.
    for start in range(0, len(ticks), _SLICE):
        for tick in ticks[start : start + _SLICE]:
            seq += 1
            yield (tick.symbol, datetime_of(tick.time_ns), seq, tick.price, tick.size, tick.is_trade)
        await asyncio.sleep(0)
