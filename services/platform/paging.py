"""Page tokens for List RPCs: an opaque, URL-safe encoding of the cursor plus a fingerprint of its query."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from services.platform.errors import FieldViolation, InvalidArgument

__all__ = ["PageSizeInvalid", "PageTokenInvalid", "decode_token", "encode_token", "page_size"]


class PageSizeInvalid(InvalidArgument):
    """``page_size`` is negative."""

    reason = "FIELD_INVALID"

    def __init__(self) -> None:
        """Name the field in a BadRequest violation."""
        super().__init__(
            "page_size: must not be negative",
            field_violations=[FieldViolation("page_size", "must not be negative", self.reason)],
        )


class PageTokenInvalid(InvalidArgument):
    """A page token is malformed or was issued for other filters."""

    reason = "PAGE_TOKEN_INVALID"

    def __init__(self) -> None:
        """Name the field in a BadRequest violation."""
        super().__init__(
            "page_token: was not issued for this query",
            field_violations=[FieldViolation("page_token", "was not issued for this query", self.reason)],
        )


def page_size(requested: int, *, default: int, maximum: int) -> int:
    """The page size a request asks for: 0 means ``default``; larger than ``maximum`` reads as ``maximum``.

    Raises:
        PageSizeInvalid: ``requested`` is negative.
    """
    if requested < 0:
        raise PageSizeInvalid()
    return default if requested == 0 else min(requested, maximum)


def _fingerprint(query: Mapping[str, Any]) -> str:
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_token(cursor: Mapping[str, Any], query: Mapping[str, Any]) -> str:
    """A token continuing after ``cursor`` for the same ``query`` filters."""
    body = {"c": dict(cursor), "q": _fingerprint(query)}
    raw = json.dumps(body, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, query: Mapping[str, Any]) -> dict[str, Any]:
    """Return the cursor of a token issued for ``query``.

    Raises:
        PageTokenInvalid: the token is malformed or was issued for other filters.
    """
    invalid = PageTokenInvalid()
    if len(token) > 2048:
        raise invalid
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(body, dict) or body.get("q") != _fingerprint(query) or not isinstance(body.get("c"), dict):
        raise invalid
    return dict(body["c"])
