"""``python -m services.portfolio``: the portfolio service alone on its port (real PostgreSQL, RabbitMQ, peers)."""

import os

from services.platform.clock import SystemClock
from services.platform.server import Adapter, ServiceRegistration, serve
from services.platform.settings import exit_on_settings_error
from services.portfolio.config import PortfolioSettings
from services.portfolio.wiring import distributed

settings = exit_on_settings_error(PortfolioSettings, os.environ)
_bus: list[object] = []


async def _wire() -> list[ServiceRegistration]:
    registration, bus = await distributed(settings, SystemClock())
    _bus.append(bus)
    return [registration]


async def _adapters() -> list[Adapter]:
    return [Adapter("bus", stop=_bus[0].close)]  # type: ignore[attr-defined]


serve(settings, _wire, adapters=_adapters)
