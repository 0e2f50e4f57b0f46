"""The delta monitor's store backends for the contract suites: in memory, and PostgreSQL in a throw-away schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.deltamonitor.adapters.memory_store import InMemoryStore
from services.deltamonitor.adapters.postgres_store import PostgresStore

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[InMemoryStore | PostgresStore]:
    """Each backend, empty."""
    if request.param == "memory":
        yield InMemoryStore()
        return
    schema = f"dm_test_{uuid.uuid4().hex[:12]}"
    pg = PostgresStore(DSN, schema=schema)
    await pg.start()
    try:
        yield pg
    finally:
        await pg.close()
        connection = await asyncpg.connect(DSN)
        await connection.execute(f"DROP SCHEMA {schema} CASCADE")
        await connection.close()
