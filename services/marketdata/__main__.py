"""``python -m services.marketdata``: the market data service alone on its port (8082), settings from ``MARKETDATA_*``."""

from __future__ import annotations

import os

from services.marketdata.config import MarketDataSettings
from services.marketdata.wiring import build, registration
from services.platform.clock import SystemClock
from services.platform.server import ServiceRegistration, serve
from services.platform.settings import exit_on_settings_error


def main(environ: dict[str, str]) -> None:
    """Serve until SIGTERM/SIGINT."""
    settings = exit_on_settings_error(MarketDataSettings, environ)

    async def wire() -> list[ServiceRegistration]:
        return [registration(build(settings, clock=SystemClock()))]

    serve(settings, wire)


if __name__ == "__main__":
    main(dict(os.environ))
