"""Keyset pagination over sorted lists: opaque page tokens bound to the query that issued them.

A token carries the sort key of the last item served and a digest of the query; the next page starts after
that key, so items arriving between calls (a new transaction at the top) neither repeat nor vanish.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.broker.domain.errors import FieldInvalid, PageTokenInvalid

T = TypeVar("T")
SortKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class PageSize:
    """A list RPC's page size rule: 0 means ``default``, above ``maximum`` reads as ``maximum``."""

    default: int
    maximum: int

    def resolve(self, requested: int) -> int:
        """The page size to serve for a request's ``page_size``.

        Raises:
            FieldInvalid: ``requested`` is negative.
        """
        if requested < 0:
            raise FieldInvalid("page_size", f"page_size must be >= 0, got {requested}")
        return self.default if requested == 0 else min(requested, self.maximum)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page and the token for the next ("" when this is the last)."""

    items: list[T]
    next_page_token: str


def query_digest(*parts: object) -> str:
    """A short digest of the query parameters a token is bound to."""
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def _encode(digest: str, key: SortKey) -> str:
    raw = json.dumps({"q": digest, "k": list(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, digest: str) -> SortKey:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise PageTokenInvalid() from exc
    if not isinstance(body, dict) or body.get("q") != digest or not isinstance(body.get("k"), list):
        raise PageTokenInvalid()
    key = body["k"]
    if not all(isinstance(part, (str, int)) and not isinstance(part, bool) for part in key):
        raise PageTokenInvalid()
    return tuple(key)


def paginate(
    items: Sequence[T],
    *,
    sort_key: Callable[[T], SortKey],
    page_size: int,
    page_token: str,
    digest: str,
    descending: bool = False,
) -> Page[T]:
    """Serve one page of ``items`` (already sorted by ``sort_key``, ascending or descending).

    Raises:
        PageTokenInvalid: the token is malformed or was issued for another query.
    """
    start = 0
    if page_token:
        after = _decode(page_token, digest)
        start = len(items)
        try:
            for index, item in enumerate(items):
                key = sort_key(item)
                if (key < after) if descending else (key > after):
                    start = index
                    break
        except TypeError as exc:  # a token whose key parts have the wrong types
            raise PageTokenInvalid() from exc
    page = list(items[start : start + page_size])
    more = start + page_size < len(items)
    return Page(page, _encode(digest, sort_key(page[-1])) if more and page else "")
