"""Caller identity: the platform's access tokens, verified by the shared ``services.platform.identity`` verifier.

The user service signs access tokens and publishes its public keys (``GetJwks``, ``/.well-known/jwks.json``).
The broker verifies each call's bearer token itself and takes the user id from ``sub``, so a request that
reaches it without the gateway is held to the same rule as every other service (signature by a published
key, ``typ`` at+jwt, ``iss``, ``aud``, expiry; verified tokens remembered briefly, see ``JwtAuthenticator``).
"""

from __future__ import annotations

from datetime import timedelta

from services.broker.domain.errors import AuthenticationRequired
from services.platform.clock import Clock
from services.platform.identity import AuthenticationRequired as TokenRefused
from services.platform.identity import GrpcJwksSource, JwtAuthenticator, KeySource
from services.platform.identity import StaticKeySource as StaticJwks

__all__ = ["GrpcJwksSource", "JwtIdentityVerifier", "StaticJwks"]


class JwtIdentityVerifier:
    """The broker's ``IdentityVerifier`` port over the platform's ``JwtAuthenticator``.

    Args:
        keys: Where the public keys come from (``StaticJwks``, or ``GrpcJwksSource`` on the user service).
        issuer: Required ``iss``.
        audience: Required ``aud``.
        clock: Wall time for ``exp``, monotonic time for the key and token caches.
        leeway: Seconds of clock skew allowed.
    """

    def __init__(self, keys: KeySource, *, issuer: str, audience: str, clock: Clock, leeway: float = 30.0) -> None:
        self._authenticator = JwtAuthenticator(
            keys, issuer=issuer, audience=audience, clock=clock, leeway=timedelta(seconds=leeway)
        )

    async def verify(self, bearer_token: str) -> str:
        """The verified ``sub``.

        Raises:
            AuthenticationRequired: anything about the token fails, or its keys cannot be fetched now.
        """
        try:
            caller = await self._authenticator.authenticate(f"Bearer {bearer_token}" if bearer_token else None)
        except TokenRefused as refused:
            raise AuthenticationRequired(refused.message) from None
        return caller.user_id
