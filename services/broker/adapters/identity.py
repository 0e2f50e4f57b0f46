"""Caller identity: verify the platform's JWT access tokens (EdDSA or ES256, ``typ`` at+jwt) against a JWKS.

The user service signs access tokens and publishes its public keys (``GetJwks``, ``/.well-known/jwks.json``).
The broker verifies each call's bearer token itself and takes the user id from ``sub``, so a request that
reaches it without the gateway is held to the same rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import jwt

from services.broker.domain.errors import AuthenticationRequired, IdentityUnavailable
from services.platform.clock import Clock

ACCESS_TOKEN_TYPE = "at+jwt"
ALLOWED_ALGORITHMS = frozenset({"EdDSA", "ES256"})
MAX_TOKEN_LENGTH = 8192

Jwk = Mapping[str, str]


class StaticJwks:
    """A fixed key set (tests, or keys configured by hand)."""

    def __init__(self, keys: Sequence[Jwk]) -> None:
        self._keys = list(keys)

    async def keys(self, *, refresh: bool = False) -> list[Jwk]:
        """The keys."""
        return self._keys


class CachedJwks:
    """A key set fetched from the user service and cached; an unknown ``kid`` refetches at most every
    ``min_refresh`` seconds (a rotation publishes new keys before they sign, so this is rare).

    Args:
        fetch: Returns the current key set (a gRPC ``GetJwks`` call or an HTTP GET of jwks.json).
        clock: Monotonic time for the cache.
        ttl: Seconds a fetched set is used before refetching.
        min_refresh: Least seconds between refetches forced by unknown key ids.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Sequence[Jwk]]],
        *,
        clock: Clock,
        ttl: float = 300.0,
        min_refresh: float = 10.0,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._keys: list[Jwk] = []
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def keys(self, *, refresh: bool = False) -> list[Jwk]:
        """The cached keys, refetched when stale or (rate-limited) when asked to."""
        async with self._lock:
            now = self._clock.monotonic()
            age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age > self._ttl or (refresh and age > self._min_refresh):
                try:
                    self._keys = list(await self._fetch())
                    self._fetched_at = now
                except Exception as exc:
                    if not self._keys:
                        raise IdentityUnavailable("the access token keys cannot be fetched right now") from exc
            return self._keys


class JwtIdentityVerifier:
    """IdentityVerifier for the platform's access tokens.

    Args:
        keys: Where the public keys come from (``StaticJwks`` or ``CachedJwks``).
        issuer: Required ``iss``.
        audience: Required ``aud``.
        clock: Wall time for ``exp`` and ``iat``.
        leeway: Seconds of clock skew allowed.
    """

    def __init__(self, keys: StaticJwks | CachedJwks, *, issuer: str, audience: str, clock: Clock, leeway: float = 30.0) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._leeway = leeway

    async def _jwk(self, kid: str) -> Jwk | None:
        for refresh in (False, True):
            for key in await self._keys.keys(refresh=refresh):
                if key.get("kid") == kid:
                    return key
        return None

    async def verify(self, bearer_token: str) -> str:
        """The verified ``sub``.

        Raises:
            AuthenticationRequired: anything about the token fails.
        """
        if not bearer_token or len(bearer_token) > MAX_TOKEN_LENGTH:
            raise AuthenticationRequired("a bearer access token is required")
        try:
            header = jwt.get_unverified_header(bearer_token)
        except jwt.PyJWTError:
            raise AuthenticationRequired("access token is malformed") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALLOWED_ALGORITHMS or not isinstance(kid, str) or not kid:
            raise AuthenticationRequired("access token is not signed by a platform key")
        if str(header.get("typ", "")).lower() != ACCESS_TOKEN_TYPE:
            raise AuthenticationRequired("not an access token")
        jwk = await self._jwk(kid)
        if jwk is None or jwk.get("alg", algorithm) != algorithm:
            raise AuthenticationRequired("access token key is unknown")
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=algorithm).key
            payload: dict[str, Any] = jwt.decode(
                bearer_token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["iss", "aud", "sub", "exp", "iat"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise AuthenticationRequired("access token failed verification") from None
        now = self._clock.now().timestamp()
        exp, iat, sub = payload.get("exp"), payload.get("iat"), payload.get("sub")
        if not isinstance(exp, (int, float)) or now > exp + self._leeway:
            raise AuthenticationRequired("access token has expired")
        if not isinstance(iat, (int, float)) or iat > now + self._leeway:
            raise AuthenticationRequired("access token is issued in the future")
        if not isinstance(sub, str) or not sub:
            raise AuthenticationRequired("access token has no subject")
        return sub


def user_service_jwks(channel: Any, *, timeout: float = 5.0) -> Callable[[], Awaitable[list[Jwk]]]:
    """A fetch function for ``CachedJwks`` calling the user service's ``GetJwks`` over a peer channel."""
    from tastyplat.user.v1 import user_service_pb2, user_service_pb2_grpc

    stub = user_service_pb2_grpc.UserServiceStub(channel)

    async def fetch() -> list[Jwk]:
        response = await stub.GetJwks(user_service_pb2.GetJwksRequest(), timeout=timeout)
        return [
            {name: value for name, value in (("kty", k.kty), ("crv", k.crv), ("x", k.x), ("y", k.y), ("kid", k.kid),
                                              ("use", k.use), ("alg", k.alg)) if value}
            for k in response.keys
        ]

    return fetch
