"""Fixtures for the user storage contract: the same tests against memory, PostgreSQL 15 and embedded PostgreSQL 18."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from services.platform.audit import MemoryAuditStore, PostgresAuditStore
from services.platform.crypto import SecretKeyring, generate_key
from services.user.adapters.memory import MemoryStorage
from services.user.adapters.postgres import PostgresDatabase, PostgresStorage
from services.user.testing import LOCAL_POSTGRES_DSN, drop_schema, embedded_postgres18, unique_schema


@pytest.fixture(scope="session")
def postgres18_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = pathlib.Path(tmp_path_factory.mktemp("pg18"))
    with embedded_postgres18(base) as dsn:
        yield dsn


@pytest.fixture(params=["memory", "postgres15", "postgres18"])
def backend(request: pytest.FixtureRequest) -> str | None:
    """None for memory, else the DSN of the server to test."""
    if request.param == "memory":
        return None
    if request.param == "postgres15":
        return LOCAL_POSTGRES_DSN
    dsn: str = request.getfixturevalue("postgres18_dsn")
    return dsn


@pytest.fixture
async def database(backend: str | None) -> AsyncIterator[PostgresDatabase | None]:
    if backend is None:
        yield None
        return
    schema = unique_schema("user_contract")
    db = PostgresDatabase(backend, schema, max_size=12)
    await db.connect()
    try:
        yield db
    finally:
        await db.close()
        await drop_schema(backend, schema)


@pytest.fixture
def storage(database: PostgresDatabase | None) -> MemoryStorage | PostgresStorage:
    if database is None:
        return MemoryStorage()
    return PostgresStorage(database, SecretKeyring.from_setting(f"1:{generate_key()}"))


@pytest.fixture
async def audit_store(database: PostgresDatabase | None) -> MemoryAuditStore | PostgresAuditStore:
    return MemoryAuditStore() if database is None else PostgresAuditStore(database)
