"""Server interceptor: request id, access log and domain-error mapping around every handler kind.

Theory of operation: a ``grpc.aio`` server interceptor only sees the ``RpcMethodHandler`` the next layer
returns, not the call itself, so the work is done by wrapping the handler's behaviour in a per-call scope
(an async context manager) and rebuilding the handler with the same (de)serializers. Entering the scope
fixes the request id, stores it in the call context and sends it in the initial metadata; leaving it logs
one access line and, when the behaviour raised, ends the call with the mapped ``google.rpc.Status``.
Streaming behaviours come in two shapes, async generators and coroutines that ``await context.write``;
the wrapper keeps the shape because grpc.aio picks its calling convention from it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Protocol

import grpc
import grpc.aio

from services.platform.context import new_request_id, sanitize_request_id, set_call_context
from services.platform.error_mapping import REQUEST_ID_METADATA_KEY, abort_with_error, status_code_for

__all__ = ["CallScope", "PlatformServerInterceptor", "ScopeFactory", "wrap_handler"]

access_log = logging.getLogger("tastyplat.access")
error_log = logging.getLogger("tastyplat.errors")

Context = grpc.aio.ServicerContext[Any, Any]

# Probes and tooling call these all the time; their access lines go to DEBUG so they do not drown the log.
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Codes that mean this server (not the caller) is in trouble.
_ERROR_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})
_WARNING_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class ScopeFactory(Protocol):
    """Makes the async context manager a wrapped behaviour runs inside, once per call."""

    def __call__(self, context: Context) -> CallScopeLike:
        """Return the scope for the call whose context is ``context``."""
        ...


class CallScopeLike(Protocol):
    """What ``wrap_handler`` needs from a scope: an async context manager that may replace the exception."""

    async def __aenter__(self) -> Any:
        """Enter before the behaviour runs."""
        ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        """Leave after it ended (``exc`` set when it raised)."""
        ...


def _metadata_value(metadata: Iterable[tuple[str, str | bytes]] | None, key: str) -> str | bytes | None:
    for k, v in metadata or ():
        if k == key:
            return v
    return None


class CallScope:
    """The platform's per-call scope: request id in, access log and error mapping out."""

    def __init__(self, method: str, context: Context, *, initial_metadata: bool = True) -> None:
        """Bind the scope to one call.

        Args:
            method: Full method name.
            context: The call's servicer context (its invocation metadata carries ``x-request-id``).
            initial_metadata: Also send the request id in the initial metadata (costs one extra
                batch per call; the trailing metadata always carries it).
        """
        self.method = method
        self.context = context
        self.request_id = sanitize_request_id(
            _metadata_value(context.invocation_metadata(), REQUEST_ID_METADATA_KEY)
        ) or new_request_id()
        self._initial_metadata = initial_metadata
        self._started = 0.0
        # Read while the call is alive: an async-generator handler may be closed after the call is torn down,
        # and asking a dead call's context for its peer or deadline crashes the process.
        self._peer = context.peer()
        self._deadline: float | None = None

    @property
    def _id_pair(self) -> tuple[tuple[str, str], ...]:
        return ((REQUEST_ID_METADATA_KEY, self.request_id),)

    async def __aenter__(self) -> CallScope:
        """Record the request id and deadline in the call context and send the id in the initial metadata."""
        self._started = time.perf_counter()
        remaining = self.context.time_remaining()
        if remaining is not None:
            self._deadline = time.monotonic() + remaining
        set_call_context(self.request_id, remaining)
        self.context.set_trailing_metadata(self._id_pair)
        if self._initial_metadata:
            await self.context.send_initial_metadata(self._id_pair)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        """Log the call; map an exception to its status (raising ``grpc.aio.AbortError``)."""
        if exc is None:
            trailing = tuple(self.context.trailing_metadata() or ())
            if _metadata_value(trailing, REQUEST_ID_METADATA_KEY) is None:
                # The handler replaced the trailers; the request id goes back in regardless.
                self.context.set_trailing_metadata(trailing + self._id_pair)
            self._log(self._context_code(grpc.StatusCode.OK))
            return False
        if isinstance(exc, grpc.aio.AbortError):
            # The handler aborted on its own with a status of its choosing.
            self._log(self._context_code(grpc.StatusCode.UNKNOWN))
            return False
        if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            expired = self._deadline is not None and time.monotonic() >= self._deadline
            self._log(grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED)
            return False
        if not isinstance(exc, Exception):
            return False  # KeyboardInterrupt, SystemExit: not a call's business
        code = status_code_for(exc)
        if code is None:
            error_log.error(
                "unhandled exception in %s",
                self.method,
                exc_info=(type(exc), exc, tb),
                extra={"request_id": self.request_id, "method": self.method},
            )
            self._log(grpc.StatusCode.INTERNAL)
        else:
            self._log(code, reason=getattr(exc, "reason", None))
        await abort_with_error(
            self.context,
            exc,
            method=self.method,
            request_id=self.request_id,
            extra_trailing_metadata=self._id_pair,
        )
        return False  # pragma: no cover  # abort_with_error always raises

    def _context_code(self, default: grpc.StatusCode) -> grpc.StatusCode:
        code = self.context.code()
        if isinstance(code, grpc.StatusCode):
            return code
        if isinstance(code, int):
            for candidate in grpc.StatusCode:
                if candidate.value[0] == code:
                    return candidate
        return default

    def _log(self, code: grpc.StatusCode, *, reason: str | None = None) -> None:
        if code in _ERROR_CODES:
            level = logging.ERROR
        elif code in _WARNING_CODES:
            level = logging.WARNING
        elif self.method.startswith(_QUIET_PREFIXES):
            level = logging.DEBUG
        else:
            level = logging.INFO
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "method": self.method,
            "code": code.name,
            "duration_ms": round((time.perf_counter() - self._started) * 1000.0, 3),
            "peer": self._peer,
        }
        if reason is not None:
            fields["reason"] = reason
        if not access_log.isEnabledFor(level):
            return
        # Formatting and writing a line costs tens of microseconds; doing it on the loop's next turn lets
        # grpc send the response first instead of after the log line.
        asyncio.get_running_loop().call_soon(
            functools.partial(access_log.log, level, "%s %s", self.method, code.name, extra=fields)
        )


