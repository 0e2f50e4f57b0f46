"""Servicers for contracts whose behaviour a later issue delivers: every RPC answers UNIMPLEMENTED, naming it."""

from __future__ import annotations

from typing import Any

from services.platform.errors import NotImplementedYet


def pending_servicer(servicer_base: type, service_descriptor: Any, issue: int, subject: str) -> Any:
    """Build an instance of the generated ``servicer_base`` whose every RPC raises ``NotImplementedYet``.

    Args:
        servicer_base: The generated ``<Service>Servicer`` class.
        service_descriptor: The service's ``ServiceDescriptor`` (from the generated ``_pb2`` module).
        issue: Number of the issue that implements the service.
        subject: That issue's subject, sent to the client in the status message.

    Returns:
        A servicer to register with ``add_<Service>Servicer_to_server``; nothing in it pretends to work.
    """

    def make(method: Any) -> Any:
        if method.server_streaming:

            async def stream(self: Any, request: Any, context: Any) -> Any:
                raise NotImplementedYet(issue, subject)
                yield  # pragma: no cover - makes this an async generator, as grpc.aio expects for streams

            return stream

        async def unary(self: Any, request: Any, context: Any) -> Any:
            raise NotImplementedYet(issue, subject)

        return unary

    methods = {m.name: make(m) for m in service_descriptor.methods}
    cls = type(f"Pending{service_descriptor.name}", (servicer_base,), methods)
    return cls()
