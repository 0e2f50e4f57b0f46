"""JWT access tokens with PyJWT: Ed25519 (EdDSA) or ES256 keys with a ``kid``, one pinned algorithm per key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from services.user.domain.errors import AuthenticationRequired
from services.user.domain.keys import SigningAlgorithm, SigningKey
from services.user.domain.tokens import ACCESS_TOKEN_TYPE, REQUIRED_CLAIMS

__all__ = ["JwtCodec", "KeyPairFactory"]

# A compact JWS far beyond any token this service issues is refused before any parsing.
MAX_TOKEN_LENGTH = 8192
MAX_KID_LENGTH = 128
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class KeyPairFactory:
    """``KeyFactory`` generating Ed25519 or P-256 key pairs."""

    def __init__(self, algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA) -> None:
        """Generate keys for ``algorithm``."""
        self.algorithm = algorithm

    def generate(self, kid: str, created_at: datetime, activates_at: datetime) -> SigningKey:
        """A new key pair with its public JWK."""
        private: Ed25519PrivateKey | ec.EllipticCurvePrivateKey
        if self.algorithm is SigningAlgorithm.EDDSA:
            private = Ed25519PrivateKey.generate()
            jwk = dict(OKPAlgorithm.to_jwk(private.public_key(), as_dict=True))
        else:
            private = ec.generate_private_key(ec.SECP256R1())
            jwk = dict(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
        jwk.update(kid=kid, use="sig", alg=self.algorithm.value)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return SigningKey(kid, self.algorithm, pem, {k: str(v) for k, v in jwk.items()}, created_at, activates_at)


class JwtCodec:
    """``AccessTokenCodec`` with PyJWT.

    Each key verifies only with its own algorithm (no ``alg: none``, no HS256 keyed with a public key), the
    ``typ`` header must be ``at+jwt``, and ``iss``, ``aud`` and every claim the platform relies on are
    required. Times are checked by the domain against the service's clock, not here.
    """

    def __init__(self) -> None:
        """Start with empty key caches."""
        self._private: dict[str, Any] = {}
        self._public: dict[str, Any] = {}

    def _private_key(self, key: SigningKey) -> Any:
        cached = self._private.get(key.kid)
        if cached is None:
            cached = serialization.load_pem_private_key(key.private_pem, password=None)
            self._private[key.kid] = cached
        return cached

    def _public_key(self, key: SigningKey) -> Any:
        cached = self._public.get(key.kid)
        if cached is None:
            cached = self._private_key(key).public_key()
            self._public[key.kid] = cached
        return cached

    def encode(self, payload: Mapping[str, object], key: SigningKey) -> str:
        """Sign ``payload`` with ``key`` (headers ``alg``, ``kid``, ``typ``)."""
        return jwt.encode(
            dict(payload), self._private_key(key), algorithm=key.algorithm.value,
            headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
        )

    def key_id(self, token: str) -> str:
        """The ``kid`` of an unverified token."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationRequired("access token is too large")
        if not _COMPACT_JWS.match(token):
            raise AuthenticationRequired("access token is not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationRequired("access token is malformed") from None
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            raise AuthenticationRequired("access token has no usable key id")
        return kid

    def decode(self, token: str, key: SigningKey, *, issuer: str, audience: str) -> Mapping[str, object]:
        """Verify signature, ``typ``, ``iss``, ``aud`` and claim presence; return the payload."""
        if len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.match(token):
            raise AuthenticationRequired("access token is not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != key.algorithm.value:
                raise AuthenticationRequired("access token algorithm does not match its key")
            if str(header.get("typ", "")).lower() != ACCESS_TOKEN_TYPE:
                raise AuthenticationRequired("not an access token")
            payload: dict[str, object] = jwt.decode(
                token,
                self._public_key(key),
                algorithms=[key.algorithm.value],
                audience=audience,
                issuer=issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise AuthenticationRequired("access token failed verification") from None
        return payload
