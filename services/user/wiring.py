"""Composition root of the user service: adapters chosen from settings, wired into the app and the servicer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from tastyplat.user.v1 import user_service_pb2 as pb
from tastyplat.user.v1 import user_service_pb2_grpc as pb_grpc

from services.embedded.resources import EmbeddedResources
from services.platform.audit import AuditLog, AuditSigner, MemoryAuditStore, PostgresAuditStore
from services.platform.bus import MessageBus, RabbitMqBus
from services.platform.clock import Clock
from services.platform.crypto import SecretKeyring, generate_key
from services.platform.server import ServiceRegistration
from services.platform.settings import Secret
from services.user.adapters.events import BusCodeSender, BusUserEvents, RecordedUserEvents
from services.user.adapters.hashing import Argon2Hasher, Argon2Parameters
from services.user.adapters.jwt_tokens import JwtCodec, KeyPairFactory
from services.user.adapters.memory import MemoryStorage
from services.user.adapters.outbox import MemoryOutbox
from services.user.adapters.postgres import PostgresDatabase, PostgresStorage
from services.user.adapters.secrets import SystemSecrets
from services.user.api.servicer import UserServicer
from services.user.app import SigningKeys, UserApp, UserPolicy
from services.user.config import UserSettings
from services.user.domain.keys import KeyRotationPolicy, SigningAlgorithm
from services.user.domain.sessions import SessionPolicy
from services.user.ports import CodeSender, SecretSource, UserEvents

__all__ = ["SERVICE_NAME", "BusSlot", "UserComponents", "build", "embedded", "policy_from_settings", "registration"]

log = logging.getLogger("tastyplat.user")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["UserService"].full_name


def policy_from_settings(settings: UserSettings) -> UserPolicy:
    """The security policy the settings describe."""
    access_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
    return UserPolicy(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        sessions=SessionPolicy(
            access_token_ttl=access_ttl,
            refresh_token_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
            session_max_lifetime=timedelta(seconds=settings.session_max_lifetime_seconds),
        ),
        keys=KeyRotationPolicy(
            rotation_period=timedelta(days=settings.key_rotation_days),
            prepublish=timedelta(seconds=settings.key_prepublish_seconds),
            access_token_ttl=access_ttl,
        ),
    )


class BusSlot:
    """The bus codes and events go to, filled at start-up (RabbitMQ) or at once (the embedded bus)."""

    def __init__(self, bus: MessageBus | None = None) -> None:
        """Hold ``bus`` (None until connected)."""
        self.bus = bus

    def __call__(self) -> MessageBus:
        """The connected bus."""
        if self.bus is None:
            raise RuntimeError("the message bus is not connected")
        return self.bus


@dataclass
class UserComponents:
    """Everything the composition root built, for the lifecycle hooks and for tests.

    Attributes:
        settings: The settings.
        app: The use cases.
        servicer: The gRPC servicer.
        outbox: Where one-time codes go with outbox delivery (empty with bus delivery).
        events: User events with outbox delivery.
        audit: The audit log.
        database: The PostgreSQL database (None with memory storage).
        bus: The bus codes and events are published on (bus delivery).
    """

    settings: UserSettings
    app: UserApp
    servicer: UserServicer
    outbox: MemoryOutbox
    events: RecordedUserEvents
    audit: AuditLog
    database: PostgresDatabase | None
    bus: BusSlot
    _owns_bus: bool = False
    _maintenance: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect (database, bus), initialize the audit log, load keys, create the bootstrap admin, start upkeep.

        On failure whatever was opened is closed again before the error propagates.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        if s.code_delivery == "bus" and self.bus.bus is None:
            assert s.rabbitmq_url is not None  # checked by the settings
            self.bus.bus = await RabbitMqBus.connect(s.rabbitmq_url.reveal())
            self._owns_bus = True
        if self.database is not None:
            applied = await self.database.connect()
            log.info("user database ready", extra={"schema": self.database.schema, "migrations_applied": applied})
        await self.audit.start()
        await self.app.start()
        if s.bootstrap_admin_email is not None and s.bootstrap_admin_password is not None:
            await self.app.ensure_admin(email=s.bootstrap_admin_email, password=s.bootstrap_admin_password.reveal())
        self._maintenance = asyncio.create_task(self._maintain(), name="user-maintenance")

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.settings.maintenance_interval_seconds)
            try:
                await self.app.maintain()
            except Exception:
                log.exception("user maintenance failed; retrying next period")

    async def stop(self) -> None:
        """Stop upkeep and close the database."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        if self.database is not None:
            await self.database.close()
        if self._owns_bus and self.bus.bus is not None:
            await self.bus.bus.close()
            self.bus.bus = None
            self._owns_bus = False


