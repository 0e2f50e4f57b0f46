"""``python -m services.user``: the user service alone on its port (8084), settings from ``USER_*``.

``python -m services.user rotate-signing-key`` adds a new access-token signing key and exits; tokens signed
by the old key stay valid until they expire.
"""

from __future__ import annotations

import asyncio
import os
import sys

from services.platform.clock import SystemClock
from services.platform.server import ServiceRegistration, serve
from services.platform.settings import exit_on_settings_error
from services.user.config import UserSettings
from services.user.wiring import build, registration


async def _rotate(settings: UserSettings) -> str:
    components = build(settings, clock=SystemClock())
    await components.start()
    try:
        key = await components.app.rotate_signing_key()
    finally:
        await components.stop()
    return key.kid


def main(argv: list[str], environ: dict[str, str]) -> None:
    """Serve, or run the one administration command."""
    settings = exit_on_settings_error(UserSettings, environ)
    if argv[1:] == ["rotate-signing-key"]:
        kid = asyncio.run(_rotate(settings))
        print(f"new signing key {kid} (signs after {settings.key_prepublish_seconds:g} s)")
        return
    if argv[1:]:
        print(f"usage: python -m services.user [rotate-signing-key]; got {' '.join(argv[1:])!r}", file=sys.stderr)
        raise SystemExit(2)

    async def wire() -> list[ServiceRegistration]:
        return [registration(build(settings, clock=SystemClock()))]

    serve(settings, wire)


if __name__ == "__main__":
    main(sys.argv, dict(os.environ))
