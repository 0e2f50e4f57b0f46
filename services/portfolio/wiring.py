"""Composition root of the portfolio service: concrete adapters for embedded and distributed mode."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from tastyplat.portfolio.v1 import portfolio_service_pb2 as pb
from tastyplat.portfolio.v1 import portfolio_service_pb2_grpc as pb_grpc

from services.platform.bus import MessageBus
from services.platform.clock import Clock
from services.platform.peers import create_channel
from services.platform.server import ServiceRegistration
from services.platform.settings import Secret
from services.platform.identity import GrpcJwksSource, JwtAuthenticator
from services.portfolio.adapters.peers import GrpcBroker, GrpcMarketData
from services.portfolio.adapters.postgres_store import PostgresStore
from services.portfolio.api.convert import encode_alert
from services.portfolio.api.servicer import PortfolioServicer
from services.portfolio.app import AppSettings, PortfolioApp
from services.portfolio.config import PortfolioSettings
from services.portfolio.ports import Authenticator, BrokerPort, MarketDataPort, Store

__all__ = ["SERVICE_NAME", "Assembly", "assemble", "distributed", "embedded"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PortfolioService"].full_name


@dataclass
class Assembly:
    """The wired service: its registration and its application (for tests and benchmarks)."""

    registration: ServiceRegistration
    app: PortfolioApp


def assemble(
    *,
    broker: BrokerPort,
    market_data: MarketDataPort,
    store: Store,
    bus: MessageBus,
    clock: Clock,
    authenticator: Authenticator,
    settings: AppSettings | None = None,
    close: list[object] | None = None,
) -> Assembly:
    """Wire the application and the servicer with their start/stop hooks."""
    app = PortfolioApp(
        broker=broker, market_data=market_data, store=store, bus=bus, encode_alert=encode_alert, clock=clock,
        settings=settings,
    )
    closables = close or []

    async def start() -> None:
        await store.start()
        await app.start()

    async def stop() -> None:
        await app.stop()
        await store.close()
        for item in closables:
            with contextlib.suppress(Exception):
                await item.close()  # type: ignore[attr-defined]

    registration = ServiceRegistration(
        add_to_server=pb_grpc.add_PortfolioServiceServicer_to_server,
        servicer=PortfolioServicer(app, authenticator),
        service_name=SERVICE_NAME,
        start=start,
        stop=stop,
    )
    return Assembly(registration, app)


def _from_settings(
    settings: PortfolioSettings, *, store: Store, bus: MessageBus, clock: Clock, peer_timeout: float
) -> Assembly:
    targets = {settings.broker_target, settings.marketdata_target, settings.user_target}
    channels = {t: create_channel(t, default_timeout=peer_timeout) for t in targets}
    authenticator = JwtAuthenticator(
        GrpcJwksSource(channels[settings.user_target], timeout=peer_timeout),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        clock=clock,
    )
    return assemble(
        broker=GrpcBroker(channels[settings.broker_target]),
        market_data=GrpcMarketData(channels[settings.marketdata_target]),
        store=store,
        bus=bus,
        clock=clock,
        authenticator=authenticator,
        settings=settings.app_settings(),
        close=list(channels.values()),
    )


async def embedded(resources: object, environ: Mapping[str, str] | None = None) -> ServiceRegistration:
    """The portfolio service inside the embedded platform (embedded PostgreSQL, in-process bus, peers on one port)."""
    from services.embedded.resources import EmbeddedResources

    assert isinstance(resources, EmbeddedResources)
    settings = PortfolioSettings.from_env(
        os.environ if environ is None else environ,
        database_url=Secret(resources.postgres_dsn),
        rabbitmq_url=Secret("in-process"),
        broker_target=resources.grpc_target,
        marketdata_target=resources.grpc_target,
        user_target=resources.grpc_target,
    )
    store = PostgresStore(resources.postgres_dsn, schema=settings.db_schema)
    return _from_settings(
        settings, store=store, bus=resources.bus, clock=resources.clock, peer_timeout=resources.peer_timeout_seconds
    ).registration


async def distributed(settings: PortfolioSettings, clock: Clock) -> tuple[ServiceRegistration, MessageBus]:
    """The portfolio service alone: real PostgreSQL and RabbitMQ, peers by their targets."""
    from services.platform.bus import RabbitMqBus

    bus = await RabbitMqBus.connect(settings.rabbitmq_url.reveal())
    store = PostgresStore(settings.database_url.reveal(), schema=settings.db_schema)
    return _from_settings(settings, store=store, bus=bus, clock=clock, peer_timeout=settings.peer_timeout_seconds).registration, bus
