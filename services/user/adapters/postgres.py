"""PostgreSQL storage through asyncpg: migrations run at start-up, one schema per deployment (or test run)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.platform.crypto import SecretKeyring
from services.user.domain.access import UserPageRequest
from services.user.domain.errors import DatabaseUnavailable, EmailTaken
from services.user.domain.keys import SigningAlgorithm, SigningKey
from services.user.domain.model import Role, User
from services.user.domain.preferences import (
    Channel,
    Contact,
    NotificationPreferences,
    PushDevice,
    PushPlatform,
    QuietHours,
    Severity,
)
from services.user.domain.sessions import RefreshToken, RevokeReason, Session
from services.user.domain.throttle import FailureRecord, ThrottlePolicy
from services.user.domain.verification import ContactChannel, PasswordResetTicket, VerificationChallenge

__all__ = ["MIGRATIONS", "Migration", "PostgresDatabase", "PostgresStorage", "migrate"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One forward-only schema change.

    Attributes:
        version: Applied in ascending order, each exactly once.
        name: What it does.
        sql: The statements (plain SQL that PostgreSQL 15 and 18 both accept).
    """

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, sessions, throttling, verification, password resets, signing keys",
        """
        CREATE TABLE users (
            user_id            uuid PRIMARY KEY,
            email              text NOT NULL UNIQUE,
            password_hash      text NOT NULL,
            roles              text[] NOT NULL CHECK (cardinality(roles) > 0),
            email_verified     boolean NOT NULL DEFAULT false,
            created_at         timestamptz NOT NULL,
            updated_at         timestamptz NOT NULL,
            create_request_id  text UNIQUE,
            preferences        jsonb NOT NULL
        );
        CREATE INDEX users_by_creation ON users (created_at, user_id);
        CREATE TABLE sessions (
            session_id     uuid PRIMARY KEY,
            user_id        uuid NOT NULL REFERENCES users ON DELETE CASCADE,
            created_at     timestamptz NOT NULL,
            expires_at     timestamptz NOT NULL,
            revoked_at     timestamptz,
            revoke_reason  text
        );
        CREATE INDEX sessions_by_user ON sessions (user_id);
        CREATE TABLE refresh_tokens (
            token_hash  bytea PRIMARY KEY,
            session_id  uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
            user_id     uuid NOT NULL,
            issued_at   timestamptz NOT NULL,
            expires_at  timestamptz NOT NULL,
            used_at     timestamptz
        );
        CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
        CREATE TABLE throttle (
            key           text PRIMARY KEY,
            failures      integer NOT NULL,
            window_start  timestamptz NOT NULL,
            locked_until  timestamptz,
            lockouts      integer NOT NULL
        );
        CREATE TABLE verification_challenges (
            challenge_id  uuid PRIMARY KEY,
            user_id       uuid NOT NULL REFERENCES users ON DELETE CASCADE,
            channel       text NOT NULL,
            destination   text NOT NULL,
            code_hash     bytea NOT NULL,
            created_at    timestamptz NOT NULL,
            expires_at    timestamptz NOT NULL,
            attempts      integer NOT NULL DEFAULT 0,
            consumed_at   timestamptz
        );
        CREATE INDEX verification_by_user ON verification_challenges (user_id, channel, created_at DESC);
        -- Sends are kept apart from challenges (no cascade): deleting an account must not reset the
        -- daily budget of codes a destination may receive.
        CREATE TABLE code_sends (
            destination  text NOT NULL,
            sent_at      timestamptz NOT NULL
        );
        CREATE INDEX code_sends_by_destination ON code_sends (destination, sent_at);
        CREATE TABLE password_resets (
            token_hash  bytea PRIMARY KEY,
            user_id     uuid NOT NULL REFERENCES users ON DELETE CASCADE,
            created_at  timestamptz NOT NULL,
            expires_at  timestamptz NOT NULL,
            used_at     timestamptz
        );
        CREATE INDEX password_resets_by_user ON password_resets (user_id, created_at DESC);
        CREATE TABLE signing_keys (
            kid           text PRIMARY KEY,
            algorithm     text NOT NULL,
            private_key   bytea NOT NULL,
            public_jwk    jsonb NOT NULL,
            created_at    timestamptz NOT NULL,
            activates_at  timestamptz NOT NULL
        );
        """,
    ),
)


