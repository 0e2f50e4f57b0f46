"""Authenticated peer calls: HMAC-SHA256 request signatures with a time window and a replay-proof nonce store.

Policy (distributed mode; the embedded server runs every servicer in one process and needs none of this).
Every RPC except ``grpc.health.v1`` and server reflection must carry either

* a valid peer signature (the metadata below, made with a key in ``PEER_AUTH_KEYS``), or
* a user access token, ``authorization: Bearer <jwt>``, which the service verifies itself against the
  user service's JWKS (the gateway checks it too and forwards it; the service does not trust the gateway's
  word for it). A service built without a bearer verifier accepts signed calls only.

A call with neither is refused ``PEER_SIGNATURE_MISSING``. A call that carries any ``x-peer-*`` header is
judged by its signature alone: a bad, stale or replayed signature is refused whatever else the call carries
(a valid bearer token does not rescue it). Methods a service declares public (sign-up, login, JWKS: what the
gateway lets through without a token) need no credential, but a signature they carry is still verified.
Refusals are UNAUTHENTICATED with ``ErrorInfo.reason`` ``PEER_SIGNATURE_MISSING``, ``PEER_SIGNATURE_INVALID``,
``PEER_KEY_UNKNOWN``, ``PEER_TIMESTAMP_STALE`` or ``PEER_NONCE_REPLAYED``; a nonce store that cannot be
reached answers UNAVAILABLE ``PEER_NONCE_STORE_UNAVAILABLE`` (fail closed).

Wire format. The client adds four metadata entries to every call::

    x-peer-key-id     which key signed (keys rotate: every key in PEER_AUTH_KEYS verifies)
    x-peer-timestamp  Unix seconds, decimal
    x-peer-nonce      128 random bits, 32 lowercase hex digits
    x-peer-signature  lowercase hex HMAC-SHA256(secret, canonical string)

    canonical string = "tastyplat-peer-v1" LF "POST" LF <full method "/pkg.Service/Method"> LF <timestamp> LF
                       <nonce> LF <key id> LF <lowercase hex SHA-256 of the body>

No field can contain a line feed (each is checked against a strict pattern), so the string is unambiguous.
The body is the request's deterministic serialization (``SerializeToString(deterministic=True)``); the
server hashes the request it parsed, serialized the same way, so the signature covers the message the
handler acts on. Client-streaming and bidi calls sign the empty body: the call (method, time, nonce) is
authenticated, the streamed messages are not. A field the server's contract does not know is serialized
after the known ones, so a client whose contract added a field numbered *below* one the server knows fails
the check; contracts only add fields at the end, and peers deploy the same contracts.

Verification order: header syntax (``PEER_SIGNATURE_INVALID``), key id (``PEER_KEY_UNKNOWN``),
``|now - timestamp| <= window`` in both directions (``PEER_TIMESTAMP_STALE``; default 300 s as AWS SigV4 and
Stripe), constant-time signature comparison (``PEER_SIGNATURE_INVALID``), and only then the nonce claim
(``PEER_NONCE_REPLAYED``), so unauthenticated callers cannot fill the nonce store.

Nonces. A nonce is remembered until its timestamp is two windows old: one window is when the request
turns stale anyway, the second covers clock differences between replicas sharing the store. The store
must outlive a restart and be shared by a service's replicas, so distributed mode keeps nonces in
PostgreSQL (``PostgresNonceStore``, table ``peer_nonces``, expired rows purged by the adapter's janitor).
Redis is not used: the machine's Redis keeps nothing on disk (no AOF, no RDB), so after a Redis restart
every nonce of the last five minutes would be accepted again. ``InMemoryNonceStore`` has the same
contract for tests and single-process use; it forgets on restart.

Key rotation: add the new ``kid:secret`` to ``PEER_AUTH_KEYS`` on every service (rolling restart), then
point ``PEER_AUTH_KEY_ID`` at it everywhere, then remove the old key once no process signs with it.

Wiring: ``peer_auth_from_settings`` returns a ``PeerAuth`` holding the server interceptor (pass it to
``build_server(..., interceptors=[...])``, which runs it inside the platform interceptor so refusals are
mapped like every other domain error), the adapter that opens and closes the nonce store, and the signing
interceptors for peer channels (``create_channel(..., interceptors=peer_auth.client_interceptors())``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import hmac
import inspect
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NoReturn, Protocol, runtime_checkable

import grpc
import grpc.aio

from services.platform import errors
from services.platform.clock import Clock
from services.platform.server import Adapter
from services.platform.settings import InvalidSettingError, Secret, Settings, env

__all__ = [
    "BODY_HASH_OF_EMPTY",
    "EXEMPT_METHOD_PREFIXES",
    "KEY_ID_HEADER",
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "BearerVerifier",
    "InMemoryNonceStore",
    "NonceStore",
    "NonceStoreUnavailable",
    "PeerAuth",
    "PeerAuthError",
    "PeerAuthServerInterceptor",
    "PeerAuthSettings",
    "PeerKeyUnknown",
    "PeerKeyring",
    "PeerNonceReplayed",
    "PeerSignatureInvalid",
    "PeerSignatureMissing",
    "PeerSigner",
    "PeerTimestampStale",
    "PeerVerifier",
    "PostgresNonceStore",
    "body_bytes",
    "canonical_string",
    "generate_secret",
    "is_exempt",
    "peer_auth_from_settings",
    "purge_periodically",
    "signing_interceptors",
]

log = logging.getLogger("tastyplat.peer_auth")

KEY_ID_HEADER = "x-peer-key-id"
TIMESTAMP_HEADER = "x-peer-timestamp"
NONCE_HEADER = "x-peer-nonce"
SIGNATURE_HEADER = "x-peer-signature"
_PEER_HEADERS = (KEY_ID_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
_AUTHORIZATION = "authorization"

# Probes and tooling: Envoy and the kubelet check health without credentials, grpcurl lists services.
EXEMPT_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_SCHEME = "tastyplat-peer-v1"
_NONCE_BYTES = 16
_MIN_SECRET_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TIMESTAMP = re.compile(r"^(0|[1-9][0-9]{0,11})$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_METHOD = re.compile(r"^/[A-Za-z0-9_.]+/[A-Za-z0-9_]+$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_BEARER = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +([^ ]+) *$")

BODY_HASH_OF_EMPTY = hashlib.sha256(b"").hexdigest()

Metadata = Iterable[tuple[str, str | bytes]]
BearerVerifier = Callable[[str], Awaitable[object]]
"""Verifies a bearer access token (the service's own JWKS check); raises a DomainError when it is not valid."""


class PeerAuthError(errors.Unauthenticated):
    """A peer call's credentials were refused (UNAUTHENTICATED)."""

    reason = "PEER_AUTH_FAILED"


class PeerSignatureMissing(PeerAuthError):
    """The call carries neither a peer signature nor a bearer access token."""

    reason = "PEER_SIGNATURE_MISSING"


class PeerSignatureInvalid(PeerAuthError):
    """The signature headers are malformed, incomplete, or the signature does not match the request."""

    reason = "PEER_SIGNATURE_INVALID"


class PeerKeyUnknown(PeerAuthError):
    """The call was signed with a key id this service does not hold."""

    reason = "PEER_KEY_UNKNOWN"


class PeerTimestampStale(PeerAuthError):
    """The signed timestamp is outside the window around this server's clock (either direction)."""

    reason = "PEER_TIMESTAMP_STALE"


class PeerNonceReplayed(PeerAuthError):
    """The nonce was seen before within its retention: the request is a replay."""

    reason = "PEER_NONCE_REPLAYED"


class NonceStoreUnavailable(errors.Unavailable):
    """The nonce store cannot be reached; calls are refused until it can (UNAVAILABLE)."""

    reason = "PEER_NONCE_STORE_UNAVAILABLE"


def generate_secret() -> str:
    """Return a new random 256-bit HMAC secret, base64 (for a ``kid:secret`` entry of ``PEER_AUTH_KEYS``)."""
    return base64.b64encode(os.urandom(32)).decode()


def _decode_secret(text: str, key_id: str) -> bytes:
    urlsafe = "-" in text or "_" in text
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the secret of key {key_id!r} is not valid base64") from None
    if len(raw) < _MIN_SECRET_BYTES:
        raise ValueError(f"the secret of key {key_id!r} must be at least {_MIN_SECRET_BYTES} bytes, got {len(raw)}")
    return raw


class PeerKeyring:
    """The HMAC keys of peer calls: every key verifies, one signs."""

    __slots__ = ("_keys", "_signing_key_id")

    def __init__(self, keys: Mapping[str, bytes], signing_key_id: str) -> None:
        """Create the keyring.

        Args:
            keys: Secrets (at least 32 bytes each) by key id (``[A-Za-z0-9][A-Za-z0-9._-]{0,63}``).
            signing_key_id: The key id outbound calls are signed with.

        Raises:
            ValueError: No keys, a bad key id, a short secret, or ``signing_key_id`` not among the keys.
        """
        if not keys:
            raise ValueError("a peer keyring needs at least one key")
        for key_id, secret in keys.items():
            if not _KEY_ID.match(key_id):
                raise ValueError(f"key id {key_id!r} must match {_KEY_ID.pattern}")
            if len(secret) < _MIN_SECRET_BYTES:
                raise ValueError(f"the secret of key {key_id!r} must be at least {_MIN_SECRET_BYTES} bytes")
        if signing_key_id not in keys:
            raise ValueError(f"signing key id {signing_key_id!r} is not among the keys {sorted(keys)}")
        self._keys = {k: bytes(v) for k, v in keys.items()}
        self._signing_key_id = signing_key_id

    @staticmethod
    def parse_keys(text: str) -> dict[str, bytes]:
        """Parse ``"kid1:<base64 secret>[,kid2:<base64 secret>...]"`` into secrets by key id.

        Raises:
            ValueError: Malformed text, a short secret, a repeated key id, or no key (the message never
                quotes key material).
        """
        keys: dict[str, bytes] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key_id, sep, secret = part.partition(":")
            key_id, secret = key_id.strip(), secret.strip()
            if not sep or not _KEY_ID.match(key_id) or not secret:
                raise ValueError("each key must be written <key id>:<base64 secret of at least 32 bytes>")
            if key_id in keys:
                raise ValueError(f"key id {key_id!r} appears twice")
            keys[key_id] = _decode_secret(secret, key_id)
        if not keys:
            raise ValueError("no keys")
        return keys

    @classmethod
    def from_setting(cls, text: str, signing_key_id: str) -> PeerKeyring:
        """Parse ``"kid1:<base64 secret>[,kid2:<base64 secret>...]"`` (see ``parse_keys``).

        Raises:
            ValueError: Malformed text, or ``signing_key_id`` not among the keys.
        """
        return cls(cls.parse_keys(text), signing_key_id)

    @property
    def signing_key_id(self) -> str:
        """The key id outbound calls are signed with."""
        return self._signing_key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id that verifies."""
        return tuple(sorted(self._keys))

    def secret(self, key_id: str) -> bytes | None:
        """The secret of ``key_id``, or None when this keyring does not hold it."""
        return self._keys.get(key_id)

    def __repr__(self) -> str:
        return f"PeerKeyring(key_ids={list(self.key_ids)}, signing_key_id={self._signing_key_id!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("PeerKeyring is not picklable")


def body_bytes(request: Any) -> bytes:
    """The signed body of a request: its deterministic serialization (or the bytes of a raw-bytes call).

    Raises:
        TypeError: ``request`` is neither a protobuf message nor bytes.
    """
    if isinstance(request, (bytes, bytearray, memoryview)):
        return bytes(request)
    serialize = getattr(request, "SerializeToString", None)
    if serialize is None:
        raise TypeError(f"cannot sign a request of type {type(request).__name__}")
    data: bytes = serialize(deterministic=True)
    return data


def canonical_string(*, method: str, timestamp: str, nonce: str, key_id: str, body_sha256: str) -> bytes:
    """The bytes the signature is computed over (see the module docstring).

    Args:
        method: Full method name, ``/pkg.Service/Method``.
        timestamp: Unix seconds, decimal.
        nonce: 32 lowercase hex digits.
        key_id: The signing key's id.
        body_sha256: Lowercase hex SHA-256 of the body.
    """
    return "\n".join((_SCHEME, "POST", method, timestamp, nonce, key_id, body_sha256)).encode("ascii")


def _hmac_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class PeerSigner:
    """Signs outbound peer calls with the keyring's signing key."""

    def __init__(self, keyring: PeerKeyring, *, clock: Clock) -> None:
        """Create the signer.

        Args:
            keyring: Keys; ``keyring.signing_key_id`` signs.
            clock: Wall time for the timestamp.
        """
        self._keyring = keyring
        self._clock = clock

    @property
    def key_id(self) -> str:
        """The key id calls are signed with."""
        return self._keyring.signing_key_id

    def sign(self, method: str, body: bytes, *, nonce: str | None = None, timestamp: int | None = None) -> tuple[
        tuple[str, str], ...
    ]:
        """Return the four ``x-peer-*`` metadata entries for one call.

        Args:
            method: Full method name, ``/pkg.Service/Method``.
            body: The request's deterministic serialization (``body_bytes``); empty for client-streaming.
            nonce: Override of the fresh random nonce (tests only).
            timestamp: Override of the clock's time (tests only).

        Raises:
            ValueError: ``method`` is not a full method name.
        """
        if not _METHOD.match(method):
            raise ValueError(f"not a full method name: {method!r}")
        key_id = self._keyring.signing_key_id
        secret = self._keyring.secret(key_id)
        assert secret is not None  # the keyring guarantees its signing key exists
        ts = str(int(self._clock.now().timestamp()) if timestamp is None else timestamp)
        nonce_hex = os.urandom(_NONCE_BYTES).hex() if nonce is None else nonce
        message = canonical_string(
            method=method, timestamp=ts, nonce=nonce_hex, key_id=key_id, body_sha256=hashlib.sha256(body).hexdigest()
        )
        return (
            (KEY_ID_HEADER, key_id),
            (TIMESTAMP_HEADER, ts),
            (NONCE_HEADER, nonce_hex),
            (SIGNATURE_HEADER, _hmac_hex(secret, message)),
        )


@runtime_checkable
class NonceStore(Protocol):
    """Remembers nonces until they expire; shared by a service's replicas and kept across restarts."""

    async def claim(self, nonce: bytes, *, expires_at: datetime, now: datetime) -> bool:
        """Record ``nonce`` until ``expires_at``; True if it was not live (unseen, or its last claim expired).

        Of concurrent claims of one nonce exactly one returns True.

        Raises:
            NonceStoreUnavailable: The store cannot be reached.
        """
        ...

    async def purge(self, now: datetime) -> int:
        """Forget every nonce whose expiry is at or before ``now``; return how many were forgotten.

        Raises:
            NonceStoreUnavailable: The store cannot be reached.
        """
        ...


class InMemoryNonceStore:
    """A NonceStore in this process's memory (tests, embedded use): forgets on restart, not shared."""

    # Purge on the claim path now and then so the map stays bounded without a janitor task.
    _PURGE_EVERY = 1024

    def __init__(self) -> None:
        """Create an empty store."""
        self._expiry: dict[bytes, datetime] = {}
        self._claims = 0

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, nonce: bytes, *, expires_at: datetime, now: datetime) -> bool:
        """See ``NonceStore.claim`` (no await inside: atomic on the event loop)."""
        self._claims += 1
        if self._claims % self._PURGE_EVERY == 0:
            self._purge(now)
        current = self._expiry.get(nonce)
        if current is not None and current > now:
            return False
        self._expiry[nonce] = expires_at
        return True

    async def purge(self, now: datetime) -> int:
        """See ``NonceStore.purge``."""
        return self._purge(now)

    def _purge(self, now: datetime) -> int:
        expired = [n for n, at in self._expiry.items() if at <= now]
        for nonce in expired:
            del self._expiry[nonce]
        return len(expired)


