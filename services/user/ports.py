"""Ports of the user service: the Protocols its adapters implement (storage, hashing, keys, delivery)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.user.domain.access import UserPageRequest
from services.user.domain.keys import SigningKey
from services.user.domain.model import User
from services.user.domain.preferences import NotificationPreferences
from services.user.domain.sessions import RefreshToken, RevokeReason, Session
from services.user.domain.throttle import FailureRecord, ThrottlePolicy
from services.user.domain.verification import ContactChannel, PasswordResetTicket, VerificationChallenge

__all__ = [
    "AccessTokenCodec",
    "AuditTrail",
    "Clock",
    "CodePurpose",
    "CodeSender",
    "KeyFactory",
    "OutboundCode",
    "PasswordHasher",
    "ResetTicketRepository",
    "SecretSource",
    "SessionRepository",
    "SigningKeyStore",
    "ThrottleStore",
    "UserEvents",
    "UserRepository",
    "VerificationRepository",
]


class Clock(Protocol):
    """The current time (a manual clock in tests)."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        ...


class SecretSource(Protocol):
    """Unpredictable ids, tokens and codes (``secrets`` in production, seeded in tests)."""

    def new_id(self) -> str:
        """Return a new random UUID (canonical text)."""
        ...

    def token(self) -> str:
        """Return an opaque URL-safe token carrying 256 random bits."""
        ...

    def numeric_code(self, digits: int) -> str:
        """Return a uniformly random code of ``digits`` decimal digits."""
        ...


class PasswordHasher(Protocol):
    """A slow, salted password hash (argon2id)."""

    async def hash(self, password: str) -> str:
        """Return the PHC-format hash of ``password``."""
        ...

    async def verify(self, password_hash: str, password: str) -> bool:
        """Tell whether ``password`` matches ``password_hash`` (False for a malformed hash)."""
        ...

    def needs_rehash(self, password_hash: str) -> bool:
        """Tell whether the hash was made with weaker parameters than the current ones."""
        ...


class UserRepository(Protocol):
    """Users and their notification preferences.

    Deleting a user deletes everything of theirs: preferences, sessions, tokens, challenges, tickets.
    Any method may raise ``DatabaseUnavailable``.
    """

    async def add(self, user: User, preferences: NotificationPreferences) -> None:
        """Store a new user with their preferences.

        Raises:
            EmailTaken: a user with ``user.email`` exists.
        """
        ...

    async def get(self, user_id: str) -> User | None:
        """Return the user, or None."""
        ...

    async def get_by_email(self, email: str) -> User | None:
        """Return the user with this canonical login address, or None."""
        ...

    async def get_by_request_id(self, request_id: str) -> User | None:
        """Return the user created by the CreateUser call with this idempotency key, or None."""
        ...

    async def update(self, user: User) -> bool:
        """Replace a user's mutable fields (roles, password hash, verification); False if it is gone."""
        ...

    async def delete(self, user_id: str) -> bool:
        """Delete a user and everything of theirs; False if there was none."""
        ...

    async def list_page(self, page: UserPageRequest) -> list[User]:
        """Return up to ``page.page_size + 1`` users after ``page.after`` matching ``page.email_prefix``.

        Users come in creation order, ties broken by id; the extra one tells whether a next page exists.
        """
        ...

    async def get_preferences(self, user_id: str) -> NotificationPreferences | None:
        """Return the user's preferences, or None if the user does not exist."""
        ...

    async def save_preferences(self, user_id: str, preferences: NotificationPreferences) -> bool:
        """Replace the user's preferences; False if the user does not exist."""
        ...


class SessionRepository(Protocol):
    """Sessions (refresh-token families) and their tokens, by token hash."""

    async def open(self, session: Session, first: RefreshToken) -> None:
        """Store a new session with its first token."""
        ...

    async def find(self, token_hash: bytes) -> tuple[RefreshToken, Session] | None:
        """Return the token with this hash and its session, or None."""
        ...

    async def get_session(self, session_id: str) -> Session | None:
        """Return the session, or None."""
        ...

    async def rotate(self, used: RefreshToken, successor: RefreshToken, at: datetime) -> bool:
        """Atomically mark ``used`` used at ``at`` and store ``successor``, if ``used`` is still unused.

        Returns:
            False if another caller used the token first (the caller then treats it as reuse).
        """
        ...

    async def revoke(self, session_id: str, at: datetime, reason: RevokeReason) -> bool:
        """Revoke a session (idempotent); False if it does not exist."""
        ...

    async def revoke_all(self, user_id: str, at: datetime, reason: RevokeReason) -> int:
        """Revoke every active session of a user; return how many were active."""
        ...

    async def purge(self, before: datetime) -> int:
        """Delete sessions that ended (expired or revoked) before ``before``; return how many."""
        ...