def _check_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name must match {_SCHEMA_NAME.pattern}, got {schema!r}")
    return schema


async def migrate(conn: asyncpg.Connection, schema: str, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Create ``schema`` if needed and apply the migrations it lacks, under an advisory lock.

    Replicas starting together serialize on the lock; each migration and its bookkeeping row commit
    together, so a failed migration leaves nothing half-applied.

    Returns:
        The versions applied now.
    """
    _check_schema(schema)
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('tastyplat-migrations:' || $1))", schema)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            "version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')}
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
            )
            applied_now.append(migration.version)
    return applied_now


_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A backend terminated while asyncpg was mid-protocol on that connection surfaces as this, not as a closed
    # connection; the pool replaces the connection, so the next call succeeds.
    asyncpg.InternalClientError,
)


class PostgresDatabase:
    """A connection pool on one schema, created by ``connect`` after migrating it."""

    def __init__(self, dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10,
                 acquire_timeout: float = 5.0) -> None:
        """Describe the database (nothing connects until ``connect``).

        Args:
            dsn: PostgreSQL DSN (a password in it is never logged by this class).
            schema: Schema holding the service's tables (``[a-z_][a-z0-9_]*``).
            min_size: Pool connections kept open.
            max_size: Pool connections at most.
            acquire_timeout: Seconds to wait for a pooled connection before answering UNAVAILABLE.
        """
        self._dsn = dsn
        self.schema = _check_schema(schema)
        self._min_size = min_size
        self._max_size = max_size
        self._acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return f"PostgresDatabase(schema={self.schema!r})"

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (after ``connect``)."""
        if self._pool is None:
            raise RuntimeError("database not connected")
        return self._pool

    async def connect(self) -> list[int]:
        """Run the migrations, then open the pool with ``search_path`` set to the schema.

        Returns:
            The migration versions applied now.
        """
        conn = await asyncpg.connect(self._dsn)
        try:
            applied = await migrate(conn, self.schema)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            server_settings={"search_path": self.schema, "application_name": f"tastyplat-user:{self.schema}"[:63]},
        )
        return applied

    def acquire(self, *, timeout: float | None = None) -> Any:
        """``pool.acquire`` (lets pool users such as the audit store share the database)."""
        return self.pool.acquire(timeout=timeout if timeout is not None else self._acquire_timeout)

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """Borrow a connection; connectivity failures surface as ``DatabaseUnavailable``."""
        try:
            async with self.pool.acquire(timeout=self._acquire_timeout) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable() from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """Borrow a connection inside a transaction."""
        async with self.connection() as conn, conn.transaction():
            yield conn


def _uuid(value: object) -> str:
    return str(value)


# Preferences are stored as one JSON document: they are always read and written whole.
def preferences_to_json(p: NotificationPreferences) -> str:
    """Serialize preferences for the ``users.preferences`` column."""

    def contact(c: Contact | None) -> dict[str, Any] | None:
        if c is None:
            return None
        return {"address": c.address, "verified_at": c.verified_at.isoformat() if c.verified_at else None}

    return json.dumps(
        {
            "phone": contact(p.phone),
            "email": contact(p.email),
            "push_devices": [
                {
                    "device_token": d.device_token,
                    "platform": d.platform.value,
                    "display_name": d.display_name,
                    "registered_at": d.registered_at.isoformat() if d.registered_at else None,
                }
                for d in p.push_devices
            ],
            "quiet_hours": {
                "enabled": p.quiet_hours.enabled,
                "time_zone": p.quiet_hours.time_zone,
                "start_minute": p.quiet_hours.start_minute,
                "end_minute": p.quiet_hours.end_minute,
                "allow_critical": p.quiet_hours.allow_critical,
            },
            "severity_channels": [[s.value, [c.value for c in cs]] for s, cs in p.severity_channels],
            "escalation_delay_seconds": p.escalation_delay.total_seconds(),
        }
    )


