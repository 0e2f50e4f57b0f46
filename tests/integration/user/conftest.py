"""Fixtures for the user service's integration tests on the machine's PostgreSQL 15 and an embedded PostgreSQL 18."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from services.user.testing import LOCAL_POSTGRES_DSN, drop_schema, embedded_postgres18, unique_schema


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A fresh schema on the local PostgreSQL 15, dropped afterwards."""
    name = unique_schema("user_it")
    try:
        yield name
    finally:
        await drop_schema(LOCAL_POSTGRES_DSN, name)


@pytest.fixture(scope="session")
def postgres18_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = pathlib.Path(tmp_path_factory.mktemp("pg18"))
    with embedded_postgres18(base) as dsn:
        yield dsn
