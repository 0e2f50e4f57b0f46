"""PostgreSQL LinkRepository (asyncpg): links with their sealed credentials, and the accounts they reach.

The schema lives in its own PostgreSQL schema (``search_path`` of the pool) and is migrated at start-up:
numbered steps applied once each, in one transaction, under an advisory lock so replicas starting
together do not race.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.broker.domain.errors import AccountAlreadyLinked
from services.broker.domain.model import (
    Account,
    BrokerLink,
    Environment,
    LinkedAccount,
    LinkStatus,
    SealedSecret,
)

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE broker_links (
            link_id      text PRIMARY KEY,
            user_id      text NOT NULL,
            environment  text NOT NULL CHECK (environment IN ('production', 'sandbox', 'paper')),
            key_version  integer NOT NULL,
            secret       bytea NOT NULL,
            status       text NOT NULL CHECK (status IN ('active', 'needs_relink')),
            request_id   text,
            created_at   timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL,
            UNIQUE (user_id, request_id)
        );
        CREATE INDEX broker_links_user ON broker_links (user_id);
        CREATE TABLE broker_accounts (
            account_number      text PRIMARY KEY,
            user_id             text NOT NULL,
            link_id             text NOT NULL REFERENCES broker_links (link_id) ON DELETE CASCADE,
            environment         text NOT NULL,
            nickname            text NOT NULL,
            account_type_name   text NOT NULL,
            margin_or_cash      text NOT NULL,
            is_closed           boolean NOT NULL,
            opened_at           timestamptz,
            authority_level     text NOT NULL,
            is_futures_approved boolean NOT NULL,
            linked_at           timestamptz NOT NULL
        );
        CREATE INDEX broker_accounts_user ON broker_accounts (user_id);
        CREATE INDEX broker_accounts_link ON broker_accounts (link_id);
        """,
    ),
)

_LOCK_KEY = 0x62726F6B  # "brok": the advisory lock serializing migrations
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _check_schema(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise ValueError(f"schema name {schema!r} must match {_SCHEMA.pattern}")
    return schema


async def migrate(pool: asyncpg.Pool, schema: str) -> list[int]:
    """Create ``schema`` if needed and apply the migrations not yet recorded there; return those applied."""
    _check_schema(schema)
    applied: list[int] = []
    async with pool.acquire() as connection:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await connection.execute(f'SET LOCAL search_path TO "{schema}"')
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS broker_schema_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await connection.fetch("SELECT version FROM broker_schema_migrations")}
            for version, sql in MIGRATIONS:
                if version in done:
                    continue
                await connection.execute(sql)
                await connection.execute("INSERT INTO broker_schema_migrations (version) VALUES ($1)", version)
                applied.append(version)
    return applied


def _link(row: asyncpg.Record, numbers: Sequence[str]) -> BrokerLink:
    return BrokerLink(
        link_id=row["link_id"],
        user_id=row["user_id"],
        environment=Environment(row["environment"]),
        secret=SealedSecret(row["key_version"], bytes(row["secret"])),
        status=LinkStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        account_numbers=tuple(sorted(numbers)),
        request_id=row["request_id"],
    )


def _account(row: asyncpg.Record) -> LinkedAccount:
    return LinkedAccount(
        user_id=row["user_id"],
        link_id=row["link_id"],
        environment=Environment(row["environment"]),
        account=Account(
            account_number=row["account_number"],
            nickname=row["nickname"],
            account_type_name=row["account_type_name"],
            margin_or_cash=row["margin_or_cash"],
            is_closed=row["is_closed"],
            opened_at=row["opened_at"],
            authority_level=row["authority_level"],
            is_futures_approved=row["is_futures_approved"],
        ),
        linked_at=row["linked_at"],
    )


_LINK_COLUMNS = "link_id, user_id, environment, key_version, secret, status, request_id, created_at, updated_at"
_NUMBERS = "ARRAY(SELECT a.account_number FROM broker_accounts a WHERE a.link_id = l.link_id) AS numbers"