def preferences_from_json(text: str) -> NotificationPreferences:
    """Parse the ``users.preferences`` column."""
    doc = json.loads(text)

    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    def contact(value: dict[str, Any] | None) -> Contact | None:
        return None if value is None else Contact(value["address"], when(value["verified_at"]))

    quiet = doc["quiet_hours"]
    return NotificationPreferences(
        phone=contact(doc["phone"]),
        email=contact(doc["email"]),
        push_devices=tuple(
            PushDevice(d["device_token"], PushPlatform(d["platform"]), d["display_name"], when(d["registered_at"]))
            for d in doc["push_devices"]
        ),
        quiet_hours=QuietHours(
            quiet["enabled"], quiet["time_zone"], quiet["start_minute"], quiet["end_minute"], quiet["allow_critical"]
        ),
        severity_channels=tuple(
            (Severity(s), tuple(Channel(c) for c in cs)) for s, cs in doc["severity_channels"]
        ),
        escalation_delay=timedelta(seconds=doc["escalation_delay_seconds"]),
    )


_ROLE_ORDER = {r: i for i, r in enumerate(Role)}


def _user(row: asyncpg.Record) -> User:
    return User(
        user_id=_uuid(row["user_id"]),
        email=row["email"],
        password_hash=row["password_hash"],
        roles=frozenset(Role(r) for r in row["roles"]),
        email_verified=row["email_verified"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        create_request_id=row["create_request_id"],
    )


def _roles(roles: frozenset[Role]) -> list[str]:
    return [r.value for r in sorted(roles, key=_ROLE_ORDER.__getitem__)]


_USER_COLUMNS = "user_id, email, password_hash, roles, email_verified, created_at, updated_at, create_request_id"


class PostgresUserRepository:
    """``UserRepository`` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        """Use ``db``."""
        self._db = db

    async def add(self, user: User, preferences: NotificationPreferences) -> None:
        """Insert a user; ``EmailTaken`` on a duplicate address or idempotency key."""
        try:
            async with self._db.connection() as conn:
                await conn.execute(
                    f"INSERT INTO users ({_USER_COLUMNS}, preferences) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    user.user_id, user.email, user.password_hash, _roles(user.roles), user.email_verified,
                    user.created_at, user.updated_at, user.create_request_id, preferences_to_json(preferences),
                )
        except asyncpg.UniqueViolationError:
            raise EmailTaken() from None

    async def get(self, user_id: str) -> User | None:
        """The user, or None."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = $1", user_id)
        return None if row is None else _user(row)

    async def get_by_email(self, email: str) -> User | None:
        """The user with this login address, or None."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE email = $1", email)
        return None if row is None else _user(row)

    async def get_by_request_id(self, request_id: str) -> User | None:
        """The user created with this idempotency key, or None."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE create_request_id = $1", request_id)
        return None if row is None else _user(row)

    async def update(self, user: User) -> bool:
        """Update the mutable fields."""
        async with self._db.connection() as conn:
            status = await conn.execute(
                "UPDATE users SET password_hash = $2, roles = $3, email_verified = $4, updated_at = $5 "
                "WHERE user_id = $1",
                user.user_id, user.password_hash, _roles(user.roles), user.email_verified, user.updated_at,
            )
        return bool(status == "UPDATE 1")

    async def delete(self, user_id: str) -> bool:
        """Delete the user; the foreign keys cascade to everything of theirs."""
        async with self._db.connection() as conn:
            status = await conn.execute("DELETE FROM users WHERE user_id = $1", user_id)
        return bool(status == "DELETE 1")

    async def list_page(self, page: UserPageRequest) -> list[User]:
        """Keyset pagination on (created_at, user_id)."""
        conditions = []
        args: list[Any] = []
        if page.email_prefix:
            args.append(page.email_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            conditions.append(f"email LIKE ${len(args)}")
        if page.after is not None:
            args.extend([page.after.created_at, page.after.user_id])
            conditions.append(f"(created_at, user_id) > (${len(args) - 1}, ${len(args)}::uuid)")
        args.append(page.page_size + 1)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_USER_COLUMNS} FROM users {where} ORDER BY created_at, user_id LIMIT ${len(args)}", *args
            )
        return [_user(r) for r in rows]

    async def get_preferences(self, user_id: str) -> NotificationPreferences | None:
        """The user's preferences, or None."""
        async with self._db.connection() as conn:
            text = await conn.fetchval("SELECT preferences::text FROM users WHERE user_id = $1", user_id)
        return None if text is None else preferences_from_json(text)

    async def save_preferences(self, user_id: str, preferences: NotificationPreferences) -> bool:
        """Replace the preferences."""
        async with self._db.connection() as conn:
            status = await conn.execute(
                "UPDATE users SET preferences = $2::jsonb WHERE user_id = $1", user_id, preferences_to_json(preferences)
            )
        return bool(status == "UPDATE 1")