_NONCE_DDL = """
CREATE SCHEMA IF NOT EXISTS "{schema}";
CREATE TABLE IF NOT EXISTS "{schema}".peer_nonces (
    nonce      bytea       PRIMARY KEY CHECK (octet_length(nonce) = 16),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS peer_nonces_expires_at ON "{schema}".peer_nonces (expires_at);
"""

# A live nonce conflicts; an expired one the janitor has not purged yet is claimed afresh.
_CLAIM_SQL = """
INSERT INTO "{schema}".peer_nonces (nonce, expires_at) VALUES ($1, $2)
ON CONFLICT (nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE peer_nonces.expires_at <= $3
RETURNING 1
"""

_PURGE_SQL = 'DELETE FROM "{schema}".peer_nonces WHERE expires_at <= $1'

# Services start together and share the schema; the lock serializes their CREATE ... IF NOT EXISTS, which
# can otherwise fail with a unique violation in the catalogue when two run at once.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('tastyplat.peer_auth.nonces'))"


class PostgresNonceStore:
    """A NonceStore in PostgreSQL (table ``peer_nonces`` in ``schema``): survives restarts, shared by replicas."""

    def __init__(self, dsn: str, *, schema: str = "peer_auth", min_size: int = 1, max_size: int = 4) -> None:
        """Configure the store; ``open()`` connects and creates the table.

        Args:
            dsn: PostgreSQL DSN.
            schema: Schema holding the table (created if missing); services may share it.
            min_size: Pool connections kept open.
            max_size: Pool connections at most.

        Raises:
            ValueError: ``schema`` is not a plain lowercase identifier.
        """
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must match {_SCHEMA_NAME.pattern}, got {schema!r}")
        self._dsn = dsn
        self.schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._pool: Any = None
        self._claim_sql = _CLAIM_SQL.format(schema=schema)
        self._purge_sql = _PURGE_SQL.format(schema=schema)

    def __repr__(self) -> str:
        return f"PostgresNonceStore(schema={self.schema!r}, open={self._pool is not None})"

    async def open(self) -> None:
        """Create the schema and table if missing, then open the pool.

        Raises:
            NonceStoreUnavailable: PostgreSQL cannot be reached.
        """
        import asyncpg  # type: ignore[import-untyped]

        if self._pool is not None:
            return
        try:
            conn = await asyncpg.connect(self._dsn)
            try:
                async with conn.transaction():
                    await conn.execute(_MIGRATION_LOCK)
                    await conn.execute(_NONCE_DDL.format(schema=self.schema))
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=5.0,
                server_settings={"application_name": f"tastyplat-peer-auth:{self.schema}"[:63]},
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
            raise NonceStoreUnavailable(f"the peer nonce store cannot be opened: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Close the pool (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def claim(self, nonce: bytes, *, expires_at: datetime, now: datetime) -> bool:
        """See ``NonceStore.claim`` (one INSERT ... ON CONFLICT: concurrent claims serialize on the key)."""
        row = await self._run(lambda conn: conn.fetchval(self._claim_sql, nonce, expires_at, now))
        return row is not None

    async def purge(self, now: datetime) -> int:
        """See ``NonceStore.purge``."""
        status = await self._run(lambda conn: conn.execute(self._purge_sql, now))
        return int(str(status).rsplit(" ", 1)[-1])

    async def _run(self, operation: Callable[[Any], Awaitable[Any]]) -> Any:
        import asyncpg

        if self._pool is None:
            raise NonceStoreUnavailable("the peer nonce store is not open yet")
        try:
            async with self._pool.acquire() as conn:
                return await operation(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
            raise NonceStoreUnavailable(f"the peer nonce store failed: {type(exc).__name__}") from exc


async def purge_periodically(store: NonceStore, *, clock: Clock, interval_seconds: float = 60.0) -> None:
    """Purge expired nonces every ``interval_seconds`` until cancelled (failures are logged, not raised)."""
    while True:
        await clock.sleep(interval_seconds)
        try:
            purged = await store.purge(clock.now())
        except Exception:
            log.warning("peer nonce purge failed", exc_info=True)
            continue
        if purged:
            log.debug("peer nonces purged", extra={"purged": purged})


def _single(metadata: Sequence[tuple[str, str | bytes]], key: str) -> str | None:
    values = [v for k, v in metadata if k == key]
    if not values:
        return None
    if len(values) > 1:
        # Two values let a proxy and this server read different ones; refuse rather than pick.
        raise PeerSignatureInvalid(f"metadata {key} appears {len(values)} times", metadata={"header": key})
    value = values[0]
    if isinstance(value, bytes):
        raise PeerSignatureInvalid(f"metadata {key} must be text", metadata={"header": key})
    return value


def _invalid(header: str, what: str) -> NoReturn:
    raise PeerSignatureInvalid(f"metadata {header} is malformed: expected {what}", metadata={"header": header})


class PeerVerifier:
    """Checks the ``x-peer-*`` metadata of one inbound call (see the module docstring for the order)."""

    def __init__(
        self, keyring: PeerKeyring, nonces: NonceStore, *, clock: Clock, window_seconds: float = 300.0
    ) -> None:
        """Create the verifier.

        Args:
            keyring: Every key id that may sign.
            nonces: Where seen nonces are remembered.
            clock: Wall time the timestamps are judged against.
            window_seconds: Largest accepted ``|now - timestamp|``.

        Raises:
            ValueError: ``window_seconds`` is not positive.
        """
        if not window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        self._keyring = keyring
        self._nonces = nonces
        self._clock = clock
        self.window_seconds = float(window_seconds)

    @staticmethod
    def is_signed(metadata: Metadata) -> bool:
        """Whether the call carries any ``x-peer-*`` header (then its signature alone decides)."""
        return any(k in _PEER_HEADERS for k, _ in metadata)

    async def verify(self, method: str, metadata: Metadata, body: bytes) -> str:
        """Verify a signed call and claim its nonce.

        Args:
            method: Full method name the server dispatched.
            metadata: The call's invocation metadata.
            body: The request's deterministic serialization (empty for client-streaming calls).

        Returns:
            The key id that signed.

        Raises:
            PeerSignatureMissing: No ``x-peer-signature``.
            PeerSignatureInvalid: Headers incomplete, duplicated or malformed, or the signature does not match.
            PeerKeyUnknown: The key id is not in the keyring.
            PeerTimestampStale: The timestamp is outside the window.
            PeerNonceReplayed: The nonce was already used.
            NonceStoreUnavailable: The nonce store cannot be reached.
        """
        pairs = [(k, v) for k, v in metadata]
        signature = _single(pairs, SIGNATURE_HEADER)
        if signature is None:
            raise PeerSignatureMissing(f"the call has no {SIGNATURE_HEADER}", metadata={"header": SIGNATURE_HEADER})
        key_id, timestamp, nonce = (_single(pairs, h) for h in (KEY_ID_HEADER, TIMESTAMP_HEADER, NONCE_HEADER))
        if key_id is None or timestamp is None or nonce is None:
            absent = [h for h, v in zip(_PEER_HEADERS[:3], (key_id, timestamp, nonce), strict=True) if v is None]
            raise PeerSignatureInvalid(
                f"the signature comes without {', '.join(absent)}", metadata={"header": absent[0]}
            )
        if not _KEY_ID.match(key_id):
            _invalid(KEY_ID_HEADER, "a key id")
        if not _TIMESTAMP.match(timestamp):
            _invalid(TIMESTAMP_HEADER, "Unix seconds in decimal")
        if not _NONCE.match(nonce):
            _invalid(NONCE_HEADER, "32 lowercase hex digits")
        if not _SIGNATURE.match(signature):
            _invalid(SIGNATURE_HEADER, "64 lowercase hex digits")
        secret = self._keyring.secret(key_id)
        if secret is None:
            raise PeerKeyUnknown(f"peer key {key_id!r} is not known here", metadata={"key_id": key_id})
        now = self._clock.now()
        signed_at = int(timestamp)
        if abs(now.timestamp() - signed_at) > self.window_seconds:
            raise PeerTimestampStale(
                f"peer timestamp {signed_at} is more than {self.window_seconds:g} s from this server's clock",
                metadata={"timestamp": timestamp, "window_seconds": f"{self.window_seconds:g}"},
            )
        expected = _hmac_hex(
            secret,
            canonical_string(
                method=method, timestamp=timestamp, nonce=nonce, key_id=key_id,
                body_sha256=hashlib.sha256(body).hexdigest(),
            ),
        )
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
            raise PeerSignatureInvalid("the peer signature does not match the request", metadata={"key_id": key_id})
        expires_at = datetime.fromtimestamp(signed_at, UTC) + timedelta(seconds=2 * self.window_seconds)
        if not await self._nonces.claim(bytes.fromhex(nonce), expires_at=expires_at, now=now):
            raise PeerNonceReplayed("the peer nonce was already used: the request is a replay",
                                    metadata={"nonce": nonce})
        return key_id


def is_exempt(method: str) -> bool:
    """Whether ``method`` needs no credential at all (health checks, server reflection)."""
    return method.startswith(EXEMPT_METHOD_PREFIXES)


def _bearer_token(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    values = [v for k, v in metadata if k == _AUTHORIZATION]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    match = _BEARER.match(values[0])
    return match.group(1) if match else None


Context = grpc.aio.ServicerContext[Any, Any]


class PeerAuthServerInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a valid peer signature or bearer token (the policy of the module docstring).

    The checks run inside the handler's behaviour (the request is needed for the body hash) and raise
    ``PeerAuthError`` subclasses, which the platform interceptor outside maps to UNAUTHENTICATED with
    ``ErrorInfo``: put this interceptor in ``build_server(..., interceptors=[...])``, never before the
    platform one. Only ``grpc.aio`` (async) behaviours can be guarded; a synchronous one fails the call
    rather than being served unguarded.
    """

    def __init__(
        self,
        verifier: PeerVerifier,
        *,
        bearer_verifier: BearerVerifier | None,
        public_methods: Iterable[str] = (),
    ) -> None:
        """Create the interceptor.

        Args:
            verifier: Checks signatures and claims nonces.
            bearer_verifier: The service's access-token check (raises a DomainError for a bad token); None
                when the service accepts signed peer calls only.
            public_methods: Full method names callable without any credential (a signature they carry is
                still verified).
        """
        self._verifier = verifier
        self._bearer = bearer_verifier
        self._public = frozenset(public_methods)
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def authenticate(self, method: str, metadata: Metadata, body: bytes) -> None:
        """Apply the policy to one call.

        Raises:
            PeerAuthError: Refused (the subclass names why).
            NonceStoreUnavailable: The nonce store cannot be reached.
            errors.DomainError: Whatever the bearer verifier raised for a bad token.
        """
        pairs = [(k, v) for k, v in metadata]
        if self._verifier.is_signed(pairs):
            await self._verifier.verify(method, pairs, body)
            return
        if method in self._public:
            return
        token = _bearer_token(pairs)
        if token is not None and self._bearer is not None:
            await self._bearer(token)
            return
        accepted = "a peer signature or a bearer access token" if self._bearer is not None else "a peer signature"
        raise PeerSignatureMissing(f"{method} needs {accepted}", metadata={"header": SIGNATURE_HEADER})

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Return the handler guarded by the policy (exempt methods and unknown methods pass through)."""
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or is_exempt(method):
            return handler
        cached = self._guarded.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        guarded = _guard(handler, method, self.authenticate)
        self._guarded[method] = (handler, guarded)
        return guarded


Check = Callable[[str, Metadata, bytes], Awaitable[None]]


def _unguardable(method: str) -> NoReturn:
    raise TypeError(f"{method} has a synchronous behaviour; peer authentication guards grpc.aio behaviours only")


def _guard(handler: grpc.RpcMethodHandler[Any, Any], method: str, check: Check) -> grpc.RpcMethodHandler[Any, Any]:
    des, ser = handler.request_deserializer, handler.response_serializer

    async def checked(context: Context, body: bytes) -> None:
        await check(method, tuple(context.invocation_metadata() or ()), body)

    if handler.unary_unary is not None:
        uu: Callable[..., Any] = handler.unary_unary
        if not inspect.iscoroutinefunction(uu):
            _unguardable(method)

        async def unary_unary(request: Any, context: Context) -> Any:
            await checked(context, body_bytes(request))
            return await uu(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer=des, response_serializer=ser)
    if handler.stream_unary is not None:
        su: Callable[..., Any] = handler.stream_unary
        if not inspect.iscoroutinefunction(su):
            _unguardable(method)

        async def stream_unary(requests: Any, context: Context) -> Any:
            await checked(context, b"")
            return await su(requests, context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, request_deserializer=des, response_serializer=ser)
    if handler.unary_stream is not None:
        behaviour = _guard_stream(handler.unary_stream, method, checked, body_of=body_bytes)
        return grpc.unary_stream_rpc_method_handler(behaviour, request_deserializer=des, response_serializer=ser)
    if handler.stream_stream is not None:
        behaviour = _guard_stream(handler.stream_stream, method, checked, body_of=lambda _: b"")
        return grpc.stream_stream_rpc_method_handler(behaviour, request_deserializer=des, response_serializer=ser)
    return handler


def _guard_stream(
    behaviour: Callable[..., Any],
    method: str,
    checked: Callable[[Context, bytes], Awaitable[None]],
    *,
    body_of: Callable[[Any], bytes],
) -> Callable[..., Any]:
    # grpc.aio picks its calling convention from the shape (async generator or coroutine using
    # context.write), so the guard keeps it.
    if inspect.isasyncgenfunction(behaviour):

        async def generator(request_or_iterator: Any, context: Context) -> AsyncIterator[Any]:
            await checked(context, body_of(request_or_iterator))
            async for response in behaviour(request_or_iterator, context):
                yield response

        return generator
    if inspect.iscoroutinefunction(behaviour):

        async def writer(request_or_iterator: Any, context: Context) -> None:
            await checked(context, body_of(request_or_iterator))
            await behaviour(request_or_iterator, context)

        return writer
    _unguardable(method)


def _with_signature(signer: PeerSigner, details: grpc.aio.ClientCallDetails, body: bytes) -> grpc.aio.ClientCallDetails:
    method = details.method.decode("ascii") if isinstance(details.method, bytes) else details.method
    # Drop signature headers copied from an inbound call: this call gets its own.
    pairs = [(k, v) for k, v in details.metadata or () if k not in _PEER_HEADERS]
    pairs.extend(signer.sign(method, body))
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout,
        metadata=grpc.aio.Metadata(*pairs),
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


# grpc.aio files a client interceptor under the first of the four kinds it is an instance of: one class per kind.
class _SignUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, signer: PeerSigner) -> None:
        self._signer = signer

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_signature(self._signer, client_call_details, body_bytes(request)), request)


class _SignUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, signer: PeerSigner) -> None:
        self._signer = signer

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_signature(self._signer, client_call_details, body_bytes(request)), request)