class ThrottleStore(Protocol):
    """Failure records for throttle keys, updated atomically across replicas."""

    async def get(self, key: str) -> FailureRecord | None:
        """Return the record of ``key``, or None."""
        ...

    async def record_failure(self, key: str, policy: ThrottlePolicy, now: datetime) -> FailureRecord:
        """Apply ``policy.after_failure`` to the record of ``key`` atomically and return the new record."""
        ...

    async def clear(self, key: str) -> None:
        """Forget the record of ``key``."""
        ...


class VerificationRepository(Protocol):
    """Verification challenges for contact points."""

    async def add(self, challenge: VerificationChallenge) -> None:
        """Store a new challenge."""
        ...

    async def latest(self, user_id: str, channel: ContactChannel) -> VerificationChallenge | None:
        """Return the newest challenge of this user and channel, or None."""
        ...

    async def save_attempt(self, before: VerificationChallenge, after: VerificationChallenge) -> bool:
        """Store ``after`` if the stored challenge still equals ``before`` (attempts, consumption); else False."""
        ...

    async def sends_since(self, destination: str, since: datetime) -> list[datetime]:
        """Return when codes were sent to ``destination`` (by anyone) since ``since``."""
        ...


class ResetTicketRepository(Protocol):
    """One-time password reset tickets, by token hash."""

    async def add(self, ticket: PasswordResetTicket) -> None:
        """Store a new ticket."""
        ...

    async def find(self, token_hash: bytes) -> PasswordResetTicket | None:
        """Return the ticket with this hash, or None."""
        ...

    async def latest_for_user(self, user_id: str) -> PasswordResetTicket | None:
        """Return the user's newest ticket, or None."""
        ...

    async def consume(self, token_hash: bytes, at: datetime) -> bool:
        """Mark the ticket used at ``at`` if it is unused; False if it was used (or is gone)."""
        ...


class SigningKeyStore(Protocol):
    """Persistent access-token signing keys, shared by all replicas (private keys encrypted at rest)."""

    async def list_keys(self) -> list[SigningKey]:
        """Return every stored key."""
        ...

    async def add(self, key: SigningKey) -> None:
        """Store a new key."""
        ...

    async def delete(self, kids: Sequence[str]) -> None:
        """Delete the keys named."""
        ...


class KeyFactory(Protocol):
    """Generates signing key pairs."""

    def generate(self, kid: str, created_at: datetime, activates_at: datetime) -> SigningKey:
        """Return a new key pair with this ``kid`` and schedule."""
        ...


class AccessTokenCodec(Protocol):
    """Signs and verifies JWT access tokens (the JOSE part; times and claim types are checked by the domain)."""

    def encode(self, payload: Mapping[str, object], key: SigningKey) -> str:
        """Return the compact JWS of ``payload`` signed by ``key`` with its ``kid`` and ``typ`` headers."""
        ...

    def key_id(self, token: str) -> str:
        """Return the ``kid`` of an unverified token.

        Raises:
            AuthenticationRequired: the token is not a well-formed JWS with a string ``kid``.
        """
        ...

    def decode(self, token: str, key: SigningKey, *, issuer: str, audience: str) -> Mapping[str, object]:
        """Verify the signature (with ``key``'s algorithm only), ``typ``, ``iss`` and ``aud``; return the payload.

        Raises:
            AuthenticationRequired: any check fails.
        """
        ...


class CodePurpose(enum.Enum):
    """Why a one-time code is sent."""

    CONTACT_VERIFICATION = "contact_verification"
    PASSWORD_RESET = "password_reset"


@dataclass(frozen=True, slots=True)
class OutboundCode:
    """A one-time code to deliver: the only message an unverified contact may receive.

    Attributes:
        channel: SMS or e-mail.
        destination: The phone number or e-mail address.
        purpose: Contact verification or password reset.
        code: The code or token itself (secret; never logged).
        expires_at: When it stops working.
        user_id: Whose code it is.
    """

    channel: ContactChannel
    destination: str
    purpose: CodePurpose
    code: str = field(repr=False)
    expires_at: datetime
    user_id: str


class CodeSender(Protocol):
    """Delivers one-time codes (verification codes, reset tokens)."""

    async def send(self, message: OutboundCode) -> None:
        """Deliver ``message``; raise if it could not be handed over."""
        ...


class UserEvents(Protocol):
    """Announces changes other services act on (the notification service stops delivering to a deleted user)."""

    async def user_deleted(self, user_id: str, at: datetime) -> None:
        """Announce that a user and all their data are gone."""
        ...


class AuditTrail(Protocol):
    """The append-only, tamper-evident log of security events."""

    async def record(
        self,
        event: str,
        *,
        actor: str | None,
        subject: str | None,
        details: Mapping[str, str | int | bool | None] | None = None,
    ) -> None:
        """Append one event.

        Args:
            event: Dotted event name, e.g. ``"login.failed"``.
            actor: Who did it (user id), or None for an anonymous caller.
            subject: Whom it concerns (user id), or None.
            details: Non-secret facts (reason, client address, role names...).
        """
        ...
