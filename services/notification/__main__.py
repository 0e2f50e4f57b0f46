"""``python -m services.notification``: the notification service alone (real PostgreSQL, RabbitMQ, providers)."""

import os

from services.notification.config import NotificationSettings
from services.notification.wiring import distributed
from services.platform.clock import SystemClock
from services.platform.server import Adapter, ServiceRegistration, serve
from services.platform.settings import exit_on_settings_error

settings = exit_on_settings_error(NotificationSettings, os.environ)
_bus: list[object] = []


async def _wire() -> list[ServiceRegistration]:
    registration, bus = await distributed(settings, SystemClock())
    _bus.append(bus)
    return [registration]


async def _adapters() -> list[Adapter]:
    return [Adapter("bus", stop=_bus[0].close)]  # type: ignore[attr-defined]


serve(settings, _wire, adapters=_adapters)
