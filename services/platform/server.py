"""Server bootstrap: one grpc.aio server from a list of servicer registrations, with health and reflection.

Theory of operation (health, as load balancers and Envoy see it)::

    built --start()--> NOT_SERVING --start hooks done--> SERVING --stop()/signal--> NOT_SERVING --> stopped
                           |                                         (drain hooks, drain delay,
                           +-- a start hook fails: stopped, error     server.stop(grace), stop hooks)

Every registered service and the overall ``""`` entry move together. The same bootstrap serves a single
service (``python -m services.<svc>``) and the embedded runner that puts all eight servicers on one server.
"""

from __future__ import annotations

import asyncio
import os
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.platform.interceptors import PlatformServerInterceptor
from services.platform.logging import configure_logging
from services.platform.settings import DEFAULT_MAX_MESSAGE_BYTES, ServerSettings

__all__ = [
    "HEALTH_SERVICE_NAME",
    "REFLECTION_SERVICE_NAME",
    "Adapter",
    "BindError",
    "Hook",
    "PlatformServer",
    "ServiceRegistration",
    "build_server",
    "run_until_signal",
    "serve",
    "server_options",
]

log = logging.getLogger("tastyplat.server")

HEALTH_SERVICE_NAME: str = health.SERVICE_NAME
REFLECTION_SERVICE_NAME: str = reflection.SERVICE_NAME

Hook = Callable[[], Awaitable[None]]

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceRegistration:
    """One servicer to put on the server.

    Attributes:
        add_to_server: The generated ``add_<Service>Servicer_to_server`` function.
        servicer: The servicer instance.
        service_name: Full service name, e.g. ``"tastyplat.calculator.v1.CalculatorService"``
            (the generated ``DESCRIPTOR.services_by_name[...].full_name``).
        start: Awaited after the server starts and before health says SERVING (connect adapters here).
        drain: Awaited when shutdown begins, before in-flight calls are given their grace (end streams).
        stop: Awaited after the server stopped (close adapters here).
        own_initial_metadata: Names of RPCs whose handlers send initial metadata themselves (e.g.
            ``("CreateReport",)``); the request id then travels in their trailers only.
    """

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: object
    service_name: str
    start: Hook | None = None
    drain: Hook | None = None
    stop: Hook | None = None
    own_initial_metadata: tuple[str, ...] = ()


@dataclass(frozen=True)
class Adapter:
    """Lifecycle hooks of something shared by several services (a database pool, the bus).

    Adapters start before the services' own start hooks and stop after their stop hooks.

    Attributes:
        name: For the logs.
        start: Awaited before any service's start hook.
        drain: Awaited when shutdown begins.
        stop: Awaited after every service's stop hook.
    """

    name: str
    start: Hook | None = None
    drain: Hook | None = None
    stop: Hook | None = None


class BindError(RuntimeError):
    """The server could not listen on the requested address."""


