"""Access tokens as the user service issues them (EdDSA JWTs, ``typ`` at+jwt, ``kid``), with the matching JWKS."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["TokenIssuer"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class TokenIssuer:
    """Signs access tokens with a fresh Ed25519 key; ``jwks`` is what GetJwks would publish."""

    issuer: str = "https://user.tastyplat"
    audience: str = "tastyplat"
    kid: str = field(default_factory=lambda: f"k-{uuid.uuid4().hex[:8]}")
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def jwks(self) -> list[dict[str, Any]]:
        """The public key as a JWK list."""
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return [{"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": self.kid, "use": "sig", "alg": "EdDSA"}]

    def token(self, user_id: str, *, now: datetime | None = None, lifetime: timedelta = timedelta(minutes=15),
              audience: str | None = None, typ: str = "at+jwt") -> str:
        """A signed access token for ``user_id``."""
        issued = now or datetime.now(UTC)
        payload = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "sub": user_id,
            "iat": int(issued.timestamp()),
            "exp": int((issued + lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
            "roles": ["trader"],
            "sid": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": typ})

    def metadata(self, user_id: str, **kwargs: Any) -> tuple[tuple[str, str], ...]:
        """gRPC metadata carrying the bearer token."""
        return (("authorization", f"Bearer {self.token(user_id, **kwargs)}"),)
