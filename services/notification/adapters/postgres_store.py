"""The PostgreSQL ``Store`` (asyncpg): channels, preference snapshots, acknowledgements, deliveries.

The ``deliveries`` row is the idempotency record of the side effect: one per (alert, channel), created before
any provider call, moved by compare-and-set updates that check the status and the lease.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.notification.domain.delivery import DeliveryEvent, PlannedDelivery, next_status, sources_of
from services.notification.domain.errors import ChannelLimitExceeded, DatabaseUnavailable
from services.notification.domain.model import (
    AlertNotice,
    Channel,
    ChannelKind,
    ChannelState,
    Delivery,
    DeliveryStatus,
    Preferences,
    QuietHours,
    Severity,
)
from services.notification.ports import DeliveryQuery
from services.platform.postgres import SchemaStore

__all__ = ["MIGRATIONS", "PostgresStore"]

_DB_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE channels (
        channel_id text PRIMARY KEY,
        user_id text NOT NULL,
        kind smallint NOT NULL,
        address text NOT NULL,
        display_name text NOT NULL,
        state smallint NOT NULL,
        request_id text,
        create_time timestamptz NOT NULL,
        UNIQUE (user_id, kind, address)
    );
    CREATE UNIQUE INDEX channels_request ON channels (user_id, request_id) WHERE request_id IS NOT NULL;
    CREATE TABLE preferences (
        user_id text PRIMARY KEY,
        body jsonb NOT NULL,
        update_time timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE acknowledged_alerts (
        alert_id text PRIMARY KEY,
        user_id text NOT NULL,
        acknowledge_time timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE deliveries (
        delivery_id text PRIMARY KEY,
        alert_id text NOT NULL,
        user_id text NOT NULL,
        channel_id text NOT NULL,
        channel_kind smallint NOT NULL,
        address text NOT NULL,
        status smallint NOT NULL,
        attempt_count integer NOT NULL DEFAULT 0,
        escalation_level integer NOT NULL,
        due_time timestamptz NOT NULL,
        title text NOT NULL,
        body text NOT NULL,
        provider_message_id text NOT NULL DEFAULT '',
        last_error text NOT NULL DEFAULT '',
        test boolean NOT NULL DEFAULT false,
        create_time timestamptz NOT NULL,
        update_time timestamptz NOT NULL,
        send_time timestamptz,
        lease_owner text NOT NULL DEFAULT '',
        lease_until timestamptz,
        ambiguous boolean NOT NULL DEFAULT false,
        attempt_started timestamptz
    );
    CREATE UNIQUE INDEX deliveries_once ON deliveries (alert_id, channel_id) WHERE NOT test;
    CREATE INDEX deliveries_by_user ON deliveries (user_id, create_time DESC, delivery_id DESC);
    CREATE INDEX deliveries_open ON deliveries (due_time) WHERE status IN (1, 2, 4);
    """,
    """
    CREATE TABLE code_sends (
        message_id text PRIMARY KEY,
        user_id text NOT NULL,
        channel_kind smallint NOT NULL,
        provider_message_id text NOT NULL,
        send_time timestamptz NOT NULL
    );
    """,
)

_CHANGEABLE = frozenset({"provider_message_id", "last_error", "ambiguous", "lease_until", "due_time"})


def _prefs_to_json(p: Preferences) -> str:
    q = p.quiet_hours
    return json.dumps(
        {
            "phone_number": p.phone_number,
            "phone_verified": p.phone_verified,
            "email": p.email,
            "email_verified": p.email_verified,
            "push_tokens": sorted(p.push_tokens),
            "quiet_hours": [q.enabled, q.time_zone, q.start_minute, q.end_minute, q.allow_critical],
            "severity_channels": {str(int(k)): [int(c) for c in v] for k, v in p.severity_channels.items()},
            "escalation_delay_seconds": p.escalation_delay.total_seconds(),
            "fetched_at": None if p.fetched_at is None else p.fetched_at.isoformat(),
        }
    )