def server_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Return the channel arguments every platform server uses.

    Args:
        max_message_bytes: Largest message received or sent (gRPC's 4 MiB default is too small for batches).
    """
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Linux defaults to SO_REUSEPORT, which lets a second server bind a busy port and silently split
        # the traffic; a taken port must fail loudly instead.
        ("grpc.so_reuseport", 0),
        # Long-lived streams cross Envoy and Kubernetes: ping idle connections, and accept client pings
        # down to 10 s, with or without calls (peers.py pings every 30 s even on idle channels), instead of
        # answering them with GOAWAY too_many_pings.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
    ]


class PlatformServer:
    """A built, bound grpc.aio server with health, reflection and lifecycle hooks.

    Use ``async with build_server(...) as server`` or call ``start()`` and ``stop()``.

    Attributes:
        server: The underlying ``grpc.aio.Server``.
        health: The ``grpc.health.v1`` servicer (statuses for ``""`` and every service).
        port: The bound port (the real one when 0 was asked for).
        service_names: Full names of the registered services.
    """

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        *,
        host: str,
        port: int,
        registrations: Sequence[ServiceRegistration],
        adapters: Sequence[Adapter],
        grace_seconds: float,
        drain_seconds: float,
    ) -> None:
        """Wrap a bound server; use ``build_server`` rather than calling this."""
        self.server = server
        self.health = health_servicer
        self.host = host
        self.port = port
        self.service_names: tuple[str, ...] = tuple(r.service_name for r in registrations)
        self._registrations = tuple(registrations)
        self._adapters = tuple(adapters)
        self._grace_seconds = grace_seconds
        self._drain_seconds = drain_seconds
        self._started_hooks: list[tuple[str, Hook | None]] = []
        self._state = "built"
        self._stopping: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """Where a local client dials: ``127.0.0.1:<port>`` for a wildcard host, else ``host:port``."""
        host = self.host
        if host in ("0.0.0.0", "", "[::]", "::"):
            host = "127.0.0.1"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def state(self) -> str:
        """``built``, ``starting``, ``serving``, ``stopping`` or ``stopped``."""
        return self._state

    def _health_names(self) -> list[str]:
        return ["", *self.service_names]

    async def set_serving(self, service: str | None = None) -> None:
        """Report SERVING for ``service``, or for every service and ``""`` when None (ignored once stopping)."""
        for name in self._health_names() if service is None else [service]:
            await self.health.set(name, _SERVING)

    async def set_not_serving(self, service: str | None = None) -> None:
        """Report NOT_SERVING for ``service``, or for every service and ``""`` when None."""
        for name in self._health_names() if service is None else [service]:
            await self.health.set(name, _NOT_SERVING)

    async def start(self) -> None:
        """Start serving: NOT_SERVING until every start hook (adapters, then services) is done, then SERVING.

        Raises:
            Exception: Whatever a start hook raised, after the server was stopped and the hooks that had
                started were stopped again.
        """
        if self._state != "built":
            raise RuntimeError(f"cannot start a server that is {self._state}")
        self._state = "starting"
        await self.set_not_serving()
        await self.server.start()
        log.info("listening", extra={"address": self.address, "services": list(self.service_names)})
        hooks: list[tuple[str, Hook | None, Hook | None]] = [
            *((f"adapter {a.name}", a.start, a.stop) for a in self._adapters),
            *((r.service_name, r.start, r.stop) for r in self._registrations),
        ]
        for name, start_hook, stop_hook in hooks:
            try:
                if start_hook is not None:
                    await start_hook()
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    log.warning("start cancelled", extra={"component": name})
                else:
                    log.exception("start hook failed", extra={"component": name})
                await self.health.enter_graceful_shutdown()
                await self.server.stop(0)
                await self._run_stop_hooks()
                self._state = "stopped"
                raise
            self._started_hooks.append((name, stop_hook))
        self._state = "serving"
        await self.set_serving()
        log.info("serving", extra={"address": self.address})

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: NOT_SERVING, drain hooks, drain delay, ``server.stop(grace)``, stop hooks.

        Calls in flight get up to ``grace`` seconds to finish; new calls are refused. Safe to call twice
        (the second call waits for the first).

        Args:
            grace: Seconds in-flight calls may take; the settings' grace when None.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(self._grace_seconds if grace is None else grace))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> None:
        if self._state in ("built", "stopped"):
            self._state = "stopped"
            await self.server.stop(0)
            return
        self._state = "stopping"
        await self.health.enter_graceful_shutdown()
        log.info("shutting down", extra={"grace_seconds": grace, "drain_seconds": self._drain_seconds})
        drains = [(r.service_name, r.drain) for r in reversed(self._registrations)]
        drains += [(f"adapter {a.name}", a.drain) for a in reversed(self._adapters)]
        for name, drain_hook in drains:
            if drain_hook is not None:
                try:
                    await drain_hook()
                except Exception:
                    log.exception("drain hook failed", extra={"component": name})
        if self._drain_seconds > 0:
            # Health checkers (Envoy, kubelet) need a moment to see NOT_SERVING and stop sending calls.
            await asyncio.sleep(self._drain_seconds)
        await self.server.stop(grace)
        await self._run_stop_hooks()
        self._state = "stopped"
        log.info("stopped")

    async def _run_stop_hooks(self) -> None:
        while self._started_hooks:
            name, stop_hook = self._started_hooks.pop()
            if stop_hook is None:
                continue
            try:
                await stop_hook()
            except Exception:
                log.exception("stop hook failed", extra={"component": name})

    async def wait_for_termination(self) -> None:
        """Wait until the server has stopped."""
        await self.server.wait_for_termination()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def build_server(
    registrations: Sequence[ServiceRegistration],
    settings: ServerSettings,
    *,
    adapters: Sequence[Adapter] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    extra_options: Sequence[tuple[str, Any]] = (),
    request_id_in_initial_metadata: bool = True,
) -> PlatformServer:
    """Create, populate and bind a grpc.aio server (not started yet).

    The server gets the platform interceptor first (request id, access log, error mapping) then
    ``interceptors``; the message size limits of ``settings``; every registration; health (``""`` and
    each service, NOT_SERVING until ``start()`` finishes its hooks); and reflection listing every service,
    health and reflection.

    Args:
        registrations: The servicers to serve (one for a service's ``__main__``, eight for the embedded runner).
        settings: Listen address, grace, drain delay, message size limit.
        adapters: Shared lifecycle hooks (database pool, bus) started before the services' hooks.
        interceptors: More server interceptors, run inside the platform one.
        credentials: Serve TLS with these; plaintext when None.
        extra_options: More channel arguments (appended; a repeated key overrides).
        request_id_in_initial_metadata: Also return ``x-request-id`` in the initial metadata (the
            trailers always carry it); an extra batch per call, about 35 us of server CPU.

    Returns:
        The bound server; ``.port`` is the real port.

    Raises:
        BindError: The address cannot be bound (port taken, bad host).
        ValueError: Two registrations name the same service.
    """
    names = [r.service_name for r in registrations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"services registered twice: {duplicates}")
    server = grpc.aio.server(
        interceptors=[
            PlatformServerInterceptor(
                request_id_in_initial_metadata=request_id_in_initial_metadata,
                own_initial_metadata=frozenset(
                    f"/{r.service_name}/{rpc}" for r in registrations for rpc in r.own_initial_metadata
                ),
            ),
            *interceptors,
        ],
        options=[*server_options(settings.max_message_bytes), *extra_options],
    )
    for registration in registrations:
        registration.add_to_server(registration.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, HEALTH_SERVICE_NAME, REFLECTION_SERVICE_NAME], server)
    address = settings.listen_address
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise BindError(f"cannot listen on {address}: {exc}") from exc
    if port == 0:
        raise BindError(f"cannot listen on {address}")
    return PlatformServer(
        server,
        health_servicer,
        host=settings.host,
        port=port,
        registrations=registrations,
        adapters=adapters,
        grace_seconds=settings.grace_seconds,
        drain_seconds=settings.drain_seconds,
    )


async def run_until_signal(
    server: PlatformServer,
    *,
    on_ready: Callable[[PlatformServer], None] | None = None,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    grace: float | None = None,
) -> None:
    """Start ``server`` (unless started), serve until one of ``signals``, then stop it gracefully.

    Args:
        server: A built server.
        on_ready: Called once health is SERVING (``make run`` prints its ``READY`` line here).
        signals: Signals that begin shutdown; repeats during shutdown are logged and ignored.
        grace: Seconds in-flight calls may take; the settings' grace when None.
    """
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()

    def request_stop(sig: signal.Signals) -> None:
        if stop_requested.is_set():
            log.warning("already shutting down", extra={"signal": sig.name})
            return
        log.info("signal received, shutting down", extra={"signal": sig.name})
        stop_requested.set()

    for sig in signals:
        loop.add_signal_handler(sig, request_stop, sig)
    try:
        if server.state == "built":
            # A start hook may wait a long time for a backend; a signal meanwhile must still stop us.
            starting = asyncio.ensure_future(server.start())
            stopping = asyncio.ensure_future(stop_requested.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                await server.stop(grace)
                return
            starting.result()
        if on_ready is not None:
            on_ready(server)
        await stop_requested.wait()
        await server.stop(grace)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def serve(
    settings: ServerSettings,
    wire: Callable[[], Awaitable[Sequence[ServiceRegistration]]],
    *,
    adapters: Callable[[], Awaitable[Sequence[Adapter]]] | None = None,
    on_ready: Callable[[PlatformServer], None] | None = None,
    interceptors: Callable[[], Sequence[grpc.aio.ServerInterceptor]] | None = None,
) -> None:
    """Run a server until SIGTERM/SIGINT: the body of every ``python -m services.<svc>``.

    Configures JSON logging, then inside the event loop awaits ``wire()`` (build servicers and adapters
    there, since they may create loop-bound objects), builds, starts and serves.

    Args:
        settings: The service's server settings (from ``exit_on_settings_error`` in ``__main__``).
        wire: Async factory of the registrations.
        adapters: Async factory of shared adapters, if any.
        on_ready: Called once SERVING.

    Raises:
        SystemExit: With status 1 when wiring, binding or a start hook failed (the cause is logged).
    """
    configure_logging(settings.log_level)
    from services.platform import peers
    from services.platform.peer_auth import process_peer_auth

    peer_auth = process_peer_auth(os.environ)

    async def main() -> None:
        auth = peer_auth() if peer_auth is not None else None
        if auth is not None:
            # Every peer channel the wiring opens signs its calls with this process's key.
            peers.use_process_interceptors(auth.client_interceptors)
        registrations = await wire()
        shared = [*(await adapters() if adapters is not None else ())]
        extra = [*(interceptors() if interceptors is not None else ())]
        if auth is not None:
            shared.insert(0, auth.adapter)
            extra.insert(0, auth.server_interceptor)
        server = build_server(registrations, settings, adapters=shared, interceptors=extra)
        await run_until_signal(server, on_ready=on_ready)

    try:
        asyncio.run(main())
    except Exception:
        log.exception("start-up failed")
        raise SystemExit(1) from None
