"""The portfolio store on the machine's PostgreSQL (database ``test``, a unique schema per run) and in memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.portfolio.adapters.memory_store import MemoryStore
from services.portfolio.adapters.postgres_store import PostgresStore

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema, dropped afterwards."""
    schema = f"portfolio_t_{uuid.uuid4().hex[:10]}"
    yield schema
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest, pg_schema: str) -> AsyncIterator[MemoryStore | PostgresStore]:
    """The same contract on both backends."""
    backend: MemoryStore | PostgresStore = MemoryStore() if request.param == "memory" else PostgresStore(DSN, schema=pg_schema)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()