class _SignStreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, signer: PeerSigner) -> None:
        self._signer = signer

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request_iterator: Any
    ) -> Any:
        return await continuation(_with_signature(self._signer, client_call_details, b""), request_iterator)


class _SignStreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, signer: PeerSigner) -> None:
        self._signer = signer

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request_iterator: Any
    ) -> Any:
        return await continuation(_with_signature(self._signer, client_call_details, b""), request_iterator)


def signing_interceptors(signer: PeerSigner) -> list[grpc.aio.ClientInterceptor]:
    """Return the client interceptors (one per call kind) that sign every outbound call.

    Pass them to ``services.platform.peers.create_channel(..., interceptors=...)``.
    """
    return [_SignUnaryUnary(signer), _SignUnaryStream(signer), _SignStreamUnary(signer), _SignStreamStream(signer)]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeerAuthSettings(Settings):
    """Peer authentication settings, shared by every service (variables without a service prefix).

    Attributes:
        keys: ``PEER_AUTH_KEYS``: ``kid:base64 secret[,kid:base64 secret...]``, every key verifies.
        key_id: ``PEER_AUTH_KEY_ID``: the key that signs outbound calls.
        window_seconds: ``PEER_AUTH_WINDOW_SECONDS``: largest accepted clock difference (default 300).
        database_url: ``PEER_AUTH_DATABASE_URL``: PostgreSQL DSN of the nonce store.
        database_schema: ``PEER_AUTH_DATABASE_SCHEMA``: its schema (default ``peer_auth``).
        purge_interval_seconds: ``PEER_AUTH_PURGE_INTERVAL_SECONDS``: how often expired nonces are deleted.
    """

    env_prefix: ClassVar[str] = ""

    keys: Secret = env("PEER_AUTH_KEYS", absolute=True, help="kid:base64 secret[,kid:base64 secret...], HMAC keys")
    key_id: str = env("PEER_AUTH_KEY_ID", absolute=True, help="the key id in PEER_AUTH_KEYS that signs peer calls")
    window_seconds: float = env("PEER_AUTH_WINDOW_SECONDS", default=300.0, ge=1.0, le=3600.0, absolute=True)
    database_url: Secret = env("PEER_AUTH_DATABASE_URL", absolute=True, help="PostgreSQL DSN of the peer nonce store")
    database_schema: str = env("PEER_AUTH_DATABASE_SCHEMA", default="peer_auth", absolute=True)
    purge_interval_seconds: float = env("PEER_AUTH_PURGE_INTERVAL_SECONDS", default=60.0, ge=1.0, absolute=True)

    def __post_init__(self) -> None:
        try:
            keys = PeerKeyring.parse_keys(self.keys.reveal())
        except ValueError as exc:
            raise InvalidSettingError("PEER_AUTH_KEYS", str(exc)) from None
        if self.key_id not in keys:
            raise InvalidSettingError("PEER_AUTH_KEY_ID", f"{self.key_id!r} is not among the key ids {sorted(keys)}")
        if not _SCHEMA_NAME.match(self.database_schema):
            raise InvalidSettingError("PEER_AUTH_DATABASE_SCHEMA", f"must match {_SCHEMA_NAME.pattern}")

    def keyring(self) -> PeerKeyring:
        """The keyring these settings describe."""
        return PeerKeyring.from_setting(self.keys.reveal(), self.key_id)


