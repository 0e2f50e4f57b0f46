"""The eight services of the platform: names, contracts and ports, in one place."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any


@dataclasses.dataclass(frozen=True)
class ServiceEntry:
    """One service of the platform.

    Attributes:
        name: Package name, the same everywhere (``services.<name>``, ``tastyplat.<name>.v1``, Kubernetes).
        service: Generated service name (``CalculatorService``).
        port: Port of the service in distributed mode.
    """

    name: str
    service: str
    port: int

    @property
    def full_name(self) -> str:
        """Fully qualified service name, e.g. ``tastyplat.calculator.v1.CalculatorService``."""
        return f"tastyplat.{self.name}.v1.{self.service}"

    def modules(self) -> tuple[Any, Any]:
        """The generated ``_pb2`` and ``_pb2_grpc`` modules of the service's contract."""
        base = f"tastyplat.{self.name}.v1.{self.name}_service"
        return importlib.import_module(f"{base}_pb2"), importlib.import_module(f"{base}_pb2_grpc")


# RPCs anyone may call without an access token (sign-up, login, refresh, password reset, the JWKS itself): the
# gateway skips its JWT check on them and peer authentication lets them through unsigned.
PUBLIC_RPCS: tuple[tuple[str, str], ...] = tuple(
    ("tastyplat.user.v1.UserService", rpc)
    for rpc in ("CreateUser", "Login", "RefreshToken", "RequestPasswordReset", "ResetPassword", "GetJwks")
)

CATALOGUE: tuple[ServiceEntry, ...] = (
    ServiceEntry("broker", "BrokerService", 8081),
    ServiceEntry("marketdata", "MarketDataService", 8082),
    ServiceEntry("portfolio", "PortfolioService", 8083),
    ServiceEntry("user", "UserService", 8084),
    ServiceEntry("calculator", "CalculatorService", 8085),
    ServiceEntry("deltamonitor", "DeltaMonitorService", 8086),
    ServiceEntry("notification", "NotificationService", 8087),
    ServiceEntry("reporting", "ReportingService", 8088),
)


def entry(name: str) -> ServiceEntry:
    """The catalogue entry of service ``name``."""
    for candidate in CATALOGUE:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no service named {name!r}; known: {[e.name for e in CATALOGUE]}")
