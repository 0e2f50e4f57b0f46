"""``python -m services.broker``: the broker service alone on its port (8081), settings from ``BROKER_*``."""

from __future__ import annotations

import os

from services.broker.config import BrokerSettings
from services.broker.wiring import BrokerComponents, build, registration
from services.platform.clock import SystemClock
from services.platform.server import PlatformServer, ServiceRegistration, serve
from services.platform.settings import exit_on_settings_error


def main(environ: dict[str, str]) -> None:
    """Serve until SIGTERM/SIGINT."""
    settings = exit_on_settings_error(BrokerSettings, environ)
    built: list[BrokerComponents] = []

    async def wire() -> list[ServiceRegistration]:
        components = build(settings, clock=SystemClock())
        built.append(components)
        return [registration(components)]

    def on_ready(server: PlatformServer) -> None:
        for components in built:
            components.attach_health(server.health)

    serve(settings, wire, on_ready=on_ready)


if __name__ == "__main__":
    main(dict(os.environ))
