"""Who may act on which user: the rules every RPC on user data applies to the verified identity."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.user.domain.errors import (
    FieldInvalid,
    FieldRequired,
    LastAdmin,
    PageTokenInvalid,
    RoleRequired,
    UserNotFound,
)
from services.user.domain.model import Identity, Role

__all__ = ["ME", "UserCursor", "UserPageRequest", "check_role_change", "require_admin", "target_user_id"]

ME = "me"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def canonical_user_id(user_id: str) -> str | None:
    """The canonical (lower-case, hyphenated) form of a UUID user id, or None if it is not one."""
    try:
        return str(uuid.UUID(user_id))
    except ValueError:
        return None


def target_user_id(identity: Identity, user_id: str, *, field: str = "user_id") -> str:
    """Resolve the user an RPC names, enforcing that non-admins name only themselves.

    Another user's id from a non-admin answers exactly like a missing user (``UserNotFound``), so a caller
    cannot probe which accounts exist.

    Args:
        identity: The verified caller.
        user_id: The id in the request, or ``"me"``.
        field: The request field, for errors.

    Raises:
        FieldRequired: ``user_id`` is empty.
        UserNotFound: not a UUID, or another user's id and the caller is not an admin.
    """
    raw = user_id.strip()
    if not raw:
        raise FieldRequired(field)
    if raw == ME:
        return identity.user_id
    canonical = canonical_user_id(raw)
    if canonical is None or (canonical != identity.user_id and not identity.is_admin):
        raise UserNotFound(raw[:64])
    return canonical


def require_admin(identity: Identity) -> None:
    """Raise ``RoleRequired`` unless the caller is an admin."""
    if not identity.is_admin:
        raise RoleRequired(Role.ADMIN.value)


def check_role_change(actor: Identity, target: str, roles: Iterable[Role]) -> frozenset[Role]:
    """Validate a new role set for ``target`` chosen by the admin ``actor``.

    Raises:
        FieldRequired: ``roles`` is empty.
        LastAdmin: the admin would remove their own admin role.
    """
    new_roles = frozenset(roles)
    if not new_roles:
        raise FieldRequired("roles", "must name at least one role")
    if actor.user_id == target and Role.ADMIN not in new_roles:
        raise LastAdmin()
    return new_roles


@dataclass(frozen=True, slots=True)
class UserCursor:
    """Position after the last user of a page (users are ordered by creation time, then id)."""

    created_at: datetime
    user_id: str


@dataclass(frozen=True, slots=True)
class UserPageRequest:
    """A validated ListUsers query.

    Attributes:
        page_size: Users per page (1..500).
        email_prefix: Lower-cased prefix filter, empty for all.
        after: Where the page starts, or None for the first page.
    """

    page_size: int
    email_prefix: str
    after: UserCursor | None

    @classmethod
    def parse(cls, page_size: int, page_token: str, email_prefix: str) -> UserPageRequest:
        """Validate the request fields of ListUsers.

        Raises:
            FieldInvalid: ``page_size`` is negative.
            PageTokenInvalid: ``page_token`` is malformed or was issued for another ``email_prefix``.
        """
        if page_size < 0:
            raise FieldInvalid("page_size", "must not be negative")
        size = DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
        prefix = email_prefix.strip().lower()
        after = None
        if page_token:
            after = _decode_token(page_token, prefix)
        return cls(size, prefix, after)

    def next_token(self, last: UserCursor) -> str:
        """The page token that continues after ``last`` under the same filter."""
        body = {"t": last.created_at.isoformat(), "u": last.user_id, "p": self.email_prefix}
        return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str, prefix: str) -> UserCursor:
    invalid = PageTokenInvalid("page_token", "was not issued for this query")
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created_at = datetime.fromisoformat(body["t"])
        user_id = body["u"]
        issued_prefix = body["p"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise invalid from None
    if (
        not isinstance(user_id, str)
        or canonical_user_id(user_id) != user_id
        or issued_prefix != prefix
        or created_at.tzinfo is None
    ):
        raise invalid
    return UserCursor(created_at, user_id)
