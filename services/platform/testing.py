"""Helpers for service tests: a real platform server on 127.0.0.1 port 0 and a channel to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc.aio

from services.platform.peers import channel_options
from services.platform.server import Adapter, PlatformServer, ServiceRegistration, build_server
from services.platform.settings import ServerSettings

__all__ = ["client_channel", "local_settings", "running_server"]


def local_settings(**overrides: Any) -> ServerSettings:
    """Return server settings for tests: 127.0.0.1, a free port, no drain delay, 5 s grace."""
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "drain_seconds": 0.0, "grace_seconds": 5.0}
    values.update(overrides)
    return ServerSettings(**values)


@contextlib.asynccontextmanager
async def running_server(
    registrations: Sequence[ServiceRegistration],
    *,
    adapters: Sequence[Adapter] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    request_id_in_initial_metadata: bool = True,
    **settings: Any,
) -> AsyncIterator[PlatformServer]:
    """Build and start a server on a free loopback port; stop it (grace 0) on exit.

    Args:
        registrations: What to serve.
        adapters: Shared lifecycle hooks.
        interceptors: Extra server interceptors.
        request_id_in_initial_metadata: As for ``build_server``.
        **settings: ``ServerSettings`` fields overriding ``local_settings``.
    """
    server = build_server(
        registrations,
        local_settings(**settings),
        adapters=adapters,
        interceptors=interceptors,
        request_id_in_initial_metadata=request_id_in_initial_metadata,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


def client_channel(server: PlatformServer) -> grpc.aio.Channel:
    """Open a plain channel (no peer interceptor) to ``server`` with the platform's message limits."""
    return grpc.aio.insecure_channel(server.address, options=channel_options())