def _session(row: asyncpg.Record, prefix: str = "") -> Session:
    reason = row[f"{prefix}revoke_reason"]
    return Session(
        session_id=_uuid(row[f"{prefix}session_id"]),
        user_id=_uuid(row[f"{prefix}user_id"]),
        created_at=row[f"{prefix}created_at"],
        expires_at=row[f"{prefix}expires_at"],
        revoked_at=row[f"{prefix}revoked_at"],
        revoke_reason=RevokeReason(reason) if reason else None,
    )


class PostgresSessionRepository:
    """``SessionRepository`` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        """Use ``db``."""
        self._db = db

    async def open(self, session: Session, first: RefreshToken) -> None:
        """Insert a session and its first token in one transaction."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO sessions (session_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                session.session_id, session.user_id, session.created_at, session.expires_at,
            )
            await self._insert_token(conn, first)

    @staticmethod
    async def _insert_token(conn: asyncpg.Connection, token: RefreshToken) -> None:
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, user_id, issued_at, expires_at, used_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            token.token_hash, token.session_id, token.user_id, token.issued_at, token.expires_at, token.used_at,
        )

    async def find(self, token_hash: bytes) -> tuple[RefreshToken, Session] | None:
        """The token and its session."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT t.token_hash, t.session_id, t.user_id, t.issued_at, t.expires_at, t.used_at, "
                "s.created_at AS s_created_at, s.expires_at AS s_expires_at, s.revoked_at AS s_revoked_at, "
                "s.revoke_reason AS s_revoke_reason "
                "FROM refresh_tokens t JOIN sessions s USING (session_id) WHERE t.token_hash = $1",
                token_hash,
            )
        if row is None:
            return None
        token = RefreshToken(
            bytes(row["token_hash"]), _uuid(row["session_id"]), _uuid(row["user_id"]), row["issued_at"],
            row["expires_at"], row["used_at"],
        )
        reason = row["s_revoke_reason"]
        session = Session(
            token.session_id, token.user_id, row["s_created_at"], row["s_expires_at"], row["s_revoked_at"],
            RevokeReason(reason) if reason else None,
        )
        return token, session

    async def get_session(self, session_id: str) -> Session | None:
        """The session, or None."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT session_id, user_id, created_at, expires_at, revoked_at, revoke_reason FROM sessions "
                "WHERE session_id = $1",
                session_id,
            )
        return None if row is None else _session(row)

    async def rotate(self, used: RefreshToken, successor: RefreshToken, at: datetime) -> bool:
        """Compare-and-set ``used_at`` and insert the successor, atomically."""
        async with self._db.transaction() as conn:
            status = await conn.execute(
                "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
                used.token_hash, at,
            )
            if status != "UPDATE 1":
                return False
            await self._insert_token(conn, successor)
            return True

    async def revoke(self, session_id: str, at: datetime, reason: RevokeReason) -> bool:
        """Revoke (idempotent: the first revocation's time and reason stay)."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2), "
                "revoke_reason = COALESCE(revoke_reason, $3) "
                "WHERE session_id = $1 RETURNING session_id",
                session_id, at, reason.value,
            )
        return row is not None

    async def revoke_all(self, user_id: str, at: datetime, reason: RevokeReason) -> int:
        """Revoke every active session of the user."""
        async with self._db.connection() as conn:
            status = await conn.execute(
                "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 "
                "WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                user_id, at, reason.value,
            )
        return int(status.split()[-1])

    async def purge(self, before: datetime) -> int:
        """Delete sessions (and, by cascade, their tokens) that ended before ``before``."""
        async with self._db.connection() as conn:
            status = await conn.execute(
                "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1", before
            )
        return int(status.split()[-1])


class PostgresThrottleStore:
    """``ThrottleStore`` on PostgreSQL (row lock per key, so replicas count every failure)."""

    def __init__(self, db: PostgresDatabase) -> None:
        """Use ``db``."""
        self._db = db

    @staticmethod
    def _record(row: asyncpg.Record | None) -> FailureRecord | None:
        if row is None:
            return None
        return FailureRecord(row["failures"], row["window_start"], row["locked_until"], row["lockouts"])

    async def get(self, key: str) -> FailureRecord | None:
        """The record, or None."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT failures, window_start, locked_until, lockouts FROM throttle WHERE key = $1", key
            )
        return self._record(row)

    async def record_failure(self, key: str, policy: ThrottlePolicy, now: datetime) -> FailureRecord:
        """Lock the key's row, apply the policy, write back."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO throttle (key, failures, window_start, lockouts) VALUES ($1, 0, $2, 0) "
                "ON CONFLICT (key) DO NOTHING",
                key, now,
            )
            row = await conn.fetchrow(
                "SELECT failures, window_start, locked_until, lockouts FROM throttle WHERE key = $1 FOR UPDATE", key
            )
            current = self._record(row)
            if current is not None and current.failures == 0 and current.lockouts == 0 and current.locked_until is None:
                current = None  # the placeholder row just inserted
            record = policy.after_failure(current, now)
            await conn.execute(
                "UPDATE throttle SET failures = $2, window_start = $3, locked_until = $4, lockouts = $5 WHERE key = $1",
                key, record.failures, record.window_start, record.locked_until, record.lockouts,
            )
            return record

    async def clear(self, key: str) -> None:
        """Forget the key."""
        async with self._db.connection() as conn:
            await conn.execute("DELETE FROM throttle WHERE key = $1", key)


def _challenge(row: asyncpg.Record) -> VerificationChallenge:
    return VerificationChallenge(
        challenge_id=_uuid(row["challenge_id"]),
        user_id=_uuid(row["user_id"]),
        channel=ContactChannel(row["channel"]),
        destination=row["destination"],
        code_hash=bytes(row["code_hash"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        attempts=row["attempts"],
        consumed_at=row["consumed_at"],
    )


class PostgresVerificationRepository:
    """``VerificationRepository`` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        """Use ``db``."""
        self._db = db

    async def add(self, challenge: VerificationChallenge) -> None:
        """Insert a challenge and log the send."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO verification_challenges (challenge_id, user_id, channel, destination, code_hash, "
                "created_at, expires_at, attempts, consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                challenge.challenge_id, challenge.user_id, challenge.channel.value, challenge.destination,
                challenge.code_hash, challenge.created_at, challenge.expires_at, challenge.attempts,
                challenge.consumed_at,
            )
            await conn.execute(
                "INSERT INTO code_sends (destination, sent_at) VALUES ($1, $2)",
                challenge.destination, challenge.created_at,
            )

    async def latest(self, user_id: str, channel: ContactChannel) -> VerificationChallenge | None:
        """The newest challenge of the user and channel."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM verification_challenges WHERE user_id = $1 AND channel = $2 "
                "ORDER BY created_at DESC, challenge_id DESC LIMIT 1",
                user_id, channel.value,
            )
        return None if row is None else _challenge(row)

    async def save_attempt(self, before: VerificationChallenge, after: VerificationChallenge) -> bool:
        """Compare-and-set on attempts and consumption."""
        async with self._db.connection() as conn:
            status = await conn.execute(
                "UPDATE verification_challenges SET attempts = $4, consumed_at = $5 "
                "WHERE challenge_id = $1 AND attempts = $2 AND consumed_at IS NOT DISTINCT FROM $3",
                before.challenge_id, before.attempts, before.consumed_at, after.attempts, after.consumed_at,
            )
        return bool(status == "UPDATE 1")

    async def sends_since(self, destination: str, since: datetime) -> list[datetime]:
        """Send times to ``destination`` since ``since``."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT sent_at FROM code_sends WHERE destination = $1 AND sent_at >= $2 ORDER BY sent_at",
                destination, since,
            )
        return [r["sent_at"] for r in rows]


class PostgresResetTicketRepository:
    """``ResetTicketRepository`` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        """Use ``db``."""
        self._db = db

    @staticmethod
    def _ticket(row: asyncpg.Record | None) -> PasswordResetTicket | None:
        if row is None:
            return None
        return PasswordResetTicket(
            bytes(row["token_hash"]), _uuid(row["user_id"]), row["created_at"], row["expires_at"], row["used_at"]
        )

    async def add(self, ticket: PasswordResetTicket) -> None:
        """Insert a ticket."""
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at, used_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                ticket.token_hash, ticket.user_id, ticket.created_at, ticket.expires_at, ticket.used_at,
            )

    async def find(self, token_hash: bytes) -> PasswordResetTicket | None:
        """The ticket, or None."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow("SELECT * FROM password_resets WHERE token_hash = $1", token_hash)
        return self._ticket(row)

    async def latest_for_user(self, user_id: str) -> PasswordResetTicket | None:
        """The user's newest ticket."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM password_resets WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1", user_id
            )
        return self._ticket(row)

    async def consume(self, token_hash: bytes, at: datetime) -> bool:
        """Mark used if unused."""
        async with self._db.connection() as conn:
            status = await conn.execute(
                "UPDATE password_resets SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL", token_hash, at
            )
        return bool(status == "UPDATE 1")


