"""Composition root of the delta monitor: concrete adapters for embedded and distributed mode."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass

from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as pb
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2_grpc as pb_grpc

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.embedded.resources import EmbeddedResources
from services.platform.identity import GrpcJwksSource, JwtAuthenticator
from services.deltamonitor.adapters.peers import GrpcBrokerClient
from services.deltamonitor.adapters.postgres_store import PostgresStore
from services.deltamonitor.adapters.pricing import make_pricer
from services.deltamonitor.adapters.ticks import TickConsumer
from services.deltamonitor.api.convert import decode_alert, encode_alert
from services.deltamonitor.api.servicer import DeltaMonitorServicer
from services.deltamonitor.app import AppSettings, DeltaMonitorApp
from services.deltamonitor.config import DeltaMonitorSettings
from services.deltamonitor.domain.partitions import PARTITION_COUNT
from services.deltamonitor.ports import Authenticator, MarketCalendar, MarketInputsSource, PositionSource, Pricer, Store
from services.platform import telemetry
from services.platform.bus import MessageBus
from services.platform.clock import Clock
from services.platform.peers import create_channel
from services.platform.server import ServiceRegistration
from services.platform.settings import Secret

__all__ = ["Assembly", "assemble", "distributed", "embedded"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DeltaMonitorService"].full_name


@dataclass
class Assembly:
    """The wired service: its registration plus the parts tests and benchmarks reach into."""

    registration: ServiceRegistration
    app: DeltaMonitorApp
    ticks: TickConsumer


def assemble(
    *,
    settings: AppSettings,
    store: Store,
    bus: MessageBus,
    clock: Clock,
    positions: PositionSource,
    inputs: MarketInputsSource | None,
    authenticator: Authenticator,
    pricer: Pricer,
    calendar: MarketCalendar,
    tick_patterns: tuple[str, ...],
    close: list[object] | None = None,
    gc_freeze: bool = False,
) -> Assembly:
    """Wire the application, the servicer and the tick consumer with their start/drain/stop hooks."""
    app = DeltaMonitorApp(
        store=store,
        positions=positions,
        inputs=inputs,
        pricer=pricer,
        calendar=calendar,
        bus=bus,
        encode=encode_alert,
        decode=decode_alert,
        clock=clock,
        settings=settings,
    )
    ticks = TickConsumer(bus, app.monitor, tick_patterns)
    closables = close or []

    async def start() -> None:
        await store.start()
        await app.start()
        await ticks.start()
        if gc_freeze:
            gc.collect()
            gc.freeze()
        stats = app.monitor.stats
        telemetry.expose("deltamonitor_ticks", "Quotes applied to the book", lambda: [({}, float(stats.ticks))],
                         kind="counter")
        telemetry.expose("deltamonitor_alert_streams", "Open StreamAlerts calls", lambda: [({}, app.hub.open_streams)])
        telemetry.expose("deltamonitor_partitions", "Account partitions this replica evaluates",
                         lambda: [({}, float(len(app.monitor.partitions or ()) if app.keeper else PARTITION_COUNT))])

    async def stop() -> None:
        await ticks.stop()
        await app.stop()
        await store.close()
        for item in closables:
            with contextlib.suppress(Exception):
                await item.close()  # type: ignore[attr-defined]

    registration = ServiceRegistration(
        add_to_server=pb_grpc.add_DeltaMonitorServiceServicer_to_server,
        servicer=DeltaMonitorServicer(app, authenticator),
        service_name=SERVICE_NAME,
        start=start,
        drain=app.drain,
        stop=stop,
    )
    return Assembly(registration, app, ticks)


def _from_settings(
    settings: DeltaMonitorSettings, *, store: Store, bus: MessageBus, clock: Clock, broker_target: str, user_target: str,
    peer_timeout: float,
) -> Assembly:
    broker_channel = create_channel(broker_target, default_timeout=peer_timeout)
    user_channel = broker_channel if user_target == broker_target else create_channel(user_target, default_timeout=peer_timeout)
    broker = GrpcBrokerClient(broker_channel)
    authenticator = JwtAuthenticator(
        GrpcJwksSource(user_channel, timeout=peer_timeout),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        clock=clock,
    )
    channels: list[object] = [broker_channel] if user_channel is broker_channel else [broker_channel, user_channel]
    return assemble(
        settings=settings.app_settings(),
        store=store,
        bus=bus,
        clock=clock,
        positions=broker,
        inputs=broker,
        authenticator=authenticator,
        pricer=make_pricer(settings.pricer, parallel_ticks=settings.parallel_ticks),
        calendar=ExchangeCalendar(settings.calendar, around=clock.now()),
        tick_patterns=settings.tick_patterns,
        close=channels,
        gc_freeze=settings.gc_freeze,
    )


async def embedded(resources: EmbeddedResources, environ: Mapping[str, str] | None = None) -> ServiceRegistration:
    """The delta monitor inside the embedded platform (embedded PostgreSQL, in-process bus, peers on one port).

    ``DELTAMONITOR_*`` variables still tune it (pricer, limits, topics); the backends come from ``resources``.
    """
    settings = DeltaMonitorSettings.from_env(
        os.environ if environ is None else environ,
        database_url=Secret(resources.postgres_dsn),
        rabbitmq_url=Secret("in-process"),
        broker_target=resources.grpc_target,
        user_target=resources.grpc_target,
        ownership="all",  # one process: it evaluates every watch
    )
    store = PostgresStore(resources.postgres_dsn, schema=settings.db_schema)
    return _from_settings(
        settings,
        store=store,
        bus=resources.bus,
        clock=resources.clock,
        broker_target=resources.grpc_target,
        user_target=resources.grpc_target,
        peer_timeout=resources.peer_timeout_seconds,
    ).registration


async def distributed(settings: DeltaMonitorSettings, clock: Clock) -> tuple[ServiceRegistration, MessageBus]:
    """The delta monitor alone: real PostgreSQL and RabbitMQ, peers by their targets."""
    from services.platform.bus import RabbitMqBus

    bus = await RabbitMqBus.connect(settings.rabbitmq_url.reveal())
    store = PostgresStore(settings.database_url.reveal(), schema=settings.db_schema)
    assembly = _from_settings(
        settings,
        store=store,
        bus=bus,
        clock=clock,
        broker_target=settings.broker_target,
        user_target=settings.user_target,
        peer_timeout=settings.peer_timeout_seconds,
    )
    return assembly.registration, bus
