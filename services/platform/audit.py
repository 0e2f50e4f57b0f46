"""Tamper-evident audit log: entries hash-chained and Ed25519-signed, with a signed head against truncation.

Theory of operation: entry ``n`` stores its canonical JSON payload, ``prev_hash`` (the hash of entry
``n-1``, 32 zero bytes for the first), ``entry_hash = SHA-256(domain tag || prev_hash || payload)`` and an
Ed25519 signature of ``entry_hash``. Editing any entry changes its hash (or breaks its signature, if the
hash is recomputed); deleting one breaks the sequence and the chain. Deleting the *last* entries leaves a
valid chain, so a one-row *head* holds the last sequence number and hash, signed too, and is updated in the
same transaction as each append; the verifier requires the chain to end exactly at the head. The head exists
from the start (a signed seq-0 head), so deleting everything is detected as well. What no in-database check
can see is a rollback of entries *and* head to an earlier, genuinely signed state; ``verify`` takes the
last head seen elsewhere (``expect_min_seq``: a log line, a monitoring system) for that.

Appends are serialized by a row lock on the head, so replicas sharing a database extend one chain.

Command line::

    python -m services.platform.audit keygen
    python -m services.platform.audit verify --dsn postgresql://... --schema user_service --public-key <b64>
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import struct
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "AUDIT_SCHEMA_SQL",
    "AuditEntry",
    "AuditHead",
    "AuditLog",
    "AuditSigner",
    "AuditStore",
    "AuditVerifier",
    "MemoryAuditStore",
    "PostgresAuditStore",
    "VerificationReport",
    "verify_chain",
]

GENESIS_HASH = bytes(32)
_ENTRY_TAG = b"tastyplat-audit-entry-v1\x00"
_HEAD_TAG = b"tastyplat-audit-head-v1\x00"

AUDIT_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq         bigint PRIMARY KEY,
    payload     text   NOT NULL,
    prev_hash   bytea  NOT NULL,
    entry_hash  bytea  NOT NULL,
    signature   bytea  NOT NULL,
    key_id      text   NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id          smallint PRIMARY KEY CHECK (id = 1),
    seq         bigint NOT NULL,
    entry_hash  bytea  NOT NULL,
    signature   bytea  NOT NULL,
    key_id      text   NOT NULL
);
"""

Details = Mapping[str, str | int | bool | None]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored entry.

    Attributes:
        seq: Position in the chain, from 1.
        payload: Canonical JSON of ``seq``, ``at``, ``event``, ``actor``, ``subject``, ``details``.
        prev_hash: ``entry_hash`` of the previous entry (``GENESIS_HASH`` for seq 1).
        entry_hash: SHA-256 over the domain tag, ``prev_hash`` and ``payload``.
        signature: Ed25519 signature of ``entry_hash``.
        key_id: Which audit key signed it.
    """

    seq: int
    payload: str
    prev_hash: bytes
    entry_hash: bytes
    signature: bytes
    key_id: str

    @property
    def fields(self) -> dict[str, Any]:
        """The decoded payload."""
        decoded: dict[str, Any] = json.loads(self.payload)
        return decoded


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The signed end of the chain.

    Attributes:
        seq: Sequence number of the last entry (0 when empty).
        entry_hash: Its hash (``GENESIS_HASH`` when empty).
        signature: Ed25519 signature over the head tag, ``seq`` and ``entry_hash``.
        key_id: Which audit key signed it.
    """

    seq: int
    entry_hash: bytes
    signature: bytes
    key_id: str


def canonical_payload(seq: int, at: datetime, event: str, actor: str | None, subject: str | None,
                      details: Details | None) -> str:
    """The exact text hashed for an entry (sorted keys, no spaces, ASCII only)."""
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "event": event,
        "actor": actor,
        "subject": subject,
        "details": dict(details or {}),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def chain_hash(prev_hash: bytes, payload: str) -> bytes:
    """``entry_hash`` of a payload following ``prev_hash``."""
    return hashlib.sha256(_ENTRY_TAG + prev_hash + payload.encode("ascii")).digest()