class PostgresSigningKeyStore:
    """``SigningKeyStore`` on PostgreSQL; private keys are AES-256-GCM encrypted, bound to their kid."""

    def __init__(self, db: PostgresDatabase, keyring: SecretKeyring) -> None:
        """Use ``db``; encrypt private keys with ``keyring``."""
        self._db = db
        self._keyring = keyring

    async def list_keys(self) -> list[SigningKey]:
        """Every key, decrypted (a key version missing from the keyring fails loudly)."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT kid, algorithm, private_key, public_jwk::text AS jwk, created_at, activates_at "
                "FROM signing_keys"
            )
        return [
            SigningKey(
                kid=r["kid"],
                algorithm=SigningAlgorithm(r["algorithm"]),
                private_pem=self._keyring.decrypt(bytes(r["private_key"]), associated_data=_key_aad(r["kid"])),
                public_jwk=json.loads(r["jwk"]),
                created_at=r["created_at"],
                activates_at=r["activates_at"],
            )
            for r in rows
        ]

    async def add(self, key: SigningKey) -> None:
        """Insert a key, its private half encrypted."""
        sealed = self._keyring.encrypt(key.private_pem, associated_data=_key_aad(key.kid))
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, created_at, activates_at) "
                "VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
                key.kid, key.algorithm.value, sealed, json.dumps(dict(key.public_jwk)),
                key.created_at, key.activates_at,
            )

    async def delete(self, kids: Sequence[str]) -> None:
        """Delete keys."""
        async with self._db.connection() as conn:
            await conn.execute("DELETE FROM signing_keys WHERE kid = ANY($1::text[])", list(kids))


def _key_aad(kid: str) -> bytes:
    return f"tastyplat.user.signing_key:{kid}".encode()


class PostgresStorage:
    """All PostgreSQL repositories over one database."""

    def __init__(self, db: PostgresDatabase, keyring: SecretKeyring) -> None:
        """Create the repositories (connect ``db`` first)."""
        self.db = db
        self.users = PostgresUserRepository(db)
        self.sessions = PostgresSessionRepository(db)
        self.throttle = PostgresThrottleStore(db)
        self.verifications = PostgresVerificationRepository(db)
        self.resets = PostgresResetTicketRepository(db)
        self.keys = PostgresSigningKeyStore(db, keyring)
