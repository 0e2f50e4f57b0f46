"""Start every service as its own process on its port, then Envoy routing each proto package to its service.

Theory of operation::

    secrets (once) -> database (created if missing) -> service processes (all at once) -> each SERVING
        -> Envoy (config generated: one cluster per package) -> LIVE -> READY ... SIGTERM/SIGINT
        -> Envoy drains and exits -> every service gets SIGTERM (graceful stop) -> SIGKILL after its grace
        -> STOPPED

A service process that exits while the platform runs is reported (``EXITED`` on stdout) and left down: the
replica tests kill processes on purpose, and Envoy's health checks take a dead replica out of rotation.
Children get ``PR_SET_PDEATHSIG``, so a launcher killed with SIGKILL does not leave them behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import asyncpg
import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.certs import ensure_pki
from gateway.config import Endpoint, GatewaySettings, PackageUpstream, default_descriptor_set, write_config
from gateway.envoy import EnvoyProcess, validate
from services.distributed import secrets as dev_secrets
from services.distributed.topology import (
    DistributedSettings,
    Instance,
    Topology,
    build_topology,
    database_name,
    maintenance_url,
    service_environment,
)
from services.platform.catalogue import CATALOGUE
from services.platform.logging import configure_logging

__all__ = ["DistributedPlatform", "LaunchError", "ServiceProcess", "main", "run"]

log = logging.getLogger("tastyplat.distributed")


class LaunchError(RuntimeError):
    """A service or the gateway did not start; the message says which and why (its log's tail)."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: pathlib.Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


class ServiceProcess:
    """``python -m services.<svc>`` for one instance (through the telemetry runner), its log in ``logs/``."""

    def __init__(self, instance: Instance, environment: Mapping[str, str], log_path: pathlib.Path) -> None:
        self.instance = instance
        self.environment = dict(environment)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id once started."""
        return self.process.pid if self.process is not None else None

    def start(self, cwd: pathlib.Path) -> None:
        """Spawn the process (its own session: a terminal's Ctrl-C reaches only the launcher, which stops it)."""
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                # The runner installs tracing and metrics from the environment, then runs `-m services.<svc>`.
                [sys.executable, "-m", "services.platform.telemetry", f"services.{self.instance.service.name}"],
                cwd=cwd,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads hold locks at this point
            )

    def exited(self) -> int | None:
        """The exit status, or None while it runs."""
        return None if self.process is None else self.process.poll()

    async def wait_serving(self, deadline: float) -> None:
        """Wait until its health service reports SERVING for ``""``.

        Raises:
            LaunchError: It exited (a missing setting exits 2 naming it) or did not serve by ``deadline``.
        """
        loop = asyncio.get_running_loop()
        async with grpc.aio.insecure_channel(self.instance.address) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # an aio stub; the bundled stubs type it sync
            while True:
                status = self.exited()
                if status is not None:
                    raise LaunchError(
                        f"{self.instance.name} exited with status {status} during start-up; "
                        f"its log ({self.log_path}) ends with:\n{_tail(self.log_path)}"
                    )
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if loop.time() > deadline:
                    raise LaunchError(
                        f"{self.instance.name} did not report SERVING on {self.instance.address} in time; "
                        f"its log ({self.log_path}) ends with:\n{_tail(self.log_path)}"
                    )
                await asyncio.sleep(0.2)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` if it still runs."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for it to exit; its status, or None if it still runs."""
        if self.process is None:
            return None
        try:
            return await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            return None


class DistributedPlatform:
    """The running distributed platform: service processes and Envoy, started and stopped in order."""

    def __init__(self, settings: DistributedSettings, environ: Mapping[str, str], cwd: pathlib.Path) -> None:
        """Plan the run (nothing starts until ``start``)."""
        self.settings = settings
        self.environ = dict(environ)
        self.cwd = cwd
        self.run_dir = settings.run_path
        self.topology: Topology = build_topology(settings)
        self.processes: list[ServiceProcess] = []
        self.envoy: EnvoyProcess | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Secrets, database, services, Envoy; on any failure stop what had started and re-raise."""
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ready_timeout_seconds
        try:
            secrets = await asyncio.to_thread(
                dev_secrets.load_or_create, self.run_dir / "secrets.json", [e.name for e in CATALOGUE]
            )
            if self.settings.create_database:
                await ensure_database(self.settings.database_url)
            for instance in self.topology.instances:
                environment = service_environment(
                    instance, topology=self.topology, settings=self.settings, secrets=secrets, inherited=self.environ
                )
                process = ServiceProcess(instance, {**self.environ, **environment}, logs / f"{instance.name}.log")
                process.start(self.cwd)
                self.processes.append(process)
            self._write_process_table()
            await asyncio.gather(*(p.wait_serving(deadline) for p in self.processes))
            await self._start_envoy()
        except BaseException:
            await self.stop()
            raise
        self._watcher = asyncio.create_task(self._watch(), name="process-watcher")

    def gateway_settings(self) -> GatewaySettings:
        """The Envoy settings of this run: one upstream (all replicas) per started service's package."""
        pki = ensure_pki(self.run_dir / "certs")
        upstreams = []
        for service in CATALOGUE:
            instances = self.topology.of(service.name)
            if instances:
                endpoints = tuple(Endpoint(i.host, i.port) for i in instances)
                upstreams.append(PackageUpstream(f"tastyplat.{service.name}.v1", endpoints))
        issuer, audience = _jwt_issuer_and_audience(self.environ)
        default = "tastyplat.user.v1" if self.topology.of("user") else None
        return GatewaySettings(
            descriptor_set=default_descriptor_set(),
            listen_host=self.settings.gateway_host,
            http_port=self.topology.gateway_port,
            https_port=self.topology.gateway_https_port,
            admin_port=self.topology.gateway_admin_port,
            access_log_path=str(self.run_dir / "logs" / "envoy-access.log"),
            pki=pki,
            jwt_issuer=issuer if self.topology.of("user") else None,
            jwt_audience=audience,
            upstreams=tuple(upstreams),
            default_package=default,
        )

    async def _start_envoy(self) -> None:
        gateway = await asyncio.to_thread(self.gateway_settings)
        config = write_config(gateway, self.run_dir / "envoy.json")
        await asyncio.to_thread(validate, config)
        self.envoy = EnvoyProcess(config, gateway.admin_port, log_path=self.run_dir / "logs" / "envoy.log")
        await self.envoy.start()

    def _write_process_table(self) -> None:
        table = [
            {"name": p.instance.name, "service": p.instance.service.name, "index": p.instance.index,
             "address": p.instance.address, "pid": p.pid, "log": str(p.log_path),
             "metrics": f"{p.instance.host}:{p.instance.metrics_port}" if p.instance.metrics_port else None}
            for p in self.processes
        ]
        (self.run_dir / "processes.json").write_text(json.dumps(table, indent=2))

    async def _watch(self) -> None:
        reported: set[str] = set()
        while True:
            await asyncio.sleep(0.5)
            for process in self.processes:
                status = process.exited()
                if status is not None and process.instance.name not in reported:
                    reported.add(process.instance.name)
                    print(f"EXITED {process.instance.name} status={status} log={process.log_path}", flush=True)

    async def stop(self) -> None:
        """Drain Envoy, then SIGTERM every service (in parallel), SIGKILL whatever outlives its grace."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self.envoy is not None:
            await self.envoy.stop(drain_seconds=self.settings.drain_seconds)
            self.envoy = None
        for process in self.processes:
            process.signal(signal.SIGTERM)
        patience = self.settings.grace_seconds + self.settings.drain_seconds + 10.0
        results = await asyncio.gather(*(p.wait(patience) for p in self.processes))
        for process, status in zip(self.processes, results, strict=True):
            if status is None and process.exited() is None:
                log.warning("killing a service that did not stop", extra={"service": process.instance.name})
                process.signal(signal.SIGKILL)
                await process.wait(10.0)
        self.processes.clear()

    def ready_line(self) -> str:
        """The ``READY`` line: the gateway's addresses, then every service instance's."""
        t, s = self.topology, self.settings
        services = " ".join(f"{i.name}={i.address}" for i in t.instances)
        return (
            f"READY rest=http://{s.gateway_host}:{t.gateway_port} grpc={s.gateway_host}:{t.gateway_port} "
            f"mtls=https://localhost:{t.gateway_https_port} envoy-admin=http://127.0.0.1:{t.gateway_admin_port} "
            f"run-dir={self.run_dir} {services}"
        )


def _jwt_issuer_and_audience(environ: Mapping[str, str]) -> tuple[str, str]:
    from services.user.config import UserSettings

    fields = UserSettings.__dataclass_fields__
    issuer = environ.get("USER_JWT_ISSUER", str(fields["jwt_issuer"].default))
    audience = environ.get("USER_JWT_AUDIENCE", str(fields["jwt_audience"].default))
    return issuer, audience


async def ensure_database(database_url: str) -> None:
    """Create the database ``database_url`` names if the server does not have it yet.

    Raises:
        LaunchError: PostgreSQL cannot be reached (``make backends`` starts it).
    """
    name = database_name(database_url)
    try:
        connection = await asyncpg.connect(maintenance_url(database_url), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise LaunchError(f"cannot reach PostgreSQL for {name!r}: {exc}; is it running (make backends)?") from exc
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            escaped = name.replace('"', '""')
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await connection.execute(f'CREATE DATABASE "{escaped}"')
            log.info("created database", extra={"database": name})
    finally:
        await connection.close()


async def run(settings: DistributedSettings, environ: Mapping[str, str], cwd: pathlib.Path) -> int:
    """Start the platform, print READY, serve until SIGTERM/SIGINT, stop everything; the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    platform = DistributedPlatform(settings, environ, cwd)
    starting = asyncio.create_task(platform.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()  # start() stops what it had started before re-raising
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starting
        print("STOPPED", flush=True)
        return 1
    stopping.cancel()
    try:
        starting.result()
    except Exception as exc:  # noqa: BLE001 - whatever stopped start-up is reported, everything was stopped
        log.debug("start-up failed", exc_info=True)
        print(f"start-up failed: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        print(platform.ready_line(), flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        await platform.stop()
    print("STOPPED", flush=True)
    return 0


def main(environ: Mapping[str, str]) -> None:
    """Entry point of ``python -m services.distributed`` (``make run-distributed``)."""
    from services.platform.settings import SettingsError, exit_on_settings_error

    settings = exit_on_settings_error(DistributedSettings, environ)
    try:
        build_topology(settings)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    _die_with_parent()
    cwd = pathlib.Path(__file__).resolve().parents[2]
    raise SystemExit(asyncio.run(run(settings, environ, cwd)))
