"""The PostgreSQL ``Store`` (asyncpg): watches, live states, alerts and the transactional outbox."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from services.deltamonitor.adapters.records import (
    alert_detail_from_json,
    alert_detail_to_json,
    live_from_json,
    live_to_json,
    position_from_json,
    position_to_json,
    watch_spec_from_json,
    watch_spec_to_json,
)
from services.deltamonitor.domain.errors import DatabaseUnavailable, WatchLimitExceeded
from services.deltamonitor.domain.model import (
    ALERT_ID_DIGITS,
    ALERT_ID_PREFIX,
    Alert,
    AlertKind,
    AlertState,
    HeldPosition,
    Severity,
    Watch,
    WatchLive,
)
from services.deltamonitor.domain.partitions import fair_share
from services.deltamonitor.ports import (
    ACKNOWLEDGED_TOPIC,
    RAISED_TOPIC,
    AlertQuery,
    Fence,
    LeaseLost,
    LeaseView,
    MarketInputs,
    OutboxEntry,
    WatchCursor,
)
from services.platform.postgres import SchemaStore

__all__ = ["MIGRATIONS", "PostgresStore"]

log = logging.getLogger("tastyplat.deltamonitor.store")


# Applied in order at start-up, each once, under an advisory lock (replicas may start together).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE watches (
        watch_id text PRIMARY KEY,
        user_id text NOT NULL,
        account_number text NOT NULL,
        request_id text,
        spec jsonb NOT NULL,
        live jsonb,
        live_generation integer,
        create_time timestamptz NOT NULL,
        update_time timestamptz NOT NULL,
        UNIQUE (user_id, request_id)
    );
    CREATE INDEX watches_by_user ON watches (user_id, create_time, watch_id);
    CREATE TABLE alerts (
        sequence bigserial PRIMARY KEY,
        alert_id text UNIQUE NOT NULL,
        user_id text NOT NULL,
        account_number text NOT NULL,
        watch_id text NOT NULL,
        kind smallint NOT NULL,
        severity smallint NOT NULL,
        state smallint NOT NULL,
        raise_time timestamptz NOT NULL,
        acknowledge_time timestamptz,
        body jsonb NOT NULL
    );
    CREATE INDEX alerts_by_user ON alerts (user_id, sequence);
    CREATE TABLE outbox (
        entry_id bigserial PRIMARY KEY,
        topic text NOT NULL,
        message_id text NOT NULL,
        alert_sequence bigint NOT NULL REFERENCES alerts (sequence)
    );
    """,
    """
    CREATE TABLE accounts (
        account_number text PRIMARY KEY,
        positions jsonb NOT NULL,
        inputs jsonb NOT NULL,
        update_time timestamptz NOT NULL DEFAULT now()
    );
    """,
    # The trace context of the work that queued each event (issue 9): the relay publishes it with the message.
    """
    ALTER TABLE outbox ADD COLUMN headers jsonb;
    """,
    # Replicas share the watches by partition leases (issue 9): who is live, and who holds which partition.
    """
    CREATE TABLE replicas (
        replica_id text PRIMARY KEY,
        expires_at timestamptz NOT NULL
    );
    CREATE TABLE partition_leases (
        partition integer PRIMARY KEY,
        owner text,
        expires_at timestamptz NOT NULL
    );
    """,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


