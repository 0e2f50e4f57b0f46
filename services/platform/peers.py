"""Client side of peer calls: channels with the platform's limits, request id propagation, mandatory deadlines.

gRPC Python sends no deadline unless the caller passes ``timeout=`` and does not carry an inbound
call's deadline to outbound calls; a service-config ``timeout`` fires early in grpcio 1.85 (upstream
#34547, #40633). So every peer call gets its deadline here, per call: the caller's ``timeout``, else the
configured default, and never later than the deadline of the inbound call being served.

Retries. Every peer channel carries a service config (``grpc.service_config``, ``grpc.enable_retries``) whose
retry policy applies to every method: up to ``PEER_RETRY_MAX_ATTEMPTS`` attempts with exponential backoff
(0.1 s doubling to 1 s, with gRPC's jitter), for UNAVAILABLE only, all within the call's one deadline. gRPC retries
a call only until it is committed, i.e. until response headers arrive (or the request outgrew the 256 KiB retry
buffer), so what is retried is a connection that could not be made or was refused (peer restarting, GOAWAY
while draining) and a trailers-only UNAVAILABLE. The platform's servers send the initial metadata (the request
id) as soon as a call starts, so an UNAVAILABLE raised by a handler, which may already have acted, is committed
and never retried; the one handler that sends its own headers late, reporting's CreateReport, is idempotent by
``request_id``. RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and business codes are never retried: they go to the
caller as they are. ``retryThrottling`` stops retrying towards a server that keeps failing (each failure costs a
token, each success gives back a tenth; retries stop below half of ten), so a dead peer does not get four times
the traffic.

Keepalive. A peer channel pings every 30 s, with or without calls in flight and without waiting for data
(``grpc.http2.max_pings_without_data`` 0), and drops the connection when a ping is not answered within 10 s:
a half-open connection to a dead peer is noticed before the next call waits for its deadline on it. The servers
(``server.server_options``) accept pings without calls down to every 10 s; anything more frequent would be
answered with GOAWAY ``too_many_pings``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
import grpc.aio

from services.platform import errors
from services.platform.context import current_request_id, new_request_id, remaining_time
from services.platform.error_mapping import REQUEST_ID_METADATA_KEY
from services.platform.settings import DEFAULT_MAX_MESSAGE_BYTES, ServerSettings

__all__ = [
    "MIN_PEER_TIMEOUT",
    "PEER_KEEPALIVE_TIME_MS",
    "PEER_RETRY_MAX_ATTEMPTS",
    "PEER_SERVICE_CONFIG",
    "channel_options",
    "create_channel",
    "create_channel_from_settings",
    "peer_call_interceptors",
    "translate_peer_error",
]

# Below this an outbound call cannot complete; an inbound call this close to its deadline fails its peer
# call at once with DEADLINE_EXCEEDED rather than never sending it.
MIN_PEER_TIMEOUT = 0.001


PEER_RETRY_MAX_ATTEMPTS = 4
PEER_KEEPALIVE_TIME_MS = 30_000

# No "timeout" here: deadlines are set per call (see above). `"name": [{}]` is the default for every method.
PEER_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": PEER_RETRY_MAX_ATTEMPTS,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    },
    separators=(",", ":"),
)


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """Return the channel arguments of a peer channel: message limits as the servers', retries, keepalive."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # The service config is this one; a service config from DNS must not replace it.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.service_config", PEER_SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", PEER_KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def _pairs(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[tuple[str, str | bytes]]:
    return [(k, v) for k, v in metadata or ()]


class _PeerCallPolicy:
    """Adds ``x-request-id`` (the inbound call's, or a new one) and a deadline to an outbound call."""

    def __init__(self, *, default_timeout: float, default_stream_timeout: float) -> None:
        if not (default_timeout > 0 and default_stream_timeout > 0):
            raise ValueError("peer call timeouts must be positive")
        self.default_timeout = default_timeout
        self.default_stream_timeout = default_stream_timeout

    def details(self, details: grpc.aio.ClientCallDetails, *, streaming: bool) -> grpc.aio.ClientCallDetails:
        pairs = _pairs(details.metadata)
        if not any(k == REQUEST_ID_METADATA_KEY for k, _ in pairs):
            pairs.append((REQUEST_ID_METADATA_KEY, current_request_id() or new_request_id()))
        timeout = details.timeout
        if timeout is None:
            timeout = self.default_stream_timeout if streaming else self.default_timeout
        inbound = remaining_time()
        if inbound is not None:
            timeout = min(timeout, max(inbound, MIN_PEER_TIMEOUT))
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=timeout,
            metadata=grpc.aio.Metadata(*pairs),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


