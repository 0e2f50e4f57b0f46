"""``python -m services.reporting``: the reporting service alone on its port (peers by their targets)."""

import os

from services.platform.clock import SystemClock
from services.platform.server import ServiceRegistration, serve
from services.platform.settings import exit_on_settings_error
from services.reporting.config import ReportingServiceSettings
from services.reporting.wiring import distributed

settings = exit_on_settings_error(ReportingServiceSettings, os.environ)


async def _wire() -> list[ServiceRegistration]:
    return [await distributed(settings, SystemClock())]


serve(settings, _wire)