@dataclasses.dataclass(frozen=True)
class PeerAuth:
    """Everything a service's ``__main__`` wires for peer authentication.

    Attributes:
        server_interceptor: For ``build_server(..., interceptors=[...])``.
        adapter: For ``build_server(..., adapters=[...])``: opens the nonce store, purges it, closes it.
        signer: Signs outbound calls (``client_interceptors`` uses it).
        verifier: Verifies inbound signatures.
        nonces: The nonce store.
    """

    server_interceptor: PeerAuthServerInterceptor
    adapter: Adapter
    signer: PeerSigner
    verifier: PeerVerifier
    nonces: NonceStore

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """Signing interceptors for ``create_channel(..., interceptors=...)`` (a fresh list per channel)."""
        return signing_interceptors(self.signer)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProcessPeerAuthSettings(PeerAuthSettings):
    """Peer authentication of one service process, with what it needs to verify user tokens on unsigned calls.

    Attributes:
        user_service_target: ``PEER_AUTH_USER_SERVICE_TARGET``: where the user service publishes its JWKS.
        jwt_issuer: ``PEER_AUTH_JWT_ISSUER``: ``iss`` of access tokens.
        jwt_audience: ``PEER_AUTH_JWT_AUDIENCE``: ``aud`` of access tokens.
    """

    user_service_target: str = env("PEER_AUTH_USER_SERVICE_TARGET", default="127.0.0.1:8084", absolute=True)
    jwt_issuer: str = env("PEER_AUTH_JWT_ISSUER", default="https://user.tastyplat", absolute=True)
    jwt_audience: str = env("PEER_AUTH_JWT_AUDIENCE", default="tastyplat", absolute=True)


