"""Composition root of the reporting service: concrete adapters for embedded and distributed mode."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from tastyplat.reporting.v1 import reporting_service_pb2 as pb
from tastyplat.reporting.v1 import reporting_service_pb2_grpc as pb_grpc

from services.platform.clock import Clock
from services.platform.peers import create_channel
from services.platform.server import ServiceRegistration
from services.reporting.adapters.archive import FileArchive
from services.platform.identity import GrpcJwksSource, JwtAuthenticator
from services.reporting.adapters.peers import GrpcBroker, GrpcDeltaMonitor, GrpcPortfolio
from services.reporting.adapters.writers import TableWriter
from services.reporting.api.convert import encode_metadata
from services.reporting.api.servicer import ReportingServicer
from services.reporting.app import ReportingApp, ReportingSettings
from services.reporting.config import ReportingServiceSettings
from services.reporting.ports import AlertsPort, Authenticator, BrokerPort, PortfolioPort, ReportArchive

__all__ = ["SERVICE_NAME", "Assembly", "assemble", "distributed", "embedded"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ReportingService"].full_name
_SWEEP_SECONDS = 300.0


@dataclass
class Assembly:
    """The wired service: its registration and its application (for tests and benchmarks)."""

    registration: ServiceRegistration
    app: ReportingApp


def assemble(
    *,
    portfolio: PortfolioPort,
    broker: BrokerPort,
    alerts: AlertsPort,
    archive: ReportArchive,
    clock: Clock,
    authenticator: Authenticator,
    settings: ReportingSettings | None = None,
    close: list[object] | None = None,
) -> Assembly:
    """Wire the application and the servicer with their start/stop hooks (a sweeper deletes expired reports)."""
    app = ReportingApp(
        portfolio=portfolio, broker=broker, alerts=alerts, archive=archive, writer=TableWriter(), clock=clock,
        encode_metadata=encode_metadata, settings=settings,
    )
    closables = close or []
    tasks: list[asyncio.Task[None]] = []

    async def sweeper() -> None:
        while True:
            with contextlib.suppress(OSError):
                await app.sweep()
            await clock.sleep(_SWEEP_SECONDS)

    async def start() -> None:
        tasks.append(asyncio.create_task(sweeper(), name="reporting-sweeper"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for item in closables:
            with contextlib.suppress(Exception):
                await item.close()  # type: ignore[attr-defined]

    registration = ServiceRegistration(
        add_to_server=pb_grpc.add_ReportingServiceServicer_to_server,
        servicer=ReportingServicer(app, authenticator),
        service_name=SERVICE_NAME,
        start=start,
        own_initial_metadata=("CreateReport",),
        stop=stop,
    )
    return Assembly(registration, app)


def _from_settings(settings: ReportingServiceSettings, *, clock: Clock, peer_timeout: float) -> Assembly:
    targets = {settings.portfolio_target, settings.broker_target, settings.deltamonitor_target, settings.user_target}
    # Reports wait on whole transaction histories and scenario grids: unary peer calls get a minute.
    channels = {t: create_channel(t, default_timeout=max(peer_timeout, 60.0)) for t in targets}
    authenticator = JwtAuthenticator(
        GrpcJwksSource(channels[settings.user_target], timeout=peer_timeout),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        clock=clock,
    )
    return assemble(
        portfolio=GrpcPortfolio(channels[settings.portfolio_target]),
        broker=GrpcBroker(channels[settings.broker_target]),
        alerts=GrpcDeltaMonitor(channels[settings.deltamonitor_target]),
        archive=FileArchive(settings.archive_dir or None, ttl_seconds=settings.archive_ttl_seconds),
        clock=clock,
        authenticator=authenticator,
        settings=settings.app_settings(),
        close=list(channels.values()),
    )


async def embedded(resources: object, environ: Mapping[str, str] | None = None) -> ServiceRegistration:
    """The reporting service inside the embedded platform (peers on the same port)."""
    from services.embedded.resources import EmbeddedResources

    assert isinstance(resources, EmbeddedResources)
    settings = ReportingServiceSettings.from_env(
        os.environ if environ is None else environ,
        portfolio_target=resources.grpc_target,
        broker_target=resources.grpc_target,
        deltamonitor_target=resources.grpc_target,
        user_target=resources.grpc_target,
    )
    return _from_settings(settings, clock=resources.clock, peer_timeout=resources.peer_timeout_seconds).registration


async def distributed(settings: ReportingServiceSettings, clock: Clock) -> ServiceRegistration:
    """The reporting service alone, peers by their targets."""
    return _from_settings(settings, clock=clock, peer_timeout=settings.peer_timeout_seconds).registration