def _wrap_unary_response(behaviour: Callable[..., Any], scope: ScopeFactory) -> Callable[..., Awaitable[Any]]:
    async def wrapped(request_or_iterator: Any, context: Context) -> Any:
        async with scope(context):
            return await behaviour(request_or_iterator, context)

    return wrapped


def _wrap_stream_response(behaviour: Callable[..., Any], scope: ScopeFactory) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behaviour):

        async def wrapped_gen(request_or_iterator: Any, context: Context) -> AsyncIterator[Any]:
            async with scope(context):
                async for response in behaviour(request_or_iterator, context):
                    yield response

        return wrapped_gen

    async def wrapped_writer(request_or_iterator: Any, context: Context) -> None:
        async with scope(context):
            await behaviour(request_or_iterator, context)

    return wrapped_writer


def wrap_handler(handler: grpc.RpcMethodHandler[Any, Any], scope: ScopeFactory) -> grpc.RpcMethodHandler[Any, Any]:
    """Return ``handler`` with its behaviour run inside ``scope(context)`` on every call.

    Works for all four handler kinds and both streaming shapes (async generator, or coroutine using
    ``context.write``), keeping ``request_deserializer`` and ``response_serializer``. Synchronous
    behaviours are returned unwrapped: this runtime serves ``grpc.aio`` servicers only.

    Args:
        handler: What the next interceptor (or the server's registry) returned.
        scope: Factory of the per-call async context manager.
    """
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        if not inspect.iscoroutinefunction(handler.unary_unary):
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary_response(handler.unary_unary, scope), request_deserializer=des, response_serializer=ser
        )
    if handler.stream_unary is not None:
        if not inspect.iscoroutinefunction(handler.stream_unary):
            return handler
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary_response(handler.stream_unary, scope), request_deserializer=des, response_serializer=ser
        )
    if handler.unary_stream is not None:
        behaviour = handler.unary_stream
        if not (inspect.isasyncgenfunction(behaviour) or inspect.iscoroutinefunction(behaviour)):
            return handler
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream_response(behaviour, scope), request_deserializer=des, response_serializer=ser
        )
    if handler.stream_stream is not None:
        behaviour = handler.stream_stream
        if not (inspect.isasyncgenfunction(behaviour) or inspect.iscoroutinefunction(behaviour)):
            return handler
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream_response(behaviour, scope), request_deserializer=des, response_serializer=ser
        )
    return handler


class PlatformServerInterceptor(grpc.aio.ServerInterceptor):
    """Request id (``x-request-id`` taken or made, returned in initial and trailing metadata, set in the
    call context for logs and peer calls), one JSON access line per call, and domain errors mapped to
    ``google.rpc.Status``; unmapped exceptions become INTERNAL with a generic message.

    Put it first in the server's interceptor list so it also sees what later interceptors raise from
    their own wrapped behaviours.
    """

    def __init__(
        self, *, request_id_in_initial_metadata: bool = True, own_initial_metadata: frozenset[str] = frozenset()
    ) -> None:
        """Create the interceptor.

        Args:
            request_id_in_initial_metadata: Send ``x-request-id`` in the initial metadata as well as the
                trailers. It costs one extra batch per call (about 40 us of server CPU per unary call).
            own_initial_metadata: Full method names whose handlers send initial metadata of their own (a
                file name for a download); the request id goes in their trailers only.
        """
        self._initial_metadata = request_id_in_initial_metadata
        self._own_initial_metadata = own_initial_metadata
        # The registry hands back the same handler object for a method on every call, so the wrapped
        # handler is built once per method instead of once per call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Wrap the handler found for this call (None, an unknown method, passes through as UNIMPLEMENTED)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        initial_metadata = self._initial_metadata and method not in self._own_initial_metadata

        def scope(context: Context) -> CallScope:
            return CallScope(method, context, initial_metadata=initial_metadata)

        wrapped = wrap_handler(handler, scope)
        self._wrapped[method] = (handler, wrapped)
        return wrapped
