"""What the embedded runner hands each service's wiring: shared backends in one process."""

from __future__ import annotations

import dataclasses

from services.platform.bus import MessageBus
from services.platform.cache import LatestValueCache
from services.platform.clock import Clock


@dataclasses.dataclass(frozen=True)
class EmbeddedResources:
    """Shared backends of the embedded platform.

    A service's ``wiring.embedded(resources)`` builds its adapters from these and returns its
    ``ServiceRegistration``; peers are reached over gRPC on ``grpc_target`` (the same server), exactly as in
    distributed mode, so no service imports another.

    Attributes:
        postgres_dsn: DSN of the embedded PostgreSQL 18 database (Unix socket); each service keeps its own schema.
        bus: The in-process message bus (same contract as the RabbitMQ adapter).
        cache: The in-process latest-value cache (same contract as the Redis adapter).
        clock: The wall and monotonic clock.
        grpc_target: ``host:port`` of the embedded gRPC server, for peer clients.
        peer_timeout_seconds: Deadline for a unary peer call.
    """

    postgres_dsn: str
    bus: MessageBus
    cache: LatestValueCache
    clock: Clock
    grpc_target: str
    peer_timeout_seconds: float = 5.0
