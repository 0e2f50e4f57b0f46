"""``python -m services.calculator``: the calculator service alone on its port (``CALCULATOR_PORT``, 8085)."""

import os

from services.calculator.config import CalculatorSettings
from services.calculator.wiring import distributed
from services.platform.server import ServiceRegistration, serve
from services.platform.settings import exit_on_settings_error


def main() -> None:
    """Read the settings once and serve until SIGTERM/SIGINT."""
    settings = exit_on_settings_error(CalculatorSettings, os.environ)

    async def wire() -> list[ServiceRegistration]:
        return [await distributed(settings)]

    serve(settings, wire)


if __name__ == "__main__":
    main()
