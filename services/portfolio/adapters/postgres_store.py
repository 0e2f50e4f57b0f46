"""The PostgreSQL ``Store`` (asyncpg): risk limits, active breaches, alerts with their outbox, snapshots."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import asyncpg

from services.portfolio.adapters.records import (
    alert_id_for,
    breach_from_json,
    breach_to_json,
    limits_from_json,
    limits_to_json,
)
from services.portfolio.domain.errors import DatabaseUnavailable
from services.portfolio.domain.risk import RiskLimits, Severity
from services.portfolio.ports import RiskAlert, Snapshot
from services.platform.postgres import SchemaStore

__all__ = ["MIGRATIONS", "PostgresStore"]


# Applied in order at start-up, each once, under an advisory lock (replicas may start together).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE risk_limits (
        account_number text PRIMARY KEY,
        user_id text NOT NULL,
        limits jsonb NOT NULL,
        active_breaches text[] NOT NULL DEFAULT '{}',
        update_time timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE risk_alerts (
        sequence bigserial PRIMARY KEY,
        alert_id text UNIQUE NOT NULL,
        user_id text NOT NULL,
        account_number text NOT NULL,
        severity smallint NOT NULL,
        title text NOT NULL,
        message text NOT NULL,
        raise_time timestamptz NOT NULL,
        breach jsonb NOT NULL,
        published boolean NOT NULL DEFAULT false
    );
    CREATE INDEX risk_alerts_by_account ON risk_alerts (account_number, sequence);
    CREATE INDEX risk_alerts_unpublished ON risk_alerts (sequence) WHERE NOT published;
    CREATE TABLE risk_snapshots (
        account_number text NOT NULL,
        record_time timestamptz NOT NULL,
        net_liquidating_value numeric NOT NULL,
        unrealized_pnl numeric NOT NULL,
        delta_dollars double precision NOT NULL,
        beta_weighted_delta double precision NOT NULL,
        theta double precision NOT NULL,
        vega double precision NOT NULL,
        benchmark_symbol text NOT NULL,
        PRIMARY KEY (account_number, record_time)
    );
    """,
)