def process_peer_auth(environ: Mapping[str, str]) -> Callable[[], PeerAuth] | None:
    """Read a service process's peer authentication from ``environ``; used by ``serve()`` for every
    ``python -m services.<svc>``.

    Peer authentication is required (``PEER_AUTH_MODE=required``, the default): a missing ``PEER_AUTH_*``
    setting stops start-up naming it. ``PEER_AUTH_MODE=off`` turns it off explicitly, for development only, and
    says so in the log.

    Returns:
        A factory to call inside the event loop (it opens a channel), or None when turned off.
    """
    from services.platform.catalogue import PUBLIC_RPCS
    from services.platform.settings import exit_on_settings_error

    mode = environ.get("PEER_AUTH_MODE", "required")
    if mode == "off":
        log.warning("peer authentication is OFF (PEER_AUTH_MODE=off): for development only")
        return None
    if mode != "required":
        print(f"configuration error: PEER_AUTH_MODE must be 'required' or 'off', got {mode!r}", file=sys.stderr)
        raise SystemExit(2)
    settings = exit_on_settings_error(ProcessPeerAuthSettings, environ)

    def build() -> PeerAuth:
        from services.platform.clock import SystemClock
        from services.platform.identity import GrpcJwksSource, JwtAuthenticator
        from services.platform.peers import create_channel

        clock = SystemClock()
        jwks = GrpcJwksSource(create_channel(settings.user_service_target))
        tokens = JwtAuthenticator(jwks, issuer=settings.jwt_issuer, audience=settings.jwt_audience, clock=clock)

        async def bearer(token: str) -> object:
            return await tokens.authenticate(f"Bearer {token}")

        return peer_auth_from_settings(
            settings,
            clock=clock,
            bearer_verifier=bearer,
            public_methods=[f"/{service}/{rpc}" for service, rpc in PUBLIC_RPCS],
        )

    return build


