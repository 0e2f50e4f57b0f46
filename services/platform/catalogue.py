"""The eight services of the platform: names, ports, contracts, and the issue that delivers each one."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from collections.abc import Mapping

from services.platform.pending import pending_servicer
from services.platform.server import ServiceRegistration, serve
from services.platform.settings import ServerSettings, exit_on_settings_error


@dataclasses.dataclass(frozen=True)
class ServiceEntry:
    """One service of the platform.

    Attributes:
        name: Package name, the same everywhere (``services.<name>``, ``tastyplat.<name>.v1``, Kubernetes).
        service: Generated service name (``CalculatorService``).
        port: Port of the service in distributed mode.
        issue: The issue that delivers its behaviour.
        subject: That issue's subject.
    """

    name: str
    service: str
    port: int
    issue: int
    subject: str

    @property
    def full_name(self) -> str:
        """Fully qualified service name, e.g. ``tastyplat.calculator.v1.CalculatorService``."""
        return f"tastyplat.{self.name}.v1.{self.service}"

    def modules(self) -> tuple[Any, Any]:
        """The generated ``_pb2`` and ``_pb2_grpc`` modules of the service's contract."""
        base = f"tastyplat.{self.name}.v1.{self.name}_service"
        return importlib.import_module(f"{base}_pb2"), importlib.import_module(f"{base}_pb2_grpc")

    def pending_registration(self) -> ServiceRegistration:
        """A registration whose every RPC answers UNIMPLEMENTED naming ``issue`` and ``subject``."""
        pb2, pb2_grpc = self.modules()
        servicer = pending_servicer(
            getattr(pb2_grpc, f"{self.service}Servicer"),
            pb2.DESCRIPTOR.services_by_name[self.service],
            self.issue,
            self.subject,
        )
        return ServiceRegistration(
            add_to_server=getattr(pb2_grpc, f"add_{self.service}Servicer_to_server"),
            servicer=servicer,
            service_name=self.full_name,
        )


# RPCs anyone may call without an access token (sign-up, login, refresh, password reset, the JWKS itself): the
# gateway skips its JWT check on them and peer authentication lets them through unsigned.
PUBLIC_RPCS: tuple[tuple[str, str], ...] = tuple(
    ("tastyplat.user.v1.UserService", rpc)
    for rpc in ("CreateUser", "Login", "RefreshToken", "RequestPasswordReset", "ResetPassword", "GetJwks")
)

_ISSUE_4 = "core_ext: the compiled pricing core, and the calculator service on top of it"
_ISSUE_5 = "The front door: Envoy gateway and the user service"
_ISSUE_6 = "Live data: the Tastytrade integration and the market data service"
_ISSUE_7 = "The heart: the delta monitor and multi-channel notifications, end to end"
_ISSUE_8 = "Portfolio risk and reporting: P&L, portfolio Greeks, risk limits, scenarios, Excel/CSV reports"

CATALOGUE: tuple[ServiceEntry, ...] = (
    ServiceEntry("broker", "BrokerService", 8081, 6, _ISSUE_6),
    ServiceEntry("marketdata", "MarketDataService", 8082, 6, _ISSUE_6),
    ServiceEntry("portfolio", "PortfolioService", 8083, 8, _ISSUE_8),
    ServiceEntry("user", "UserService", 8084, 5, _ISSUE_5),
    ServiceEntry("calculator", "CalculatorService", 8085, 4, _ISSUE_4),
    ServiceEntry("deltamonitor", "DeltaMonitorService", 8086, 7, _ISSUE_7),
    ServiceEntry("notification", "NotificationService", 8087, 7, _ISSUE_7),
    ServiceEntry("reporting", "ReportingService", 8088, 8, _ISSUE_8),
)


def entry(name: str) -> ServiceEntry:
    """The catalogue entry of service ``name``."""
    for candidate in CATALOGUE:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no service named {name!r}; known: {[e.name for e in CATALOGUE]}")


def serve_pending(name: str, environ: Mapping[str, str]) -> None:
    """Body of ``python -m services.<name>`` for a service whose issue has not landed: its contract, on its
    port (``<NAME>_PORT``, ``<NAME>_HOST``...), every RPC answering UNIMPLEMENTED with the issue's subject."""
    service = entry(name)
    prefix = f"{name.upper()}_"
    scoped = {key[len(prefix) :]: value for key, value in environ.items() if key.startswith(prefix)}
    scoped.setdefault("PORT", str(service.port))
    settings = exit_on_settings_error(ServerSettings, scoped)

    async def wire() -> list[ServiceRegistration]:
        return [service.pending_registration()]

    serve(settings, wire)