def build(
    settings: UserSettings,
    *,
    clock: Clock,
    secrets: SecretSource | None = None,
    hasher: Argon2Hasher | None = None,
    bus: MessageBus | None = None,
) -> UserComponents:
    """Build the service from its settings (nothing connects until ``UserComponents.start``).

    Args:
        settings: The service settings.
        clock: The clock (``SystemClock`` in production, a fake in tests).
        secrets: Randomness (the OS CSPRNG unless a test passes another).
        hasher: Password hasher (argon2id with the settings' cost unless given).
        bus: An already connected bus (the embedded runner's); with bus delivery and none given, RabbitMQ is
            connected at start from ``USER_RABBITMQ_URL``.
    """
    database: PostgresDatabase | None = None
    storage: MemoryStorage | PostgresStorage
    audit_store: MemoryAuditStore | PostgresAuditStore
    if settings.storage == "postgres":
        assert settings.database_url is not None and settings.secret_keys is not None  # checked by the settings
        database = PostgresDatabase(settings.database_url.reveal(), settings.database_schema)
        storage = PostgresStorage(database, SecretKeyring.from_setting(settings.secret_keys.reveal()))
        audit_store = PostgresAuditStore(database)
    else:
        storage = MemoryStorage()
        audit_store = MemoryAuditStore()
    secrets = secrets or SystemSecrets()
    policy = policy_from_settings(settings)
    audit = AuditLog(audit_store, AuditSigner.from_seed(settings.audit_signing_key.reveal()), clock.now)
    outbox = MemoryOutbox()
    recorded = RecordedUserEvents()
    slot = BusSlot(bus)
    codes: CodeSender
    events: UserEvents
    if settings.code_delivery == "bus":
        codes, events = BusCodeSender(slot), BusUserEvents(slot)
    else:
        codes, events = outbox, recorded
    keys = SigningKeys(
        storage.keys, KeyPairFactory(SigningAlgorithm(settings.jwt_algorithm)), secrets, clock, policy.keys,
        policy.key_reload_interval,
    )
    app = UserApp(
        users=storage.users,
        sessions=storage.sessions,
        throttle=storage.throttle,
        verifications=storage.verifications,
        resets=storage.resets,
        keys=keys,
        codec=JwtCodec(),
        hasher=hasher or Argon2Hasher(
            Argon2Parameters(settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)
        ),
        secrets=secrets,
        clock=clock,
        codes=codes,
        events=events,
        audit=audit,
        policy=policy,
    )
    servicer = UserServicer(app, trusted_proxy_hops=settings.trusted_proxy_hops)
    return UserComponents(settings, app, servicer, outbox, recorded, audit, database, slot)


def registration(components: UserComponents) -> ServiceRegistration:
    """The ServiceRegistration of a built service (start connects, stop closes)."""
    return ServiceRegistration(
        add_to_server=pb_grpc.add_UserServiceServicer_to_server,
        servicer=components.servicer,
        service_name=SERVICE_NAME,
        start=components.start,
        stop=components.stop,
    )


_EMBEDDED_SCHEMA = "user_service"


async def _embedded_secrets(dsn: str) -> dict[str, str]:
    # Embedded mode is the one-command development platform: it has no secret store, so its keys are made on
    # first start and kept in the embedded database, next to what they protect. Distributed mode takes them
    # from settings (USER_SECRET_KEYS, USER_AUDIT_SIGNING_KEY) and never does this.
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('tastyplat-user-embedded-secrets'))")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{_EMBEDDED_SCHEMA}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{_EMBEDDED_SCHEMA}".embedded_secrets '
                "(name text PRIMARY KEY, value text NOT NULL)"
            )
            fresh = {"secret_keys": f"1:{generate_key()}", "audit_signing_key": AuditSigner.generate().seed_b64()}
            for name, value in fresh.items():
                await conn.execute(
                    f'INSERT INTO "{_EMBEDDED_SCHEMA}".embedded_secrets (name, value) VALUES ($1, $2) '
                    "ON CONFLICT (name) DO NOTHING",
                    name, value,
                )
            rows = await conn.fetch(f'SELECT name, value FROM "{_EMBEDDED_SCHEMA}".embedded_secrets')
    finally:
        await conn.close()
    return {r["name"]: r["value"] for r in rows}


async def embedded(resources: EmbeddedResources) -> ServiceRegistration:
    """The user service inside the embedded platform: its own schema of the embedded PostgreSQL 18.

    JWTs are verified against the service's own keys; the gateway sits on the same server, so a single hop of
    ``x-forwarded-for`` is trusted.
    """
    secrets = await _embedded_secrets(resources.postgres_dsn)
    settings = UserSettings.from_env(
        {},
        port=0,
        storage="postgres",
        database_url=Secret(resources.postgres_dsn),
        database_schema=_EMBEDDED_SCHEMA,
        secret_keys=Secret(secrets["secret_keys"]),
        audit_signing_key=Secret(secrets["audit_signing_key"]),
        trusted_proxy_hops=1,
        code_delivery="bus",
        bus_provided=True,
    )
    return registration(build(settings, clock=resources.clock, bus=resources.bus))