class PostgresDatabase:
    """The broker's database: a pool on its schema, created and migrated by ``connect``.

    Args:
        dsn: PostgreSQL DSN.
        schema: The broker's schema.
    """

    def __init__(self, dsn: str, schema: str, *, max_size: int = 10) -> None:
        self._dsn = dsn
        self.schema = _check_schema(schema)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (after ``connect``)."""
        if self._pool is None:
            raise RuntimeError("the broker database is not connected")
        return self._pool

    async def connect(self) -> list[int]:
        """Create the pool and migrate the schema; return the migrations applied."""
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._max_size, server_settings={"search_path": self.schema}
        )
        try:
            return await migrate(self._pool, self.schema)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class PostgresLinkRepository:
    """LinkRepository on the broker's database.

    Args:
        database: The database (connected before the first call).
    """

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._database.pool

    async def save_link(self, link: BrokerLink, accounts: Sequence[Account]) -> None:
        """Upsert the link and its accounts in one transaction.

        Raises:
            AccountAlreadyLinked: another user holds one of the accounts.
        """
        numbers = [a.account_number for a in accounts]
        async with self._pool.acquire() as connection, connection.transaction():
            # Lock the rows of accounts already linked so two users racing for one account serialize here.
            held = await connection.fetch(
                "SELECT account_number, user_id FROM broker_accounts WHERE account_number = ANY($1::text[]) FOR UPDATE",
                numbers,
            )
            for row in held:
                if row["user_id"] != link.user_id:
                    raise AccountAlreadyLinked(
                        f"account {row['account_number']} is already linked by another user",
                        metadata={"account_number": row["account_number"]},
                    )
            await connection.execute(
                f"""
                INSERT INTO broker_links ({_LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (link_id) DO UPDATE SET
                    key_version = EXCLUDED.key_version, secret = EXCLUDED.secret, status = EXCLUDED.status,
                    updated_at = EXCLUDED.updated_at,
                    request_id = COALESCE(EXCLUDED.request_id, broker_links.request_id)
                """,
                link.link_id,
                link.user_id,
                link.environment.value,
                link.secret.key_version,
                link.secret.envelope,
                link.status.value,
                link.request_id,
                link.created_at,
                link.updated_at,
            )
            await connection.execute(
                "DELETE FROM broker_accounts WHERE link_id = $1 AND NOT (account_number = ANY($2::text[]))",
                link.link_id,
                numbers,
            )
            await connection.executemany(
                """
                INSERT INTO broker_accounts (account_number, user_id, link_id, environment, nickname,
                    account_type_name, margin_or_cash, is_closed, opened_at, authority_level,
                    is_futures_approved, linked_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                ON CONFLICT (account_number) DO UPDATE SET
                    link_id = EXCLUDED.link_id, environment = EXCLUDED.environment,
                    nickname = EXCLUDED.nickname, account_type_name = EXCLUDED.account_type_name,
                    margin_or_cash = EXCLUDED.margin_or_cash, is_closed = EXCLUDED.is_closed,
                    opened_at = EXCLUDED.opened_at, authority_level = EXCLUDED.authority_level,
                    is_futures_approved = EXCLUDED.is_futures_approved
                WHERE broker_accounts.user_id = EXCLUDED.user_id
                """,
                [
                    (
                        a.account_number,
                        link.user_id,
                        link.link_id,
                        link.environment.value,
                        a.nickname,
                        a.account_type_name,
                        a.margin_or_cash,
                        a.is_closed,
                        a.opened_at,
                        a.authority_level,
                        a.is_futures_approved,
                        link.updated_at,
                    )
                    for a in accounts
                ],
            )
            # Two users racing for a new account: the loser's upsert did nothing (the WHERE guard), find it.
            taken = await connection.fetchval(
                "SELECT account_number FROM broker_accounts WHERE account_number = ANY($1::text[]) AND user_id <> $2",
                numbers,
                link.user_id,
            )
            if taken is not None:
                raise AccountAlreadyLinked(
                    f"account {taken} is already linked by another user", metadata={"account_number": taken}
                )

    async def _fetch_links(self, where: str, *args: Any) -> list[BrokerLink]:
        rows = await self._pool.fetch(
            f"SELECT {_LINK_COLUMNS}, {_NUMBERS} FROM broker_links l WHERE {where} ORDER BY created_at, link_id",
            *args,
        )
        return [_link(row, row["numbers"]) for row in rows]

    async def get_link(self, user_id: str, link_id: str) -> BrokerLink | None:
        """The user's link, or None."""
        found = await self._fetch_links("user_id = $1 AND link_id = $2", user_id, link_id)
        return found[0] if found else None

    async def find_link(
        self, user_id: str, environment: Environment, account_numbers: Sequence[str]
    ) -> BrokerLink | None:
        """A link of the user's in ``environment`` already reaching one of the accounts."""
        found = await self._fetch_links(
            "user_id = $1 AND environment = $2 AND link_id IN "
            "(SELECT link_id FROM broker_accounts WHERE account_number = ANY($3::text[]))",
            user_id,
            environment.value,
            list(account_numbers),
        )
        return found[0] if found else None

    async def find_by_request(self, user_id: str, request_id: str) -> BrokerLink | None:
        """The user's link made with this idempotency key."""
        found = await self._fetch_links("user_id = $1 AND request_id = $2", user_id, request_id)
        return found[0] if found else None

    async def list_links(self, user_id: str) -> list[BrokerLink]:
        """The user's links, oldest first."""
        return await self._fetch_links("user_id = $1", user_id)

    async def account_owner(self, account_number: str) -> str | None:
        """Who linked the account."""
        owner: str | None = await self._pool.fetchval(
            "SELECT user_id FROM broker_accounts WHERE account_number = $1", account_number
        )
        return owner

    async def list_accounts(self, user_id: str) -> list[LinkedAccount]:
        """The user's linked accounts by account number."""
        rows = await self._pool.fetch(
            "SELECT * FROM broker_accounts WHERE user_id = $1 ORDER BY account_number", user_id
        )
        return [_account(row) for row in rows]

    async def get_account(self, user_id: str, account_number: str) -> LinkedAccount | None:
        """One of the user's linked accounts."""
        row = await self._pool.fetchrow(
            "SELECT * FROM broker_accounts WHERE user_id = $1 AND account_number = $2", user_id, account_number
        )
        return _account(row) if row is not None else None

    async def mark_needs_relink(self, user_id: str, link_id: str, at: datetime) -> None:
        """Flag the link's credential as refused."""
        await self._pool.execute(
            "UPDATE broker_links SET status = 'needs_relink', updated_at = $3 WHERE user_id = $1 AND link_id = $2",
            user_id,
            link_id,
            at,
        )

    async def delete_link(self, user_id: str, link_id: str) -> bool:
        """Remove the link and (by cascade) its accounts."""
        status: str = await self._pool.execute(
            "DELETE FROM broker_links WHERE user_id = $1 AND link_id = $2", user_id, link_id
        )
        return status.endswith(" 1")