def peer_auth_from_settings(
    settings: PeerAuthSettings,
    *,
    clock: Clock,
    bearer_verifier: BearerVerifier | None,
    public_methods: Iterable[str] = (),
    nonces: NonceStore | None = None,
) -> PeerAuth:
    """Build the peer authentication of one service process.

    Args:
        settings: From ``exit_on_settings_error(PeerAuthSettings, environ)`` in ``__main__``.
        clock: Wall time for timestamps and the nonce janitor.
        bearer_verifier: The service's access-token check, or None to accept signed peer calls only.
        public_methods: Full method names the gateway serves without a token (login, sign-up, JWKS).
        nonces: A nonce store to use instead of PostgreSQL at ``settings.database_url`` (tests).

    Returns:
        The interceptors, adapter and signer; add ``adapter`` to the server so the store opens before
        health says SERVING (until then signed calls are refused UNAVAILABLE).
    """
    keyring = settings.keyring()
    store: NonceStore
    postgres: PostgresNonceStore | None = None
    if nonces is None:
        postgres = PostgresNonceStore(settings.database_url.reveal(), schema=settings.database_schema)
        store = postgres
    else:
        store = nonces
    verifier = PeerVerifier(keyring, store, clock=clock, window_seconds=settings.window_seconds)
    janitor: list[asyncio.Task[None]] = []

    async def start() -> None:
        if postgres is not None:
            await postgres.open()
        janitor.append(
            asyncio.create_task(
                purge_periodically(store, clock=clock, interval_seconds=settings.purge_interval_seconds),
                name="peer-nonce-janitor",
            )
        )

    async def stop() -> None:
        for task in janitor:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        janitor.clear()
        if postgres is not None:
            await postgres.close()

    return PeerAuth(
        server_interceptor=PeerAuthServerInterceptor(
            verifier, bearer_verifier=bearer_verifier, public_methods=public_methods
        ),
        adapter=Adapter(name="peer-auth nonce store", start=start, stop=stop),
        signer=PeerSigner(keyring, clock=clock),
        verifier=verifier,
        nonces=store,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.platform.peer_auth keygen [KID]``: print a new ``kid:secret`` entry."""
    parser = argparse.ArgumentParser(prog="python -m services.platform.peer_auth", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    keygen = commands.add_parser("keygen", help="print a new PEER_AUTH_KEYS entry")
    keygen.add_argument("key_id", nargs="?", default=datetime.now(UTC).strftime("k%Y%m%d"))
    args = parser.parse_args(argv)
    if not _KEY_ID.match(args.key_id):
        parser.error(f"key id must match {_KEY_ID.pattern}")
    print(f"{args.key_id}:{generate_secret()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