# grpc.aio files a client interceptor under the first of the four kinds it is an instance of, so one class
# implementing all four would only ever see unary-unary calls: one class per kind.
class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, policy: _PeerCallPolicy) -> None:
        self._policy = policy

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._policy.details(client_call_details, streaming=False), request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, policy: _PeerCallPolicy) -> None:
        self._policy = policy

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._policy.details(client_call_details, streaming=True), request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, policy: _PeerCallPolicy) -> None:
        self._policy = policy

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request_iterator: Any
    ) -> Any:
        return await continuation(self._policy.details(client_call_details, streaming=False), request_iterator)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, policy: _PeerCallPolicy) -> None:
        self._policy = policy

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request_iterator: Any
    ) -> Any:
        return await continuation(self._policy.details(client_call_details, streaming=True), request_iterator)


def peer_call_interceptors(
    *, default_timeout: float, default_stream_timeout: float
) -> list[grpc.aio.ClientInterceptor]:
    """Return the client interceptors (one per call kind) that add ``x-request-id`` and a deadline.

    The request id is the inbound call's (from the call context) or a new one; the deadline is the
    caller's ``timeout``, else the default for the call kind, capped by the inbound call's deadline.

    Args:
        default_timeout: Deadline in seconds for unary-response calls that name none.
        default_stream_timeout: The same for server-streaming and bidi calls.

    Raises:
        ValueError: A default is not positive.
    """
    policy = _PeerCallPolicy(default_timeout=default_timeout, default_stream_timeout=default_stream_timeout)
    return [_UnaryUnary(policy), _UnaryStream(policy), _StreamUnary(policy), _StreamStream(policy)]


def create_channel(
    target: str,
    *,
    default_timeout: float = 5.0,
    default_stream_timeout: float = 3600.0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    credentials: grpc.ChannelCredentials | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    extra_options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """Open a channel to a peer service.

    Args:
        target: ``host:port`` of the peer.
        default_timeout: Deadline for unary-response calls that pass no ``timeout``.
        default_stream_timeout: Deadline for streaming-response calls that pass no ``timeout``.
        max_message_bytes: Same limit as the servers (batches exceed gRPC's 4 MiB default).
        credentials: TLS credentials; plaintext when None.
        interceptors: More client interceptors, run after the platform ones (an interceptor object is
            used for only one call kind: the first grpc.aio interceptor base class it inherits).
        extra_options: More channel arguments.

    Returns:
        A ``grpc.aio.Channel``; close it with ``await channel.close()``.
    """
    all_interceptors = [
        *peer_call_interceptors(default_timeout=default_timeout, default_stream_timeout=default_stream_timeout),
        *interceptors,
        *(_process_interceptors() if _process_interceptors is not None else ()),
    ]
    options = [*channel_options(max_message_bytes), *extra_options]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=all_interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=all_interceptors)


_process_interceptors: Callable[[], Sequence[grpc.aio.ClientInterceptor]] | None = None


def use_process_interceptors(factory: Callable[[], Sequence[grpc.aio.ClientInterceptor]] | None) -> None:
    """Add ``factory()``'s interceptors to every peer channel this process opens from now on.

    ``serve()`` uses it so that every peer call of a service process is signed (peer authentication) without
    each wiring having to pass the signer along; None removes them.
    """
    global _process_interceptors
    _process_interceptors = factory


def create_channel_from_settings(
    target: str,
    settings: ServerSettings,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """Open a peer channel with the timeouts and message limit of ``settings`` (and e.g. peer signing)."""
    return create_channel(
        target,
        default_timeout=settings.peer_timeout_seconds,
        default_stream_timeout=settings.peer_stream_timeout_seconds,
        max_message_bytes=settings.max_message_bytes,
        credentials=credentials,
        interceptors=interceptors,
    )


def translate_peer_error(err: grpc.aio.AioRpcError, peer: str) -> errors.DomainError | None:
    """Turn a peer's transport-level failure into a domain error, or None for the adapter to handle.

    UNAVAILABLE becomes ``Unavailable`` (reason ``PEER_UNAVAILABLE``) and DEADLINE_EXCEEDED becomes
    ``DeadlineExceeded`` (reason ``PEER_DEADLINE_EXCEEDED``), both naming the peer; business codes
    (NOT_FOUND, INVALID_ARGUMENT, ...) mean something only to the adapter, which maps them itself.

    Args:
        err: What the stub call raised.
        peer: Short name of the peer service (``"calculator"``).
    """
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return errors.Unavailable(
            f"{peer} service is unavailable", reason="PEER_UNAVAILABLE", metadata={"peer": peer}
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.DeadlineExceeded(
            f"{peer} service did not answer in time", reason="PEER_DEADLINE_EXCEEDED", metadata={"peer": peer}
        )
    return None
