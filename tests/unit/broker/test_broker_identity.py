"""Caller identity from the platform's access tokens (EdDSA JWT, typ at+jwt, iss/aud/exp checked)."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from services.broker.adapters.identity import JwtIdentityVerifier, StaticJwks
from services.broker.domain.errors import AuthenticationRequired
from services.platform.clock import FakeClock

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
JWK = {**OKPAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "kid": "k1", "alg": "EdDSA", "use": "sig"}


def token(**overrides: object) -> str:
    claims = {"iss": "https://user.tastyplat", "aud": "tastyplat", "sub": "user-42", "iat": int(NOW.timestamp()),
              "exp": int(NOW.timestamp()) + 600, "jti": "j", "roles": ["user"], "sid": "s"}
    headers = {"kid": "k1", "typ": "at+jwt"}
    headers.update(overrides.pop("headers", {}))  # type: ignore[arg-type]
    claims.update(overrides)
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers=headers)


@pytest.fixture
def verifier() -> JwtIdentityVerifier:
    return JwtIdentityVerifier(StaticJwks([JWK]), issuer="https://user.tastyplat", audience="tastyplat", clock=FakeClock(NOW))


async def test_valid_token_gives_its_subject(verifier: JwtIdentityVerifier) -> None:
    assert await verifier.verify(token()) == "user-42"


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": int(NOW.timestamp()) - 120},
        {"aud": "someone-else"},
        {"iss": "https://evil"},
        {"headers": {"typ": "JWT"}},
        {"headers": {"kid": "unknown"}},
        {"sub": ""},
    ],
)
async def test_invalid_tokens_are_refused(verifier: JwtIdentityVerifier, bad: dict[str, object]) -> None:
    with pytest.raises(AuthenticationRequired):
        await verifier.verify(token(**bad))


async def test_token_signed_by_another_key_is_refused(verifier: JwtIdentityVerifier) -> None:
    other = jwt.encode({"sub": "x"}, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"})
    with pytest.raises(AuthenticationRequired):
        await verifier.verify(other)


async def test_hs256_token_is_refused(verifier: JwtIdentityVerifier) -> None:
    forged = jwt.encode({"sub": "x"}, "secret-long-enough-for-hmac-sha256!", algorithm="HS256", headers={"kid": "k1", "typ": "at+jwt"})
    with pytest.raises(AuthenticationRequired):
        await verifier.verify(forged)