# Every write of alerts and live states, fenced or not, as one statement (one transaction, one round trip):
# the fence's lease rows are held FOR SHARE until it commits, so a replica claiming one of them (an UPDATE)
# waits for the write and then loads state that includes it; nothing is written unless every lease is held.
# The smallest sequence goes to the first draft; an alert's id is its sequence, zero-padded.
_WRITE = """
WITH fence AS (
    SELECT coalesce(array_agg(l.partition), '{}') AS held
    FROM (SELECT partition FROM partition_leases
          WHERE partition = ANY($1::integer[]) AND owner = $2 AND expires_at > clock_timestamp() FOR SHARE) l
), allowed AS (
    SELECT cardinality(held) = cardinality($1::integer[]) AS ok FROM fence
), ids AS (
    SELECT s.sequence, row_number() OVER (ORDER BY s.sequence) AS ord
    FROM (SELECT nextval(pg_get_serial_sequence('alerts', 'sequence')) AS sequence
          FROM generate_series(1, $3) WHERE (SELECT ok FROM allowed)) s
), a AS (
    INSERT INTO alerts (sequence, alert_id, user_id, account_number, watch_id, kind, severity, state, raise_time, body)
    SELECT ids.sequence, $4 || lpad(ids.sequence::text, $5, '0'), d.user_id, d.account_number, d.watch_id, d.kind,
           d.severity, d.state, d.raise_time, d.body
    FROM unnest($6::text[], $7::text[], $8::text[], $9::smallint[], $10::smallint[], $11::smallint[],
                $12::timestamptz[], $13::jsonb[])
         WITH ORDINALITY AS d(user_id, account_number, watch_id, kind, severity, state, raise_time, body, ord)
    JOIN ids ON ids.ord = d.ord
    RETURNING sequence, alert_id
), o AS (
    INSERT INTO outbox (topic, message_id, alert_sequence, headers)
    SELECT $14, alert_id, sequence, $15::jsonb FROM a ORDER BY sequence
), l AS (
    UPDATE watches w SET live = x.live, live_generation = x.generation
    FROM unnest($16::text[], $17::jsonb[], $18::integer[]) AS x(watch_id, live, generation)
    WHERE w.watch_id = x.watch_id AND (SELECT ok FROM allowed)
)
SELECT (SELECT ok FROM allowed) AS ok, (SELECT held FROM fence) AS held,
       array(SELECT sequence FROM a ORDER BY sequence) AS sequences,
       array(SELECT alert_id FROM a ORDER BY sequence) AS alert_ids
"""


