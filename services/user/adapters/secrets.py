"""Randomness from the operating system's CSPRNG (``secrets``)."""

from __future__ import annotations

import secrets
import uuid

__all__ = ["SystemSecrets"]


class SystemSecrets:
    """``SecretSource`` backed by ``secrets``."""

    def new_id(self) -> str:
        """A random UUID4."""
        return str(uuid.uuid4())

    def token(self) -> str:
        """43 URL-safe characters carrying 256 random bits."""
        return secrets.token_urlsafe(32)

    def numeric_code(self, digits: int) -> str:
        """A uniformly random decimal code."""
        return f"{secrets.randbelow(10**digits):0{digits}d}"
