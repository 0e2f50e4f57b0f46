"""The ring of access-token signing keys and its rotation schedule.

Theory of operation: each key has a ``kid`` and an activation time. The signing key is the newest key whose
activation time has passed. A rotation adds a key that activates ``prepublish`` later, so JWKS caches (the
gateway's, other services') learn it before any token names it. A key superseded by a newer active key signs
nothing more but stays published until every token it signed has expired (``superseded + access-token
lifetime + leeway``); then it is dropped. So a rotation never logs anyone out.

Life of a key::

    pending (published, not signing) -> active (published, signing) -> retiring (published only) -> dropped
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["KeyRing", "KeyRotationPolicy", "SigningAlgorithm", "SigningKey"]


class SigningAlgorithm(enum.Enum):
    """JWS algorithms the service signs access tokens with (asymmetric only, so verifiers hold no secret)."""

    EDDSA = "EdDSA"
    ES256 = "ES256"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key pair of the ring.

    Attributes:
        kid: Key id, named by tokens in their ``kid`` header.
        algorithm: The JWS algorithm the key is used with (and the only one accepted for it).
        private_pem: PKCS#8 PEM of the private key (secret; never printed).
        public_jwk: The public key as a JWK (``kty``, ``crv``, ``x``, [``y``], ``kid``, ``use``, ``alg``).
        created_at: When the key was generated.
        activates_at: When it starts signing.
    """

    kid: str
    algorithm: SigningAlgorithm
    private_pem: bytes = field(repr=False)
    public_jwk: Mapping[str, str] = field(compare=False)
    created_at: datetime
    activates_at: datetime


@dataclass(frozen=True, slots=True)
class KeyRotationPolicy:
    """When keys rotate and how long they stay published.

    Attributes:
        rotation_period: Age of the signing key after which a new one is added.
        prepublish: How long a new key is published before it signs (longer than any JWKS cache).
        access_token_ttl: Lifetime of access tokens (how long a superseded key must still verify).
        leeway: Clock skew allowed to verifiers.
    """

    rotation_period: timedelta = timedelta(days=30)
    prepublish: timedelta = timedelta(minutes=10)
    access_token_ttl: timedelta = timedelta(minutes=10)
    leeway: timedelta = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """All stored keys, ordered by activation time.

    Attributes:
        keys: The keys, oldest activation first.
    """

    keys: tuple[SigningKey, ...]

    @classmethod
    def of(cls, keys: list[SigningKey] | tuple[SigningKey, ...]) -> KeyRing:
        """Return the ring of ``keys`` in activation order."""
        return cls(tuple(sorted(keys, key=lambda k: (k.activates_at, k.created_at, k.kid))))

    def signing_key(self, now: datetime) -> SigningKey | None:
        """The key that signs at ``now``: the newest one already active."""
        active = [k for k in self.keys if k.activates_at <= now]
        return active[-1] if active else None

    def _superseded_at(self, index: int) -> datetime | None:
        later = self.keys[index + 1 :]
        return later[0].activates_at if later else None

    def published(self, now: datetime, policy: KeyRotationPolicy) -> tuple[SigningKey, ...]:
        """Keys a verifier must trust at ``now``: pending, active, and retiring ones with live tokens."""
        keep = []
        for i, key in enumerate(self.keys):
            superseded = self._superseded_at(i)
            if superseded is None or now < superseded + policy.access_token_ttl + policy.leeway:
                keep.append(key)
        return tuple(keep)

    def expired(self, now: datetime, policy: KeyRotationPolicy) -> tuple[SigningKey, ...]:
        """Keys no token can need any more (safe to delete)."""
        published = {k.kid for k in self.published(now, policy)}
        return tuple(k for k in self.keys if k.kid not in published)

    def verification_key(self, kid: str, now: datetime, policy: KeyRotationPolicy) -> SigningKey | None:
        """The published key named ``kid``, or None."""
        for key in self.published(now, policy):
            if key.kid == kid:
                return key
        return None

    def needs_rotation(self, now: datetime, policy: KeyRotationPolicy) -> bool:
        """Whether a new key should be added: none yet, or the newest one is older than the period."""
        if not self.keys:
            return True
        newest = self.keys[-1]
        return newest.activates_at <= now and now >= newest.activates_at + policy.rotation_period