class PostgresStore(SchemaStore):
    """The store on PostgreSQL, in its own schema."""

    MIGRATIONS = MIGRATIONS
    DEFAULT_SCHEMA = "deltamonitor"
    UNAVAILABLE = DatabaseUnavailable
    WHAT = "the alert database"

    def __init__(self, dsn: str, **options: Any) -> None:
        """Configure the store (``start`` connects); options as ``SchemaStore``."""
        super().__init__(dsn, **options)
        self._releasing: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Return the connections still being released, then close the pool."""
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        await super().close()

    # ------------------------------------------------------------------------------------------- watches

    @staticmethod
    def _watch(row: asyncpg.Record) -> Watch:
        return watch_spec_from_json(
            json.loads(row["spec"]),
            watch_id=row["watch_id"],
            user_id=row["user_id"],
            account_number=row["account_number"],
            create_time=row["create_time"],
            update_time=row["update_time"],
        )

    async def create_watch(self, watch: Watch, request_id: str, limit: int) -> Watch:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                # Serialise creations per user so the limit check and the insert cannot race.
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"watch-limit:{watch.user_id}")
                if request_id:
                    row = await connection.fetchrow(
                        "SELECT * FROM watches WHERE user_id = $1 AND request_id = $2", watch.user_id, request_id
                    )
                    if row is not None:
                        return self._watch(row)
                count = await connection.fetchval("SELECT count(*) FROM watches WHERE user_id = $1", watch.user_id)
                if count >= limit:
                    raise WatchLimitExceeded(limit)
                await connection.execute(
                    "INSERT INTO watches (watch_id, user_id, account_number, request_id, spec, create_time, update_time)"
                    " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
                    watch.watch_id,
                    watch.user_id,
                    watch.account_number,
                    request_id or None,
                    _dumps(watch_spec_to_json(watch)),
                    watch.create_time,
                    watch.update_time,
                )
                return watch
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable() from error

    async def get_watch(self, user_id: str, watch_id: str) -> Watch | None:
        row = await self._fetchrow("SELECT * FROM watches WHERE watch_id = $1 AND user_id = $2", watch_id, user_id)
        return None if row is None else self._watch(row)

    async def list_watches(
        self, user_id: str, account_number: str, after: WatchCursor | None, limit: int
    ) -> list[Watch]:
        rows = await self._fetch(
            "SELECT * FROM watches WHERE user_id = $1 AND ($2 = '' OR account_number = $2)"
            " AND ($3::timestamptz IS NULL OR (create_time, watch_id) > ($3, $4))"
            " ORDER BY create_time, watch_id LIMIT $5",
            user_id,
            account_number,
            None if after is None else after.create_time,
            "" if after is None else after.watch_id,
            limit,
        )
        return [self._watch(r) for r in rows]

    async def update_watch(self, watch: Watch) -> bool:
        status = await self._execute(
            "UPDATE watches SET spec = $2::jsonb, update_time = $3 WHERE watch_id = $1",
            watch.watch_id,
            _dumps(watch_spec_to_json(watch)),
            watch.update_time,
        )
        return status.endswith(" 1")

    async def delete_watch(self, user_id: str, watch_id: str) -> bool:
        status = await self._execute("DELETE FROM watches WHERE watch_id = $1 AND user_id = $2", watch_id, user_id)
        return status.endswith(" 1")

    async def all_watches(self) -> list[Watch]:
        return [self._watch(r) for r in await self._fetch("SELECT * FROM watches ORDER BY create_time, watch_id")]

    async def load_live(self, watch_ids: Sequence[str] | None = None) -> dict[str, tuple[int, WatchLive]]:
        rows = await self._fetch(
            "SELECT watch_id, live, live_generation FROM watches WHERE live IS NOT NULL"
            " AND ($1::text[] IS NULL OR watch_id = ANY($1::text[]))",
            None if watch_ids is None else list(watch_ids),
        )
        return {r["watch_id"]: (r["live_generation"], live_from_json(json.loads(r["live"]))) for r in rows}

    async def save_live(self, states: dict[str, tuple[int, WatchLive]], fence: Fence | None = None) -> None:
        if states:
            await self.record_alerts([], states, None, fence)

    async def save_account(self, account_number: str, positions: Sequence[HeldPosition], inputs: MarketInputs) -> None:
        await self._execute(
            "INSERT INTO accounts (account_number, positions, inputs) VALUES ($1, $2::jsonb, $3::jsonb)"
            " ON CONFLICT (account_number) DO UPDATE SET positions = EXCLUDED.positions, inputs = EXCLUDED.inputs,"
            " update_time = now()",
            account_number,
            _dumps([position_to_json(p) for p in positions]),
            _dumps({"betas": inputs.betas, "dividend_yields": inputs.dividend_yields, "rate": inputs.rate}),
        )

    async def load_accounts(
        self, accounts: Sequence[str] | None = None
    ) -> dict[str, tuple[list[HeldPosition], MarketInputs]]:
        out: dict[str, tuple[list[HeldPosition], MarketInputs]] = {}
        rows = await self._fetch(
            "SELECT account_number, positions, inputs FROM accounts"
            " WHERE $1::text[] IS NULL OR account_number = ANY($1::text[])",
            None if accounts is None else list(accounts),
        )
        for row in rows:
            inputs = json.loads(row["inputs"])
            out[row["account_number"]] = (
                [position_from_json(p) for p in json.loads(row["positions"])],
                MarketInputs(inputs["betas"], inputs["dividend_yields"], inputs["rate"]),
            )
        return out

    # ------------------------------------------------------------------------------------------- alerts

    @staticmethod
    def _alert(row: asyncpg.Record) -> Alert:
        title, message, detail = alert_detail_from_json(json.loads(row["body"]))
        return Alert(
            alert_id=row["alert_id"],
            user_id=row["user_id"],
            account_number=row["account_number"],
            watch_id=row["watch_id"],
            kind=AlertKind(row["kind"]),
            severity=Severity(row["severity"]),
            state=AlertState(row["state"]),
            title=title,
            message=message,
            raise_time=row["raise_time"],
            detail=detail,
            acknowledge_time=row["acknowledge_time"],
            sequence=row["sequence"],
        )

    async def record_alerts(
        self,
        drafts: Sequence[Alert],
        live: dict[str, tuple[int, WatchLive]],
        headers: Mapping[str, str] | None = None,
        fence: Fence | None = None,
    ) -> list[Alert]:
        # One statement, so one round trip however many alerts a tick raised (a market gap can move thousands of
        # watches at once): it is its own transaction, and the alert write sits between a tick and the alert's
        # stream, on an event loop busy with the next ticks, where every round trip waits for a turn.
        partitions = sorted(fence.partitions) if fence is not None else []
        try:
            connection = await self.pool.acquire()
            try:
                row = await connection.fetchrow(
                    _WRITE,
                    partitions,
                    fence.owner if fence is not None else "",
                    len(drafts),
                    ALERT_ID_PREFIX,
                    ALERT_ID_DIGITS,
                    [d.user_id for d in drafts],
                    [d.account_number for d in drafts],
                    [d.watch_id for d in drafts],
                    [int(d.kind) for d in drafts],
                    [int(d.severity) for d in drafts],
                    [int(d.state) for d in drafts],
                    [d.raise_time for d in drafts],
                    [_dumps(alert_detail_to_json(d)) for d in drafts],
                    RAISED_TOPIC,
                    _dumps(dict(headers)) if headers else None,
                    list(live),
                    [_dumps(live_to_json(state)) for _, state in live.values()],
                    [generation for generation, _ in live.values()],
                )
            finally:
                self._release_soon(connection)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable() from error
        assert row is not None
        if not row["ok"]:
            raise LeaseLost(frozenset(partitions) - set(row["held"]))
        return [replace(d, alert_id=i, sequence=q) for d, q, i in zip(drafts, row["sequences"], row["alert_ids"])]

    def _release_soon(self, connection: asyncpg.Connection) -> None:
        # The pool resets a connection when it is released (a round trip): the stored alerts go on to their
        # streams meanwhile, and close() waits for the release.
        task = asyncio.create_task(self.pool.release(connection))
        self._releasing.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Task[None]) -> None:
        self._releasing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("releasing an alert-write connection failed", extra={"error": repr(task.exception())})

    async def get_alert(self, user_id: str, alert_id: str) -> Alert | None:
        row = await self._fetchrow("SELECT * FROM alerts WHERE alert_id = $1 AND user_id = $2", alert_id, user_id)
        return None if row is None else self._alert(row)

    async def list_alerts(self, user_id: str, query: AlertQuery) -> list[Alert]:
        rows = await self._fetch(
            "SELECT * FROM alerts WHERE user_id = $1"
            " AND ($2::bigint IS NULL OR sequence < $2)"
            " AND ($3 = '' OR watch_id = $3)"
            " AND ($4::smallint IS NULL OR state = $4)"
            " AND ($5::timestamptz IS NULL OR raise_time >= $5)"
            " AND ($6::timestamptz IS NULL OR raise_time < $6)"
            " AND ($7 = '' OR account_number = $7)"
            " ORDER BY sequence DESC LIMIT $8",
            user_id,
            query.before_sequence,
            query.watch_id,
            None if query.state is None else int(query.state),
            query.start_time,
            query.end_time,
            query.account_number,
            query.limit,
        )
        return [self._alert(r) for r in rows]

    async def acknowledge(
        self, user_id: str, alert_id: str, at: datetime, headers: Mapping[str, str] | None = None
    ) -> Alert | None:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                row = await connection.fetchrow(
                    "UPDATE alerts SET state = $3, acknowledge_time = $4"
                    " WHERE alert_id = $1 AND user_id = $2 AND state = $5 RETURNING *",
                    alert_id,
                    user_id,
                    int(AlertState.ACKNOWLEDGED),
                    at,
                    int(AlertState.OPEN),
                )
                if row is None:
                    existing = await connection.fetchrow(
                        "SELECT * FROM alerts WHERE alert_id = $1 AND user_id = $2", alert_id, user_id
                    )
                    return None if existing is None else self._alert(existing)
                await connection.execute(
                    "INSERT INTO outbox (topic, message_id, alert_sequence, headers) VALUES ($1, $2, $3, $4::jsonb)",
                    ACKNOWLEDGED_TOPIC,
                    f"{alert_id}.ack",
                    row["sequence"],
                    _dumps(dict(headers)) if headers else None,
                )
                return self._alert(row)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable() from error

    async def alerts_after(self, user_id: str, sequence: int, limit: int) -> list[Alert]:
        rows = await self._fetch(
            "SELECT * FROM alerts WHERE user_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
            user_id,
            sequence,
            limit,
        )
        return [self._alert(r) for r in rows]

    async def pending_outbox(self, limit: int) -> list[OutboxEntry]:
        rows = await self._fetch(
            "SELECT o.entry_id, o.topic, o.message_id, o.headers AS outbox_headers, a.* FROM outbox o"
            " JOIN alerts a ON a.sequence = o.alert_sequence ORDER BY o.entry_id LIMIT $1",
            limit,
        )
        return [
            OutboxEntry(r["entry_id"], r["topic"], r["message_id"], self._alert(r),
                        json.loads(r["outbox_headers"]) if r["outbox_headers"] else {})
            for r in rows
        ]

    async def mark_published(self, entry_ids: Sequence[int]) -> None:
        if entry_ids:
            await self._execute("DELETE FROM outbox WHERE entry_id = ANY($1::bigint[])", list(entry_ids))

    # ------------------------------------------------------------------------------------------- leases

    async def heartbeat(self, replica_id: str, lease_seconds: float, partitions: int) -> LeaseView:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                # Heartbeats take turns, so two replicas never compute shares from different views of who is live.
                await connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('deltamonitor-partition-leases:' || current_schema()))"
                )
                await connection.execute(
                    "INSERT INTO partition_leases (partition, owner, expires_at)"
                    " SELECT g, NULL, '-infinity' FROM generate_series(0, $1 - 1) g ON CONFLICT DO NOTHING",
                    partitions,
                )
                await connection.execute(
                    "INSERT INTO replicas (replica_id, expires_at) VALUES ($1, clock_timestamp() + make_interval(secs => $2))"
                    " ON CONFLICT (replica_id) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                    replica_id,
                    lease_seconds,
                )
                await connection.execute("DELETE FROM replicas WHERE expires_at <= clock_timestamp()")
                live = tuple(r["replica_id"] for r in await connection.fetch("SELECT replica_id FROM replicas ORDER BY 1"))
                target = fair_share(live, replica_id, partitions)
                held = {
                    r["partition"]
                    for r in await connection.fetch(
                        "UPDATE partition_leases SET expires_at = clock_timestamp() + make_interval(secs => $2)"
                        " WHERE owner = $1 AND partition < $3 RETURNING partition",
                        replica_id,
                        lease_seconds,
                        partitions,
                    )
                }
                if len(held) < target:
                    claimed = await connection.fetch(
                        "UPDATE partition_leases SET owner = $1, expires_at = clock_timestamp() + make_interval(secs => $2)"
                        " WHERE partition IN (SELECT partition FROM partition_leases WHERE partition < $3"
                        " AND (owner IS NULL OR expires_at <= clock_timestamp()) ORDER BY partition LIMIT $4 FOR UPDATE)"
                        " RETURNING partition",
                        replica_id,
                        lease_seconds,
                        partitions,
                        target - len(held),
                    )
                    held |= {r["partition"] for r in claimed}
                return LeaseView(frozenset(held), target, live)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable() from error

    async def release(self, replica_id: str, partitions: Sequence[int]) -> None:
        if partitions:
            await self._execute(
                "UPDATE partition_leases SET owner = NULL, expires_at = '-infinity'"
                " WHERE owner = $1 AND partition = ANY($2::integer[])",
                replica_id,
                list(partitions),
            )

    async def leave(self, replica_id: str) -> None:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                await connection.execute("DELETE FROM replicas WHERE replica_id = $1", replica_id)
                await connection.execute(
                    "UPDATE partition_leases SET owner = NULL, expires_at = '-infinity' WHERE owner = $1", replica_id
                )
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable() from error

    # ------------------------------------------------------------------------------------------- plumbing

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self.pool.fetch(sql, *args))
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable() from error

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self.pool.fetchrow(sql, *args)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable() from error

    async def _execute(self, sql: str, *args: Any) -> str:
        try:
            return str(await self.pool.execute(sql, *args))
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable() from error

