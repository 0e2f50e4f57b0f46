"""Sessions: families of opaque refresh tokens, rotated on every use, with reuse detection.

Theory of operation: a login opens a session (a *family*) and issues its first refresh token. Each refresh
presents the newest token of the family; the token is marked used and a successor is issued in the same
family, so at any moment one token of a family is live. A used token that comes back means two parties hold
the family (the legitimate client and a thief, in unknown order), so the whole family is revoked and both
must log in again (RFC 9700, refresh token rotation). Two concurrent refreshes with the same token are the
same thing from the server's point of view: the second one revokes the family. Tokens are stored as their
SHA-256 only; a stolen database holds no usable token.

Transitions of a presented token (``judge``)::

    family            token                      verdict   effect
    ----------------  -------------------------  --------  -------------------------------------------
    revoked           any                        REVOKED   none (REFRESH_TOKEN_INVALID)
    past max lifetime any                        EXPIRED   none (REFRESH_TOKEN_INVALID)
    active            used                       REUSED    revoke family (REFRESH_TOKEN_REUSED)
    active            unused, past expiry        EXPIRED   none (REFRESH_TOKEN_INVALID)
    active            unused, not expired        ROTATE    mark used, issue successor in the family
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

__all__ = [
    "RefreshToken",
    "RefreshVerdict",
    "RevokeReason",
    "Session",
    "SessionPolicy",
    "hash_token",
    "judge",
]


def hash_token(token: str) -> bytes:
    """Return the SHA-256 of an opaque token: what the database stores and looks tokens up by.

    A fast hash is right here (unlike passwords): the tokens are 256 random bits, not guessable.
    """
    return hashlib.sha256(token.encode("utf-8")).digest()


class RevokeReason(enum.Enum):
    """Why a session ended before its time."""

    LOGOUT = "logout"
    LOGOUT_ALL = "logout_all"
    REUSE_DETECTED = "reuse_detected"
    PASSWORD_RESET = "password_reset"
    USER_DELETED = "user_deleted"


class RefreshVerdict(enum.Enum):
    """What to do with a presented refresh token (see the module's table)."""

    ROTATE = "rotate"
    REUSED = "reused"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Session:
    """A family of refresh tokens born from one login.

    Attributes:
        session_id: UUID of the family; access tokens carry it as ``sid``.
        user_id: The owner.
        created_at: Login time.
        expires_at: Absolute end: no refresh extends a session past it.
        revoked_at: When it was revoked, or None while active.
        revoke_reason: Why it was revoked.
    """

    session_id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoke_reason: RevokeReason | None = None

    def is_active(self, now: datetime) -> bool:
        """Whether tokens of this session may still be used at ``now``."""
        return self.revoked_at is None and now < self.expires_at

    def revoked(self, at: datetime, reason: RevokeReason) -> Session:
        """Return the session revoked at ``at`` (an already revoked session keeps its first reason)."""
        if self.revoked_at is not None:
            return self
        return replace(self, revoked_at=at, revoke_reason=reason)


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One refresh token of a session, known by its hash.

    Attributes:
        token_hash: ``hash_token`` of the opaque token.
        session_id: The family it belongs to.
        user_id: The owner.
        issued_at: When it was issued.
        expires_at: When it stops working if unused.
        used_at: When it was exchanged for its successor, or None.
    """

    token_hash: bytes
    session_id: str
    user_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Lifetimes of tokens and sessions.

    Attributes:
        access_token_ttl: Lifetime of a JWT access token (short: it cannot be revoked at the gateway).
        refresh_token_ttl: How long an unused refresh token stays valid (idle timeout).
        session_max_lifetime: Absolute lifetime of a session, whatever the refreshes.
    """

    access_token_ttl: timedelta = timedelta(minutes=10)
    refresh_token_ttl: timedelta = timedelta(days=14)
    session_max_lifetime: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        for name in ("access_token_ttl", "refresh_token_ttl", "session_max_lifetime"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")

    def open_session(self, session_id: str, user_id: str, now: datetime) -> Session:
        """Return a new active session for ``user_id``."""
        return Session(session_id, user_id, created_at=now, expires_at=now + self.session_max_lifetime)

    def issue(self, session: Session, token_hash: bytes, now: datetime) -> RefreshToken:
        """Return a new refresh token of ``session``, never outliving the session."""
        expires_at = min(now + self.refresh_token_ttl, session.expires_at)
        return RefreshToken(token_hash, session.session_id, session.user_id, issued_at=now, expires_at=expires_at)


def judge(token: RefreshToken, session: Session, now: datetime) -> RefreshVerdict:
    """Decide what a presented refresh token gets (the table in the module docstring)."""
    if session.revoked_at is not None:
        return RefreshVerdict.REVOKED
    if now >= session.expires_at:
        return RefreshVerdict.EXPIRED
    if token.used_at is not None:
        return RefreshVerdict.REUSED
    if now >= token.expires_at:
        return RefreshVerdict.EXPIRED
    return RefreshVerdict.ROTATE
