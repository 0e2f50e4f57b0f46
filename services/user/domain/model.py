"""Users, roles and the verified identity of a caller."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.user.domain.errors import EmailInvalid, FieldRequired

__all__ = ["Identity", "Role", "User", "normalize_email"]

MAX_EMAIL_LENGTH = 254
# Deliberately loose (RFC 5321 sizes, one @, a dotted domain, no spaces or control characters): the only
# real proof that an address works is the verification code sent to it.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


class Role(enum.Enum):
    """What a user may do; a user holds one or more."""

    TRADER = "trader"
    ADMIN = "admin"
    READONLY = "readonly"


def normalize_email(raw: str, *, field_name: str = "email") -> str:
    """Return the canonical form of an e-mail address (trimmed, lower-cased).

    Args:
        raw: The address as given.
        field_name: The request field it came from, for the error.

    Raises:
        FieldRequired: ``raw`` is empty.
        EmailInvalid: ``raw`` is not a plausible address.
    """
    email = raw.strip().lower()
    if not email:
        raise FieldRequired(field_name)
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise EmailInvalid(field_name, "is not a valid e-mail address")
    return email


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in to the platform.

    Attributes:
        user_id: Server-assigned UUID.
        email: Canonical login e-mail address (see ``normalize_email``).
        password_hash: The argon2id hash (PHC string); never the password.
        roles: The user's roles, never empty.
        email_verified: Whether the owner proved they read mail at ``email``.
        created_at: Sign-up time.
        updated_at: Last change.
        create_request_id: The idempotency key of the sign-up, if the client sent one.
    """

    user_id: str
    email: str
    password_hash: str = field(repr=False)
    roles: frozenset[Role]
    email_verified: bool
    created_at: datetime
    updated_at: datetime
    create_request_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the user holds the admin role."""
        return Role.ADMIN in self.roles

    def with_roles(self, roles: frozenset[Role], at: datetime) -> User:
        """Return the user with ``roles`` instead of the current ones."""
        return replace(self, roles=roles, updated_at=at)

    def with_password_hash(self, password_hash: str, at: datetime) -> User:
        """Return the user with a new password hash."""
        return replace(self, password_hash=password_hash, updated_at=at)

    def with_email_verified(self, at: datetime) -> User:
        """Return the user with the login address marked verified."""
        return replace(self, email_verified=True, updated_at=at)


@dataclass(frozen=True, slots=True)
class Identity:
    """The verified caller of an RPC, taken from a signature-checked access token.

    Attributes:
        user_id: The token's ``sub``.
        roles: The token's ``roles``.
        session_id: The refresh-token family the token was issued for (``sid``).
        token_id: The token's ``jti``.
        expires_at: The token's ``exp``.
    """

    user_id: str
    roles: frozenset[Role]
    session_id: str
    token_id: str
    expires_at: datetime

    @property
    def is_admin(self) -> bool:
        """Whether the caller holds the admin role."""
        return Role.ADMIN in self.roles