def _prefs_from_json(raw: str) -> Preferences:
    d = json.loads(raw)
    q = d["quiet_hours"]
    return Preferences(
        phone_number=d["phone_number"],
        phone_verified=d["phone_verified"],
        email=d["email"],
        email_verified=d["email_verified"],
        push_tokens=frozenset(d["push_tokens"]),
        quiet_hours=QuietHours(q[0], q[1], q[2], q[3], q[4]),
        severity_channels={Severity(int(k)): tuple(ChannelKind(c) for c in v) for k, v in d["severity_channels"].items()},
        escalation_delay=timedelta(seconds=d["escalation_delay_seconds"]),
        fetched_at=None if d["fetched_at"] is None else datetime.fromisoformat(d["fetched_at"]),
    )


def _channel(row: asyncpg.Record) -> Channel:
    return Channel(
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        kind=ChannelKind(row["kind"]),
        address=row["address"],
        display_name=row["display_name"],
        state=ChannelState(row["state"]),
        create_time=row["create_time"],
    )


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        delivery_id=row["delivery_id"],
        alert_id=row["alert_id"],
        user_id=row["user_id"],
        channel_id=row["channel_id"],
        channel_kind=ChannelKind(row["channel_kind"]),
        address=row["address"],
        status=DeliveryStatus(row["status"]),
        attempt_count=row["attempt_count"],
        escalation_level=row["escalation_level"],
        due_time=row["due_time"],
        title=row["title"],
        body=row["body"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        provider_message_id=row["provider_message_id"],
        last_error=row["last_error"],
        test=row["test"],
        send_time=row["send_time"],
        lease_until=row["lease_until"],
        ambiguous=row["ambiguous"],
        attempt_started=row["attempt_started"],
        lease_owner=row["lease_owner"],
    )