P = ParamSpec("P")
T = TypeVar("T")
_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def _guard(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except _DOWN as error:
            raise DatabaseUnavailable(f"the portfolio database cannot be reached: {type(error).__name__}") from error

    return wrapper


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class PostgresStore(SchemaStore):
    """The store on PostgreSQL, in its own schema."""

    MIGRATIONS = MIGRATIONS
    DEFAULT_SCHEMA = "portfolio"
    UNAVAILABLE = DatabaseUnavailable
    WHAT = "the portfolio database"

    @_guard
    async def get_limits(self, account_number: str) -> tuple[str, RiskLimits] | None:
        row = await self.pool.fetchrow("SELECT user_id, limits FROM risk_limits WHERE account_number = $1", account_number)
        return None if row is None else (row["user_id"], limits_from_json(json.loads(row["limits"])))

    @_guard
    async def put_limits(self, account_number: str, user_id: str, limits: RiskLimits) -> None:
        await self.pool.execute(
            """
            INSERT INTO risk_limits (account_number, user_id, limits, active_breaches, update_time)
            VALUES ($1, $2, $3::jsonb, '{}', now())
            ON CONFLICT (account_number) DO UPDATE
              SET user_id = EXCLUDED.user_id, limits = EXCLUDED.limits, active_breaches = '{}', update_time = now()
            """,
            account_number,
            user_id,
            _dumps(limits_to_json(limits)),
        )

    @_guard
    async def accounts_with_limits(self) -> list[tuple[str, str]]:
        rows = await self.pool.fetch("SELECT account_number, user_id FROM risk_limits ORDER BY account_number")
        return [(r["account_number"], r["user_id"]) for r in rows]

    @_guard
    async def active_breaches(self, account_number: str) -> set[str]:
        value = await self.pool.fetchval(
            "SELECT active_breaches FROM risk_limits WHERE account_number = $1", account_number
        )
        return set(value or ())

    @_guard
    async def record_breaches(
        self, account_number: str, drafts: Sequence[RiskAlert], active: set[str], expected: set[str]
    ) -> list[RiskAlert]:
        async with self.pool.acquire() as connection, connection.transaction():
            current = await connection.fetchval(
                "SELECT active_breaches FROM risk_limits WHERE account_number = $1 FOR UPDATE", account_number
            )
            if set(current or ()) != expected:
                return []
            await connection.execute(
                "UPDATE risk_limits SET active_breaches = $2 WHERE account_number = $1", account_number, sorted(active)
            )
            stored = []
            for draft in drafts:
                sequence = await connection.fetchval("SELECT nextval(pg_get_serial_sequence('risk_alerts', 'sequence'))")
                alert_id = alert_id_for(sequence)
                await connection.execute(
                    """
                    INSERT INTO risk_alerts (sequence, alert_id, user_id, account_number, severity, title, message,
                                             raise_time, breach)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
                    """,
                    sequence, alert_id, draft.user_id, account_number, int(draft.severity), draft.title,
                    draft.message, draft.raise_time, _dumps(breach_to_json(draft.breach)),
                )
                stored.append(RiskAlert(alert_id, draft.user_id, account_number, draft.severity, draft.title,
                                        draft.message, draft.raise_time, draft.breach))
            return stored

    @staticmethod
    def _alert(row: asyncpg.Record) -> RiskAlert:
        return RiskAlert(
            alert_id=row["alert_id"],
            user_id=row["user_id"],
            account_number=row["account_number"],
            severity=Severity(row["severity"]),
            title=row["title"],
            message=row["message"],
            raise_time=row["raise_time"],
            breach=breach_from_json(json.loads(row["breach"])),
        )

    @_guard
    async def pending_outbox(self, limit: int) -> list[RiskAlert]:
        rows = await self.pool.fetch("SELECT * FROM risk_alerts WHERE NOT published ORDER BY sequence LIMIT $1", limit)
        return [self._alert(r) for r in rows]

    @_guard
    async def mark_published(self, alert_ids: Sequence[str]) -> None:
        await self.pool.execute("UPDATE risk_alerts SET published = true WHERE alert_id = ANY($1::text[])", list(alert_ids))

    @_guard
    async def list_alerts(
        self, account_number: str, start: datetime | None, end: datetime | None, before_id: str | None, limit: int
    ) -> list[RiskAlert]:
        rows = await self.pool.fetch(
            """
            SELECT * FROM risk_alerts
            WHERE account_number = $1
              AND ($2::timestamptz IS NULL OR raise_time >= $2)
              AND ($3::timestamptz IS NULL OR raise_time < $3)
              AND ($4::text IS NULL OR alert_id < $4)
            ORDER BY sequence DESC LIMIT $5
            """,
            account_number, start, end, before_id, limit,
        )
        return [self._alert(r) for r in rows]

    @_guard
    async def add_snapshot(self, account_number: str, snapshot: Snapshot) -> None:
        await self.pool.execute(
            """
            INSERT INTO risk_snapshots VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (account_number, record_time) DO NOTHING
            """,
            account_number, snapshot.record_time, snapshot.net_liquidating_value, snapshot.unrealized_pnl,
            snapshot.delta_dollars, snapshot.beta_weighted_delta, snapshot.theta, snapshot.vega,
            snapshot.benchmark_symbol,
        )

    @_guard
    async def list_snapshots(self, account_number: str, start: datetime | None, end: datetime | None) -> list[Snapshot]:
        rows = await self.pool.fetch(
            """
            SELECT * FROM risk_snapshots
            WHERE account_number = $1 AND ($2::timestamptz IS NULL OR record_time >= $2)
              AND ($3::timestamptz IS NULL OR record_time < $3)
            ORDER BY record_time
            """,
            account_number, start, end,
        )
        return [
            Snapshot(r["record_time"], Decimal(r["net_liquidating_value"]), Decimal(r["unrealized_pnl"]),
                     r["delta_dollars"], r["beta_weighted_delta"], r["theta"], r["vega"], r["benchmark_symbol"])
            for r in rows
        ]
