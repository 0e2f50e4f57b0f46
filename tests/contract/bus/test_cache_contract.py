"""One contract for every LatestValueCache: the in-process cache and Redis must behave the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from services.platform.cache import InProcessCache, LatestValueCache, RedisCache

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _make(kind: str, ttl: float | None) -> tuple[LatestValueCache, str]:
    prefix = f"test{uuid.uuid4().hex[:12]}"
    if kind == "in_process":
        return InProcessCache(ttl_seconds=ttl), prefix
    return await RedisCache.connect(REDIS_URL, prefix=prefix, ttl_seconds=ttl), prefix


async def _cleanup(cache: LatestValueCache, prefix: str) -> None:
    if isinstance(cache, RedisCache):
        client = cache._client
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    await cache.close()


@pytest.fixture(params=["in_process", pytest.param("redis", marks=pytest.mark.integration)])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def cache(kind: str) -> AsyncIterator[LatestValueCache]:
    made, prefix = await _make(kind, None)
    yield made
    await _cleanup(made, prefix)


async def test_get_returns_latest_value_written(cache: LatestValueCache) -> None:
    await cache.put_many("quotes", {"SPY": b"1"})
    await cache.put_many("quotes", {"SPY": b"2", "QQQ": b"3"})
    assert await cache.get_many("quotes", ["SPY", "QQQ"]) == {"SPY": b"2", "QQQ": b"3"}


async def test_missing_keys_are_left_out(cache: LatestValueCache) -> None:
    await cache.put_many("quotes", {"SPY": b"1"})
    assert await cache.get_many("quotes", ["SPY", "NOPE"]) == {"SPY": b"1"}


async def test_namespaces_are_separate(cache: LatestValueCache) -> None:
    await cache.put_many("quotes", {"SPY": b"q"})
    await cache.put_many("greeks", {"SPY": b"g"})
    assert await cache.get_many("greeks", ["SPY"]) == {"SPY": b"g"}


async def test_delete_forgets_keys(cache: LatestValueCache) -> None:
    await cache.put_many("quotes", {"SPY": b"1", "QQQ": b"2"})
    await cache.delete_many("quotes", ["SPY"])
    assert await cache.get_many("quotes", ["SPY", "QQQ"]) == {"QQQ": b"2"}


async def test_binary_values_round_trip(cache: LatestValueCache) -> None:
    value = bytes(range(256))
    await cache.put_many("blobs", {"k": value})
    assert (await cache.get_many("blobs", ["k"]))["k"] == value


async def test_empty_reads_and_writes_are_no_ops(cache: LatestValueCache) -> None:
    await cache.put_many("quotes", {})
    assert await cache.get_many("quotes", []) == {}


async def test_ping_answers(cache: LatestValueCache) -> None:
    assert await cache.ping()


@pytest.mark.parametrize("namespace", ["", "a:b"])
async def test_invalid_namespace_is_rejected(cache: LatestValueCache, namespace: str) -> None:
    with pytest.raises(ValueError):
        await cache.put_many(namespace, {"k": b"v"})


async def test_value_expires_after_ttl(kind: str) -> None:
    cache, prefix = await _make(kind, 0.2)
    try:
        await cache.put_many("quotes", {"SPY": b"1"})
        assert await cache.get_many("quotes", ["SPY"]) == {"SPY": b"1"}
        await asyncio.sleep(0.35)
        assert await cache.get_many("quotes", ["SPY"]) == {}
    finally:
        await _cleanup(cache, prefix)
