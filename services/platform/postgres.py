"""PostgreSQL plumbing every service store shares: a pool on its own schema, migrated at start-up."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import ClassVar

import asyncpg

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def open_migrated_pool(
    dsn: str,
    schema: str,
    migrations: Sequence[str],
    *,
    min_size: int,
    max_size: int,
    unavailable: Callable[[str], Exception],
) -> asyncpg.Pool:
    """Open a pool whose connections use ``schema``, and apply the ``migrations`` not applied yet.

    Migrations are numbered by their position (1-based) and recorded in ``<schema>.schema_migrations``; an
    advisory lock serialises replicas that start together, so each migration runs exactly once.

    Args:
        dsn: The PostgreSQL DSN.
        schema: The service's schema (a plain lower-case identifier).
        migrations: SQL scripts, oldest first; never edit or reorder one that has shipped.
        min_size: Pool minimum.
        max_size: Pool maximum.
        unavailable: Builds the service's own "database unavailable" error from a message.

    Raises:
        ValueError: ``schema`` is not a plain lower-case identifier.
        Exception: ``unavailable(...)`` when PostgreSQL cannot be reached.
    """
    if not _SCHEMA.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            # A startup parameter, not a SET: the pool's RESET ALL on release would undo a SET.
            server_settings={"search_path": schema},
        )
    except (OSError, asyncpg.PostgresError) as error:
        raise unavailable(f"cannot connect to PostgreSQL: {error}") from error
    try:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{schema}.migrations")
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await connection.execute(f"SET LOCAL search_path TO {schema}")
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {r["version"] for r in await connection.fetch("SELECT version FROM schema_migrations")}
            for version, sql in enumerate(migrations, start=1):
                if version not in applied:
                    await connection.execute(sql)
                    await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
    except BaseException:
        await pool.close()
        raise
    return pool


class SchemaStore:
    """Base of a service's PostgreSQL store: a pool on the service's own schema, migrated by ``start``.

    Subclasses set ``MIGRATIONS`` (never edit or reorder one that has shipped), ``DEFAULT_SCHEMA``, ``UNAVAILABLE``
    (the service's "database unavailable" error) and ``WHAT`` (for messages), then use ``self.pool``.
    """

    MIGRATIONS: ClassVar[Sequence[str]] = ()
    DEFAULT_SCHEMA: ClassVar[str] = ""
    UNAVAILABLE: ClassVar[Callable[[str], Exception]]
    WHAT: ClassVar[str] = "the database"

    def __init__(self, dsn: str, *, schema: str | None = None, min_size: int = 1, max_size: int = 5) -> None:
        """Configure the store (``start`` connects).

        Raises:
            ValueError: ``schema`` is not a plain lower-case identifier.
        """
        schema = self.DEFAULT_SCHEMA if schema is None else schema
        if not _SCHEMA.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self._dsn = dsn
        self._schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (after ``start``)."""
        if self._pool is None:
            raise type(self).UNAVAILABLE(f"{self.WHAT} is not connected")
        return self._pool

    async def start(self) -> None:
        """Connect and bring the schema up to date.

        Raises:
            Exception: the service's ``UNAVAILABLE`` error when PostgreSQL cannot be reached.
        """
        self._pool = await open_migrated_pool(
            self._dsn,
            self._schema,
            self.MIGRATIONS,
            min_size=self._min_size,
            max_size=self._max_size,
            unavailable=type(self).UNAVAILABLE,
        )

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
