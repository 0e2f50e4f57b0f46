"""Composition root of the broker service: adapters chosen from settings, wired into the app and the servicer.

Used by ``python -m services.broker`` (``build`` + ``registration``) and by the embedded runner
(``embedded``). Health: besides the service's own entry, each Tastytrade environment gets a health entry
``tastyplat.broker.v1.BrokerService.tastytrade.<environment>`` that reads NOT_SERVING while its circuit
breaker is open, once ``BrokerComponents.attach_health`` has been given the server's health servicer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
from grpc_health.v1 import health_pb2

from services.broker.adapters.identity import GrpcJwksSource, JwtIdentityVerifier
from services.broker.adapters.memory import InMemoryLinkRepository
from services.broker.adapters.paper import PaperConnector, ReferenceMarks
from services.broker.adapters.postgres import PostgresDatabase, PostgresLinkRepository
from services.broker.adapters.price_feed import BusPriceFollower
from services.broker.adapters.secrets import KeyringSecretBox
from services.broker.adapters.tastytrade.connector import TastytradeConnector, TastytradeSettings
from services.broker.adapters.tastytrade.http import RetryPolicy
from services.broker.api.servicer import SERVICE_NAME, BrokerServicer
from services.broker.app import BrokerApp
from services.broker.config import BrokerSettings
from services.broker.domain.model import Environment
from services.broker.domain.paper import DEMO_UNDERLYINGS
from services.broker.ports import BrokerConnector, IdentityVerifier, LinkRepository
from services.embedded.resources import EmbeddedResources
from services.platform import telemetry
from services.platform.bus import MessageBus
from services.platform.clock import Clock
from services.platform.crypto import SecretKeyring, generate_key
from services.platform.peers import create_channel
from services.platform.server import ServiceRegistration
from services.platform.settings import Secret
from tastyplat.broker.v1 import broker_service_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAME", "BrokerComponents", "build", "embedded", "registration", "tastytrade_settings"]

log = logging.getLogger("tastyplat.broker")

HEALTH_POLL_SECONDS = 1.0


def tastytrade_settings(settings: BrokerSettings, environment: Environment) -> TastytradeSettings:
    """The connector settings of one Tastytrade environment."""
    assert settings.tastytrade_client_secret is not None  # checked by BrokerSettings
    return TastytradeSettings(
        environment=environment,
        client_secret=settings.tastytrade_client_secret.reveal(),
        client_id=settings.tastytrade_client_id,
        base_url=settings.tastytrade_production_url
        if environment is Environment.PRODUCTION
        else settings.tastytrade_sandbox_url,
        user_agent=settings.tastytrade_user_agent,
        timeout=settings.tastytrade_timeout_seconds,
        retry=RetryPolicy(
            max_attempts=settings.tastytrade_max_attempts,
            initial_backoff=settings.tastytrade_initial_backoff_seconds,
            max_backoff=settings.tastytrade_max_backoff_seconds,
            jitter=settings.tastytrade_initial_backoff_seconds,
        ),
        failure_threshold=settings.tastytrade_breaker_failures,
        reset_timeout=settings.tastytrade_breaker_reset_seconds,
        budget_rate=settings.tastytrade_requests_per_second,
        budget_burst=settings.tastytrade_burst,
        budget_max_wait=settings.tastytrade_budget_wait_seconds,
        rate_limit_penalty=settings.tastytrade_rate_limit_pause_seconds,
    )


@dataclass
class BrokerComponents:
    """Everything the composition root built, for the lifecycle hooks and for tests.

    Attributes:
        settings: The settings.
        app: The use cases.
        servicer: The gRPC servicer.
        marks: The paper broker's mark source (a price feed may move it), None without paper.
        connectors: The connectors by environment.
        follower: Moves the paper marks with the market data service's quotes (when a bus is given).
    """

    settings: BrokerSettings
    app: BrokerApp
    servicer: BrokerServicer
    marks: ReferenceMarks | None
    connectors: dict[Environment, BrokerConnector]
    follower: BusPriceFollower | None = None
    _connect: Any = None
    _close: list[Any] = field(default_factory=list)
    _health: Any = None
    _monitor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect the store (migrating it), then start reporting breaker state to health."""
        if self._connect is not None:
            await self._connect()
        if self.follower is not None:
            await self.follower.start()
        self._monitor = asyncio.create_task(self._watch_breakers(), name="broker-breaker-health")
        app = self.app
        telemetry.expose(
            "broker_circuit_state",
            "Circuit breaker of each broker host: 1 for its current state (closed, open, half_open)",
            lambda: [
                ({"environment": snap.environment.value, "state": state}, 1.0 if snap.state == state else 0.0)
                for snap in app.health()
                for state in ("closed", "open", "half_open")
            ],
        )

    async def stop(self) -> None:
        """Stop reporting, close the connectors and the store."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        if self.follower is not None:
            await self.follower.stop()
        await self.app.aclose()
        for close in reversed(self._close):
            await close()

    def attach_health(self, health_servicer: Any) -> None:
        """Report each Tastytrade environment's breaker under its own health entry."""
        self._health = health_servicer

    def health_names(self) -> dict[Environment, str]:
        """The health entry of each Tastytrade environment."""
        return {
            env: f"{SERVICE_NAME}.tastytrade.{env.value}"
            for env in self.connectors
            if env in (Environment.PRODUCTION, Environment.SANDBOX)
        }

    async def _watch_breakers(self) -> None:
        states: dict[Environment, str] = {}
        names = self.health_names()
        while True:
            for snapshot in self.app.health():
                name = names.get(snapshot.environment)
                if name is None or states.get(snapshot.environment) == snapshot.state:
                    continue
                states[snapshot.environment] = snapshot.state
                level = logging.WARNING if snapshot.state == "open" else logging.INFO
                log.log(level, "tastytrade circuit %s", snapshot.state, extra={"environment": snapshot.environment.value})
                if self._health is not None:
                    status = (
                        health_pb2.HealthCheckResponse.NOT_SERVING
                        if snapshot.state == "open"
                        else health_pb2.HealthCheckResponse.SERVING
                    )
                    await self._health.set(name, status)
            await asyncio.sleep(HEALTH_POLL_SECONDS)


