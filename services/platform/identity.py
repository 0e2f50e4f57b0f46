"""Access-token verification shared by every service: JWTs signed by the user service, checked against its JWKS.

Each service verifies the bearer token of every call itself (the gateway checks it too, and forwards it), so
a caller that reaches a service without the gateway is held to the same rule, and no service ever trusts an
identity header.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from services.platform.clock import Clock
from services.platform.errors import Unauthenticated

__all__ = [
    "AuthenticationRequired",
    "Authenticator",
    "Caller",
    "GrpcJwksSource",
    "JwtAuthenticator",
    "KeySource",
    "StaticKeySource",
]

log = logging.getLogger("tastyplat.identity")

ACCESS_TOKEN_TYPE = "at+jwt"
_ALGORITHMS = {"EdDSA", "ES256"}
_MAX_TOKEN = 8192


class AuthenticationRequired(Unauthenticated):
    """The call carries no valid access token (UNAUTHENTICATED)."""

    reason = "AUTHENTICATION_REQUIRED"

    def __init__(self, message: str = "an access token is required: 'authorization: Bearer <token>'") -> None:
        """Create the error with a message for the client (never the token itself)."""
        super().__init__(message)


@dataclass(frozen=True)
class Caller:
    """The verified identity of a call.

    Attributes:
        user_id: The access token's subject.
        authorization: The ``authorization`` metadata value, forwarded to peers acting for the caller.
        expires_at: When the access token expires.
    """

    user_id: str
    authorization: str = field(repr=False)
    expires_at: datetime | None = None


class Authenticator(Protocol):
    """Turns an ``authorization`` metadata value into a verified caller."""

    async def authenticate(self, authorization: str | None) -> Caller:
        """Verify it.

        Raises:
            AuthenticationRequired: it is missing or not a valid access token.
        """
        ...


class KeySource(Protocol):
    """Where the public keys come from."""

    async def fetch(self) -> list[Mapping[str, Any]]:
        """Return the JWKS keys (RFC 7517 member names)."""
        ...


class StaticKeySource:
    """A fixed key set (tests, or keys distributed by configuration)."""

    def __init__(self, keys: list[Mapping[str, Any]]) -> None:
        """Serve ``keys``."""
        self._keys = list(keys)

    async def fetch(self) -> list[Mapping[str, Any]]:
        """Return the keys."""
        return list(self._keys)


class GrpcJwksSource:
    """The user service's ``GetJwks`` over gRPC."""

    def __init__(self, channel: Any, timeout: float = 5.0) -> None:
        """Use ``channel`` (a peer channel to the user service)."""
        from tastyplat.user.v1 import user_service_pb2, user_service_pb2_grpc

        self._stub = user_service_pb2_grpc.UserServiceStub(channel)
        self._request = user_service_pb2.GetJwksRequest
        self._timeout = timeout

    async def fetch(self) -> list[Mapping[str, Any]]:
        """Fetch the key set."""
        response = await self._stub.GetJwks(self._request(), timeout=self._timeout)
        return [
            {k: v for k, v in (("kty", j.kty), ("crv", j.crv), ("x", j.x), ("y", j.y), ("kid", j.kid),
                                ("use", j.use), ("alg", j.alg)) if v}
            for j in response.keys
        ]


class JwtAuthenticator:
    """Verifies ``authorization: Bearer <jwt>`` values: signature by a published key, ``typ``, ``iss``, ``aud``, times.

    Keys are cached; a token naming an unknown ``kid`` refetches the set at most once per ``refresh_interval``.

    Verified tokens are remembered for ``verified_ttl`` (at most ``verified_capacity`` of them, oldest dropped
    first): a client repeats the same token on every call, and the signature check is a fifth of a plain
    read's CPU (benchmarks/platform). A remembered token is still refused once it expires or once its key
    has left the key set; a token signed by a key withdrawn from the JWKS is therefore accepted for at most
    ``verified_ttl`` after the withdrawal reaches this process.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        clock: Clock,
        leeway: timedelta = timedelta(seconds=30),
        refresh_interval: timedelta = timedelta(seconds=30),
        verified_ttl: timedelta = timedelta(seconds=60),
        verified_capacity: int = 10_000,
    ) -> None:
        """Configure the verifier."""
        self._source = keys
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._leeway = leeway
        self._refresh_interval = refresh_interval.total_seconds()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._verified_ttl = verified_ttl.total_seconds()
        self._verified_capacity = verified_capacity
        # token -> (caller, kid, monotonic time verified); insertion order is age order.
        self._verified: dict[str, tuple[Caller, str, float]] = {}

    def _remembered(self, token: str) -> Caller | None:
        entry = self._verified.get(token)
        if entry is None:
            return None
        caller, kid, verified_at = entry
        if self._clock.monotonic() - verified_at >= self._verified_ttl or kid not in self._keys:
            del self._verified[token]
            return None
        expires = caller.expires_at
        if expires is not None and expires.timestamp() + self._leeway.total_seconds() <= self._clock.now().timestamp():
            raise AuthenticationRequired("the access token expired")
        return caller

    def _remember(self, token: str, caller: Caller, kid: str) -> None:
        if self._verified_capacity <= 0:
            return
        while len(self._verified) >= self._verified_capacity:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (caller, kid, self._clock.monotonic())

    async def _key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            now = self._clock.monotonic()
            if kid not in self._keys and (self._fetched_at is None or now - self._fetched_at >= self._refresh_interval):
                try:
                    fetched = await self._source.fetch()
                except Exception as error:  # noqa: BLE001  # any failure of the key source means "cannot verify"
                    log.warning("cannot fetch signing keys", extra={"error": repr(error)})
                    raise AuthenticationRequired("cannot verify the access token now") from None
                self._fetched_at = now
                keys = {}
                for jwk in fetched:
                    try:
                        keys[str(jwk["kid"])] = jwt.PyJWK(dict(jwk))
                    except (jwt.PyJWKError, KeyError):
                        log.warning("ignoring an unusable JWK", extra={"kid": str(jwk.get("kid", ""))[:64]})
                self._keys = keys
        key = self._keys.get(kid)
        if key is None:
            raise AuthenticationRequired("the access token is signed by an unknown key")
        return key

    async def authenticate(self, authorization: str | None) -> Caller:
        """Verify the value of an ``authorization`` header.

        Raises:
            AuthenticationRequired: anything is wrong with it.
        """
        if not authorization:
            raise AuthenticationRequired()
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN:
            raise AuthenticationRequired("expected 'authorization: Bearer <access token>'")
        remembered = self._remembered(token)
        if remembered is not None:
            return remembered
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationRequired("the access token is malformed") from None
        kid, alg, typ = header.get("kid"), header.get("alg"), header.get("typ")
        if not isinstance(kid, str) or alg not in _ALGORITHMS or typ != ACCESS_TOKEN_TYPE:
            raise AuthenticationRequired("the access token is not an access token of this platform")
        key = await self._key(kid)
        if key.algorithm_name != alg:
            raise AuthenticationRequired("the access token's algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as error:
            raise AuthenticationRequired(f"the access token is invalid: {_short(error)}") from None
        now = self._clock.now().timestamp()
        if claims["exp"] + self._leeway.total_seconds() <= now:
            raise AuthenticationRequired("the access token expired")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 128:
            raise AuthenticationRequired("the access token names no user")
        caller = Caller(
            user_id=subject,
            authorization=f"Bearer {token}",
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
        self._remember(token, caller, kid)
        return caller


def _short(error: Exception) -> str:
    return json.dumps(str(error))[1:-1][:120]
