"""Market data replicas starting together create the tick history schema once, without a catalogue collision."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from services.marketdata.adapters.postgres_history import PostgresTickStore

pytestmark = pytest.mark.integration

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def test_four_replicas_ensure_the_schema_at_once() -> None:
    for _ in range(5):
        schema = f"mdrace_{uuid.uuid4().hex[:8]}"
        stores = [await PostgresTickStore.connect(POSTGRES_DSN, schema=schema) for _ in range(4)]
        try:
            await asyncio.gather(*(store.ensure_schema() for store in stores))
            connection = await asyncpg.connect(POSTGRES_DSN)
            try:
                tables = await connection.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'ticks'", schema
                )
            finally:
                await connection.close()
            assert tables == 1
        finally:
            connection = await asyncpg.connect(POSTGRES_DSN)
            try:
                await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await connection.close()
            for store in stores:
                await store.close()