def build(
    settings: BrokerSettings,
    *,
    clock: Clock,
    verifier: IdentityVerifier | None = None,
    repository: LinkRepository | None = None,
    bus: MessageBus | None = None,
) -> BrokerComponents:
    """Build the service from its settings (nothing connects until ``BrokerComponents.start``).

    Args:
        settings: The service settings.
        clock: The clock.
        verifier: Caller identity; by default access tokens checked against the user service's JWKS.
        repository: A link store to use instead of the one the settings name (tests).
        bus: The platform bus; with the paper broker, its marks follow the market data quotes on it.
    """
    close: list[Any] = []
    connect = None
    if repository is None and settings.storage == "postgres":
        assert settings.database_url is not None  # checked by BrokerSettings
        database = PostgresDatabase(settings.database_url.reveal(), settings.database_schema)
        repository = PostgresLinkRepository(database)
        connect = database.connect
        close.append(database.close)
    elif repository is None:
        repository = InMemoryLinkRepository()
    connectors: dict[Environment, BrokerConnector] = {}
    marks: ReferenceMarks | None = None
    for name in settings.environments:
        environment = Environment(name)
        if environment is Environment.PAPER:
            rate = Decimal(settings.paper_risk_free_rate)
            marks = ReferenceMarks(clock, rate=rate)
            connectors[environment] = PaperConnector(clock=clock, marks=marks, risk_free_rate=rate)
        else:
            connectors[environment] = TastytradeConnector(
                tastytrade_settings(settings, environment), monotonic=clock.monotonic, sleep=clock.sleep
            )
    if verifier is None:
        channel = create_channel(settings.user_service_target, default_timeout=settings.peer_timeout_seconds)
        close.append(channel.close)
        verifier = JwtIdentityVerifier(
            GrpcJwksSource(channel, timeout=settings.peer_timeout_seconds),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            clock=clock,
        )
    app = BrokerApp(
        connectors=connectors,
        links=repository,
        secrets=KeyringSecretBox(SecretKeyring.from_setting(settings.secret_keys.reveal())),
        clock=clock,
        stale_after=settings.stale_after_seconds,
        history_ttl=settings.history_ttl_seconds,
        auto_link_paper=settings.auto_link_paper,
    )
    servicer = BrokerServicer(app, verifier)
    follower = BusPriceFollower(bus, marks, DEMO_UNDERLYINGS) if bus is not None and marks is not None else None
    return BrokerComponents(settings, app, servicer, marks, connectors, follower, _connect=connect, _close=close)


def registration(components: BrokerComponents) -> ServiceRegistration:
    """The ServiceRegistration of a built service (start connects, stop closes)."""
    return ServiceRegistration(
        add_to_server=pb_grpc.add_BrokerServiceServicer_to_server,
        servicer=components.servicer,
        service_name=SERVICE_NAME,
        start=components.start,
        stop=components.stop,
    )


_EMBEDDED_SCHEMA = "broker_service"


async def _embedded_secret_keys(dsn: str) -> str:
    # The one-command development platform has no secret store: its sealing key is made on first start and
    # kept in the embedded database (as the user service does). Distributed mode takes BROKER_SECRET_KEYS.
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('tastyplat-broker-embedded-secrets'))")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{_EMBEDDED_SCHEMA}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{_EMBEDDED_SCHEMA}".embedded_secrets '
                "(name text PRIMARY KEY, value text NOT NULL)"
            )
            await conn.execute(
                f'INSERT INTO "{_EMBEDDED_SCHEMA}".embedded_secrets (name, value) VALUES ($1, $2) '
                "ON CONFLICT (name) DO NOTHING",
                "secret_keys",
                f"1:{generate_key()}",
            )
            value = await conn.fetchval(
                f'SELECT value FROM "{_EMBEDDED_SCHEMA}".embedded_secrets WHERE name = $1', "secret_keys"
            )
    finally:
        await conn.close()
    return str(value)


async def embedded(resources: EmbeddedResources) -> ServiceRegistration:
    """The broker inside the embedded platform: the paper broker (a demo account given to every user on first
    use, marks following the simulator's quotes on the bus), links in its own schema of the embedded
    PostgreSQL, identity from the user service on the same server.
    """
    settings = BrokerSettings.from_env(
        {},
        port=0,
        storage="postgres",
        database_url=Secret(resources.postgres_dsn),
        database_schema=_EMBEDDED_SCHEMA,
        secret_keys=Secret(await _embedded_secret_keys(resources.postgres_dsn)),
        environments=("paper",),
        auto_link_paper=True,
        user_service_target=resources.grpc_target,
        peer_timeout_seconds=resources.peer_timeout_seconds,
    )
    return registration(build(settings, clock=resources.clock, bus=resources.bus))

