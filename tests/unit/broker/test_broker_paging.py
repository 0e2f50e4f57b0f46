"""Keyset page tokens: stable across inserts, bound to their query, refused when forged."""

from __future__ import annotations

import pytest

from services.broker.domain.errors import FieldInvalid, PageTokenInvalid
from services.broker.domain.paging import PageSize, paginate, query_digest


def _key(item: tuple[str, int]) -> tuple[str, int]:
    return item


def test_pages_cover_every_item_once() -> None:
    items = [(f"2024-01-{d:02d}", i) for i, d in enumerate(range(30, 0, -1))]
    digest = query_digest("q")
    seen, token = [], ""
    while True:
        page = paginate(items, sort_key=_key, page_size=7, page_token=token, digest=digest, descending=True)
        seen += page.items
        token = page.next_page_token
        if not token:
            break
    assert seen == items


def test_new_item_at_the_top_does_not_shift_later_pages() -> None:
    items = [("b", 3), ("b", 2), ("a", 1), ("a", 0)]
    digest = query_digest("q")
    first = paginate(items, sort_key=_key, page_size=2, page_token="", digest=digest, descending=True)
    grown = [("c", 9), *items]
    second = paginate(grown, sort_key=_key, page_size=2, page_token=first.next_page_token, digest=digest, descending=True)
    assert second.items == [("a", 1), ("a", 0)]


def test_token_from_another_query_is_refused() -> None:
    items = [("a", 1), ("b", 2), ("c", 3)]
    page = paginate(items, sort_key=_key, page_size=1, page_token="", digest=query_digest("one"))
    with pytest.raises(PageTokenInvalid):
        paginate(items, sort_key=_key, page_size=1, page_token=page.next_page_token, digest=query_digest("two"))


@pytest.mark.parametrize("token", ["not-base64!", "e30", "eyJxIjoxfQ"])
def test_garbage_tokens_are_refused(token: str) -> None:
    with pytest.raises(PageTokenInvalid):
        paginate([("a", 1)], sort_key=_key, page_size=1, page_token=token, digest=query_digest("q"))


def test_page_size_zero_means_default_and_is_capped() -> None:
    sizes = PageSize(default=50, maximum=500)
    assert sizes.resolve(0) == 50 and sizes.resolve(10_000) == 500 and sizes.resolve(7) == 7
    with pytest.raises(FieldInvalid):
        sizes.resolve(-1)
