"""Composition root of the calculator: the servicer over its use cases, for the embedded and the
distributed runs (the calculator has no backends: its only dependency is the ``core_ext`` kernel)."""

from __future__ import annotations

from services.calculator.api.servicer import SERVICE_NAME, CalculatorServicer, add_to_server
from services.calculator.app import CalculatorApp, OffloadPolicy
from services.calculator.config import CalculatorSettings
from services.embedded.resources import EmbeddedResources
from services.platform.server import ServiceRegistration

__all__ = ["distributed", "embedded", "registration"]


def registration(offload: OffloadPolicy | None = None) -> ServiceRegistration:
    """The calculator's registration for a platform server.

    Args:
        offload: Sizes from which work runs in a worker thread; the defaults when None.
    """
    return ServiceRegistration(
        add_to_server=add_to_server,  # type: ignore[arg-type]  # takes our servicer type
        servicer=CalculatorServicer(CalculatorApp(offload)),
        service_name=SERVICE_NAME,
    )


async def embedded(resources: EmbeddedResources) -> ServiceRegistration:
    """The calculator inside the embedded platform (it uses none of the shared backends)."""
    return registration()


async def distributed(settings: CalculatorSettings) -> ServiceRegistration:
    """The calculator as its own process (``python -m services.calculator``)."""
    return registration(settings.offload)