def _head_message(seq: int, entry_hash: bytes) -> bytes:
    return _HEAD_TAG + struct.pack(">Q", seq) + entry_hash


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class AuditSigner:
    """The Ed25519 key that signs entries and heads (from settings; never logged)."""

    __slots__ = ("_key", "key_id")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        """Wrap a private key."""
        self._key = private_key
        self.key_id = _key_id(private_key.public_key())

    @classmethod
    def from_seed(cls, seed_b64: str) -> AuditSigner:
        """Load the key from its base64 32-byte seed (the ``keygen`` output).

        Raises:
            ValueError: not base64 of 32 bytes (the message never quotes the seed).
        """
        try:
            raw = base64.b64decode(seed_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("audit signing key is not valid base64") from None
        if len(raw) != 32:
            raise ValueError(f"audit signing key must be a 32-byte Ed25519 seed, got {len(raw)} bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def generate(cls) -> AuditSigner:
        """A new random key (tests, ``keygen``)."""
        return cls(Ed25519PrivateKey.generate())

    def seed_b64(self) -> str:
        """The base64 seed (to store in a secret)."""
        raw = self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return base64.b64encode(raw).decode()

    def public_key_b64(self) -> str:
        """The base64 raw public key (what ``verify`` needs)."""
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def verifier(self) -> AuditVerifier:
        """A verifier trusting this key."""
        return AuditVerifier([self.public_key_b64()])

    def __repr__(self) -> str:
        return f"AuditSigner(key_id={self.key_id!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("AuditSigner is not picklable")

    def entry(self, seq: int, prev_hash: bytes, payload: str) -> AuditEntry:
        """Hash and sign a payload as entry ``seq``."""
        digest = chain_hash(prev_hash, payload)
        return AuditEntry(seq, payload, prev_hash, digest, self._key.sign(digest), self.key_id)

    def head(self, seq: int, entry_hash: bytes) -> AuditHead:
        """Sign the head of a chain ending at ``seq`` with ``entry_hash``."""
        return AuditHead(seq, entry_hash, self._key.sign(_head_message(seq, entry_hash)), self.key_id)


class AuditVerifier:
    """Public audit keys by key id (several when the audit key was rotated)."""

    def __init__(self, public_keys_b64: Iterable[str]) -> None:
        """Trust these base64 raw Ed25519 public keys.

        Raises:
            ValueError: a key is malformed.
        """
        self._keys: dict[str, Ed25519PublicKey] = {}
        for text in public_keys_b64:
            try:
                key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
            except (binascii.Error, ValueError):
                raise ValueError("audit public key must be base64 of 32 bytes") from None
            self._keys[_key_id(key)] = key

    def valid(self, key_id: str, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` by key ``key_id`` over ``message`` verifies."""
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What ``verify_chain`` found.

    Attributes:
        ok: Whether the whole log is intact.
        entries: How many entries were checked.
        head_seq: The signed head's seq (None if missing).
        broken_seq: The first broken entry's seq (or where the chain should have continued), None if ok.
        problem: What is wrong, for a human.
    """

    ok: bool
    entries: int
    head_seq: int | None
    broken_seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"OK: {self.entries} entries, chain and signed head (seq {self.head_seq}) intact"
        return f"BROKEN at seq {self.broken_seq}: {self.problem} ({self.entries} entries read)"


def verify_chain(entries: Iterable[AuditEntry], head: AuditHead | None, verifier: AuditVerifier, *,
                 expect_min_seq: int = 0) -> VerificationReport:
    """Check a log's entries (in seq order) against each other, their signatures and the signed head.

    Args:
        entries: Every entry, ascending seq.
        head: The stored head, or None if it is missing.
        verifier: Trusted public keys.
        expect_min_seq: A head seq seen earlier outside the database; a shorter log was rolled back.

    Returns:
        The report naming the first broken entry.
    """
    prev_hash = GENESIS_HASH
    expected = 1
    count = 0
    head_seq = head.seq if head is not None else None

    def broken(seq: int, problem: str) -> VerificationReport:
        return VerificationReport(False, count, head_seq, seq, problem)

    for entry in entries:
        count += 1
        if entry.seq != expected:
            return broken(expected, f"entry {expected} is missing (next stored entry is {entry.seq})")
        if entry.prev_hash != prev_hash:
            return broken(entry.seq, "prev_hash does not match the previous entry")
        try:
            payload_seq = json.loads(entry.payload).get("seq")
            payload_ascii = entry.payload.encode("ascii")
        except (ValueError, AttributeError, UnicodeEncodeError):
            return broken(entry.seq, "payload is not canonical JSON")
        if payload_seq != entry.seq:
            return broken(entry.seq, "payload seq differs from the stored seq")
        if hashlib.sha256(_ENTRY_TAG + entry.prev_hash + payload_ascii).digest() != entry.entry_hash:
            return broken(entry.seq, "entry_hash does not match the payload (entry edited)")
        if not verifier.valid(entry.key_id, entry.signature, entry.entry_hash):
            return broken(entry.seq, "signature does not verify")
        prev_hash = entry.entry_hash
        expected += 1
    last = expected - 1
    if head is None:
        return broken(last + 1, "the signed head is missing (log deleted or truncated)")
    if not verifier.valid(head.key_id, head.signature, _head_message(head.seq, head.entry_hash)):
        return broken(head.seq, "the head's signature does not verify")
    if head.seq > last:
        return broken(last + 1, f"log ends at seq {last} but the signed head says {head.seq} (truncated)")
    if head.seq < last or head.entry_hash != prev_hash:
        return broken(head.seq + 1 if head.seq < last else last, "entries do not end where the signed head says")
    if last < expect_min_seq:
        return broken(last + 1, f"log ends at seq {last}, before seq {expect_min_seq} seen earlier (rolled back)")
    return VerificationReport(True, count, head_seq)


class AuditStore(Protocol):
    """Storage of one audit chain; ``append`` must be atomic with respect to other appenders."""

    async def initialize(self, genesis: AuditHead) -> None:
        """Create the head as ``genesis`` if there is none (idempotent)."""
        ...

    async def append(self, build: Callable[[AuditHead], tuple[AuditEntry, AuditHead]]) -> AuditEntry:
        """Lock the head, let ``build`` make the next entry and head from it, store both, unlock."""
        ...

    async def head(self) -> AuditHead | None:
        """The stored head, or None."""
        ...

    async def entries(self) -> list[AuditEntry]:
        """Every entry, ascending seq."""
        ...


class AuditLog:
    """The audit trail a service records security events in (implements the services' ``AuditTrail``)."""

    def __init__(self, store: AuditStore, signer: AuditSigner, now: Callable[[], datetime]) -> None:
        """Wire the log.

        Args:
            store: Where the chain lives.
            signer: The audit signing key.
            now: The clock's ``now``.
        """
        self._store = store
        self._signer = signer
        self._now = now

    async def start(self) -> None:
        """Create the signed empty head if the log is new."""
        await self._store.initialize(self._signer.head(0, GENESIS_HASH))

    async def record(self, event: str, *, actor: str | None, subject: str | None,
                     details: Details | None = None) -> None:
        """Append one event (see ``AuditTrail.record``)."""
        at = self._now()

        def build(head: AuditHead) -> tuple[AuditEntry, AuditHead]:
            seq = head.seq + 1
            entry = self._signer.entry(seq, head.entry_hash, canonical_payload(seq, at, event, actor, subject,
                                                                              details))
            return entry, self._signer.head(seq, entry.entry_hash)

        await self._store.append(build)

    async def entries(self) -> list[AuditEntry]:
        """Every stored entry, ascending seq."""
        return await self._store.entries()

    async def verify(self, verifier: AuditVerifier | None = None, *, expect_min_seq: int = 0) -> VerificationReport:
        """Verify the stored chain (with this log's own key unless ``verifier`` is given)."""
        return verify_chain(await self._store.entries(), await self._store.head(),
                            verifier or self._signer.verifier(), expect_min_seq=expect_min_seq)


class MemoryAuditStore:
    """An in-process chain (embedded mode without a database, unit tests)."""

    def __init__(self) -> None:
        """Start empty (no head until ``initialize``)."""
        self.rows: list[AuditEntry] = []
        self.head_row: AuditHead | None = None
        self._lock = asyncio.Lock()

    async def initialize(self, genesis: AuditHead) -> None:
        """Set the head to ``genesis`` unless one exists."""
        if self.head_row is None and not self.rows:
            self.head_row = genesis

    async def append(self, build: Callable[[AuditHead], tuple[AuditEntry, AuditHead]]) -> AuditEntry:
        """Append under a lock."""
        async with self._lock:
            if self.head_row is None:
                raise RuntimeError("audit log not initialized")
            entry, head = build(self.head_row)
            self.rows.append(entry)
            self.head_row = head
            return entry

    async def head(self) -> AuditHead | None:
        """The head."""
        return self.head_row

    async def entries(self) -> list[AuditEntry]:
        """Every entry."""
        return list(self.rows)


class PostgresAuditStore:
    """The chain in PostgreSQL (tables ``audit_log`` and ``audit_head`` in the pool's search path)."""

    def __init__(self, pool: Any) -> None:
        """Use an asyncpg pool (its ``search_path`` picks the schema)."""
        self._pool = pool

    async def ensure_schema(self) -> None:
        """Create the tables if they do not exist."""
        async with self._pool.acquire() as conn:
            await conn.execute(AUDIT_SCHEMA_SQL)

    async def initialize(self, genesis: AuditHead) -> None:
        """Create the tables and the genesis head if missing."""
        await self.ensure_schema()
        async with self._pool.acquire() as conn, conn.transaction():
            has_entries = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM audit_log)")
            if not has_entries:
                await conn.execute(
                    "INSERT INTO audit_head (id, seq, entry_hash, signature, key_id) VALUES (1, $1, $2, $3, $4) "
                    "ON CONFLICT (id) DO NOTHING",
                    genesis.seq, genesis.entry_hash, genesis.signature, genesis.key_id,
                )

    async def append(self, build: Callable[[AuditHead], tuple[AuditEntry, AuditHead]]) -> AuditEntry:
        """Append in one transaction holding the head's row lock."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT seq, entry_hash, signature, key_id FROM audit_head WHERE id = 1 FOR UPDATE"
            )
            if row is None:
                raise RuntimeError("audit log has no head; it was not initialized or the head was deleted")
            entry, head = build(AuditHead(row["seq"], bytes(row["entry_hash"]), bytes(row["signature"]), row["key_id"]))
            await conn.execute(
                "INSERT INTO audit_log (seq, payload, prev_hash, entry_hash, signature, key_id) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                entry.seq, entry.payload, entry.prev_hash, entry.entry_hash, entry.signature, entry.key_id,
            )
            await conn.execute(
                "UPDATE audit_head SET seq = $1, entry_hash = $2, signature = $3, key_id = $4 WHERE id = 1",
                head.seq, head.entry_hash, head.signature, head.key_id,
            )
            return entry

    async def head(self) -> AuditHead | None:
        """The stored head."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT seq, entry_hash, signature, key_id FROM audit_head WHERE id = 1")
        if row is None:
            return None
        return AuditHead(row["seq"], bytes(row["entry_hash"]), bytes(row["signature"]), row["key_id"])

    async def entries(self) -> list[AuditEntry]:
        """Every entry, ascending seq."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT seq, payload, prev_hash, entry_hash, signature, key_id FROM audit_log ORDER BY seq"
            )
        return [
            AuditEntry(r["seq"], r["payload"], bytes(r["prev_hash"]), bytes(r["entry_hash"]), bytes(r["signature"]),
                       r["key_id"])
            for r in rows
        ]


async def _verify_postgres(
    dsn: str, schema: str, public_keys: Sequence[str], expect_min_seq: int
) -> VerificationReport:
    import asyncpg

    verifier = AuditVerifier(public_keys)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        pool = _SingleConnection(conn)
        store = PostgresAuditStore(pool)
        return verify_chain(await store.entries(), await store.head(), verifier, expect_min_seq=expect_min_seq)
    finally:
        await conn.close()


class _SingleConnection:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def acquire(self) -> _Borrowed:
        return _Borrowed(self._conn)


class _Borrowed:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def __aenter__(self) -> Any:
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m services.platform.audit`` command; returns the exit status (1 when the log is broken)."""
    parser = argparse.ArgumentParser(prog="python -m services.platform.audit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("keygen", help="print a new audit signing seed and its public key")
    check = commands.add_parser("verify", help="verify a PostgreSQL audit log; report the first broken entry")
    check.add_argument("--dsn", required=True, help="PostgreSQL DSN")
    check.add_argument("--schema", required=True, help="schema holding audit_log and audit_head")
    check.add_argument("--public-key", action="append", required=True, help="base64 Ed25519 public key (repeatable)")
    check.add_argument("--expect-min-seq", type=int, default=0, help="a head seq seen earlier outside the database")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        signer = AuditSigner.generate()
        print(f"seed (secret):  {signer.seed_b64()}")
        print(f"public key:     {signer.public_key_b64()}")
        return 0
    report = asyncio.run(_verify_postgres(args.dsn, args.schema, args.public_key, args.expect_min_seq))
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