class PostgresStore(SchemaStore):
    """The notification store on PostgreSQL, in its own schema."""

    MIGRATIONS = MIGRATIONS
    DEFAULT_SCHEMA = "notification"
    UNAVAILABLE = DatabaseUnavailable
    WHAT = "the notification database"

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self.pool.fetch(sql, *args))
        except _DB_ERRORS as error:
            raise DatabaseUnavailable() from error

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self.pool.fetchrow(sql, *args)
        except _DB_ERRORS as error:
            raise DatabaseUnavailable() from error

    async def _execute(self, sql: str, *args: Any) -> str:
        try:
            return str(await self.pool.execute(sql, *args))
        except _DB_ERRORS as error:
            raise DatabaseUnavailable() from error

    # ------------------------------------------------------------------------------------------- channels

    async def register_channel(self, channel: Channel, request_id: str, limit: int) -> Channel:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"channels:{channel.user_id}")
                if request_id:
                    row = await connection.fetchrow(
                        "SELECT * FROM channels WHERE user_id = $1 AND request_id = $2", channel.user_id, request_id
                    )
                    if row is not None:
                        return _channel(row)
                row = await connection.fetchrow(
                    "SELECT * FROM channels WHERE user_id = $1 AND kind = $2 AND address = $3",
                    channel.user_id, int(channel.kind), channel.address,
                )
                if row is not None:
                    return _channel(row)
                count = await connection.fetchval("SELECT count(*) FROM channels WHERE user_id = $1", channel.user_id)
                if count >= limit:
                    raise ChannelLimitExceeded(limit)
                await connection.execute(
                    "INSERT INTO channels (channel_id, user_id, kind, address, display_name, state, request_id, create_time)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    channel.channel_id, channel.user_id, int(channel.kind), channel.address, channel.display_name,
                    int(channel.state), request_id or None, channel.create_time,
                )
                return channel
        except _DB_ERRORS as error:
            raise DatabaseUnavailable() from error

    async def get_channel(self, user_id: str, channel_id: str) -> Channel | None:
        row = await self._fetchrow("SELECT * FROM channels WHERE channel_id = $1 AND user_id = $2", channel_id, user_id)
        return None if row is None else _channel(row)

    async def list_channels(self, user_id: str, after: tuple[datetime, str] | None, limit: int) -> list[Channel]:
        rows = await self._fetch(
            "SELECT * FROM channels WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (create_time, channel_id) > ($2, $3))"
            " ORDER BY create_time, channel_id LIMIT $4",
            user_id, None if after is None else after[0], "" if after is None else after[1], limit,
        )
        return [_channel(r) for r in rows]

    async def delete_channel(self, user_id: str, channel_id: str) -> bool:
        status = await self._execute("DELETE FROM channels WHERE channel_id = $1 AND user_id = $2", channel_id, user_id)
        return status.endswith(" 1")

    async def disable_channel(self, channel_id: str) -> None:
        await self._execute("UPDATE channels SET state = $2 WHERE channel_id = $1", channel_id, int(ChannelState.DISABLED))

    async def user_channels(self, user_id: str) -> list[Channel]:
        rows = await self._fetch("SELECT * FROM channels WHERE user_id = $1 ORDER BY create_time, channel_id", user_id)
        return [_channel(r) for r in rows]

    # ------------------------------------------------------------------------------------------- preferences

    async def save_preferences(self, user_id: str, preferences: Preferences) -> None:
        await self._execute(
            "INSERT INTO preferences (user_id, body, update_time) VALUES ($1, $2::jsonb, now())"
            " ON CONFLICT (user_id) DO UPDATE SET body = EXCLUDED.body, update_time = now()",
            user_id, _prefs_to_json(preferences),
        )

    async def get_preferences(self, user_id: str) -> Preferences | None:
        row = await self._fetchrow("SELECT body FROM preferences WHERE user_id = $1", user_id)
        return None if row is None else _prefs_from_json(row["body"])

    async def mark_acknowledged(self, alert_id: str, user_id: str) -> None:
        await self._execute(
            "INSERT INTO acknowledged_alerts (alert_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", alert_id, user_id
        )

    async def is_acknowledged(self, alert_id: str) -> bool:
        return await self._fetchrow("SELECT 1 FROM acknowledged_alerts WHERE alert_id = $1", alert_id) is not None

    # ------------------------------------------------------------------------------------------- deliveries

    async def plan_deliveries(self, alert: AlertNotice, planned: Sequence[PlannedDelivery], now: datetime) -> list[Delivery]:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                for item in planned:
                    status = DeliveryStatus.SUPPRESSED if item.suppressed_reason else DeliveryStatus.PENDING
                    await connection.execute(
                        "INSERT INTO deliveries (delivery_id, alert_id, user_id, channel_id, channel_kind, address, status,"
                        " escalation_level, due_time, title, body, create_time, update_time, last_error)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)"
                        " ON CONFLICT (alert_id, channel_id) WHERE NOT test DO NOTHING",
                        str(uuid.uuid4()), alert.alert_id, alert.user_id, item.channel.channel_id, int(item.channel.kind),
                        item.channel.address, int(status), item.escalation_level, item.due_time, alert.title,
                        alert.message, now, item.suppressed_reason,
                    )
                rows = await connection.fetch("SELECT * FROM deliveries WHERE alert_id = $1 AND NOT test", alert.alert_id)
        except _DB_ERRORS as error:
            raise DatabaseUnavailable() from error
        return [_delivery(r) for r in rows]

    async def add_delivery(self, delivery: Delivery) -> Delivery:
        d = delivery
        await self._execute(
            "INSERT INTO deliveries (delivery_id, alert_id, user_id, channel_id, channel_kind, address, status,"
            " escalation_level, due_time, title, body, create_time, update_time, test)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            d.delivery_id, d.alert_id, d.user_id, d.channel_id, int(d.channel_kind), d.address, int(d.status),
            d.escalation_level, d.due_time, d.title, d.body, d.create_time, d.update_time, d.test,
        )
        return delivery

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        row = await self._fetchrow("SELECT * FROM deliveries WHERE delivery_id = $1", delivery_id)
        return None if row is None else _delivery(row)

    async def claim(
        self, delivery_id: str, owner: str, now: datetime, lease_until: datetime
    ) -> tuple[Delivery, DeliveryStatus] | None:
        row = await self._fetchrow(
            "WITH previous AS (SELECT status FROM deliveries WHERE delivery_id = $1 FOR UPDATE)"
            " UPDATE deliveries d SET status = $2, attempt_count = d.attempt_count + 1, attempt_started = $3,"
            " lease_owner = $4, lease_until = $5, update_time = $3, ambiguous = d.ambiguous OR d.status = $2"
            " FROM previous WHERE d.delivery_id = $1 AND ("
            "   (d.status IN ($6, $7) AND d.due_time <= $3"
            "     AND (d.lease_until IS NULL OR d.lease_until <= $3 OR d.lease_owner = $4))"
            "   OR (d.status = $2 AND (d.lease_until IS NULL OR d.lease_until <= $3)))"
            " RETURNING d.*, previous.status AS previous_status",
            delivery_id, int(DeliveryStatus.ATTEMPTING), now, owner, lease_until,
            int(DeliveryStatus.PENDING), int(DeliveryStatus.RETRYING),
        )
        if row is None:
            return None
        return _delivery(row), DeliveryStatus(row["previous_status"])

    async def transition(
        self, delivery_id: str, owner: str, event: DeliveryEvent, now: datetime, **changes: Any
    ) -> Delivery | None:
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}")
        sources = sorted(int(s) for s in sources_of(event))
        targets = {s: next_status(s, event) for s in sources_of(event)}
        target = next(iter(set(targets.values())))
        assert len(set(targets.values())) == 1, "an event leads to one status"
        final = target in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED)
        sets = ["status = $3", "update_time = $4"]
        args: list[Any] = [delivery_id, owner, int(target), now, sources]
        for name, value in changes.items():
            args.append(value)
            sets.append(f"{name} = ${len(args)}")
        if final:
            sets += ["lease_owner = ''", "lease_until = NULL"]
        if target is DeliveryStatus.SENT:
            sets.append("send_time = $4")
        row = await self._fetchrow(
            f"UPDATE deliveries SET {', '.join(sets)} WHERE delivery_id = $1 AND status = ANY($5::smallint[])"
            " AND (lease_owner = '' OR lease_owner = $2 OR lease_until IS NULL OR lease_until <= $4) RETURNING *",
            *args,
        )
        return None if row is None else _delivery(row)

    async def claimable(self, now: datetime, limit: int) -> list[str]:
        rows = await self._fetch(
            "SELECT delivery_id FROM deliveries WHERE status IN ($1, $2, $3) AND (lease_until IS NULL OR lease_until <= $4)"
            " AND (status = $2 OR due_time <= $4) ORDER BY due_time, delivery_id LIMIT $5",
            int(DeliveryStatus.PENDING), int(DeliveryStatus.ATTEMPTING), int(DeliveryStatus.RETRYING), now, limit,
        )
        return [r["delivery_id"] for r in rows]

    async def list_deliveries(self, user_id: str, query: DeliveryQuery) -> list[Delivery]:
        rows = await self._fetch(
            "SELECT * FROM deliveries WHERE user_id = $1"
            " AND ($2::timestamptz IS NULL OR (create_time, delivery_id) < ($2, $3))"
            " AND ($4 = '' OR alert_id = $4) AND ($5 = '' OR channel_id = $5)"
            " AND ($6::smallint IS NULL OR status = $6)"
            " ORDER BY create_time DESC, delivery_id DESC LIMIT $7",
            user_id,
            None if query.before is None else query.before[0],
            "" if query.before is None else query.before[1],
            query.alert_id,
            query.channel_id,
            None if query.status is None else int(query.status),
            query.limit,
        )
        return [_delivery(r) for r in rows]

    async def test_times(self, user_id: str, since: datetime) -> list[datetime]:
        rows = await self._fetch(
            "SELECT create_time FROM deliveries WHERE user_id = $1 AND test AND create_time >= $2 ORDER BY create_time",
            user_id, since,
        )
        return [r["create_time"] for r in rows]

    async def code_sent(self, message_id: str) -> bool:
        return await self._fetchrow("SELECT 1 FROM code_sends WHERE message_id = $1", message_id) is not None

    async def record_code(self, message_id: str, user_id: str, kind: ChannelKind, provider_message_id: str, at: datetime) -> None:
        await self._execute(
            "INSERT INTO code_sends (message_id, user_id, channel_kind, provider_message_id, send_time)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            message_id, user_id, int(kind), provider_message_id, at,
        )

    async def delete_user(self, user_id: str) -> None:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                for table in ("deliveries", "channels", "preferences", "acknowledged_alerts", "code_sends"):
                    await connection.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
        except _DB_ERRORS as error:
            raise DatabaseUnavailable() from error
