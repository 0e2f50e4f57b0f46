"""The latest-value cache port, with an in-process implementation (embedded mode) and a Redis one.

A latest-value cache holds the newest value of each key in a namespace (the last quote of each symbol, say)
and nothing else: a write replaces, a read returns what is there or nothing. It is never the only record of
anything; values may carry a time-to-live so a stale value disappears instead of being served forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

__all__ = ["CacheError", "InProcessCache", "LatestValueCache", "RedisCache"]


class CacheError(Exception):
    """The cache backend failed (connection lost, timeout)."""


def _check_namespace(namespace: str) -> None:
    if not namespace or ":" in namespace:
        raise ValueError(f"invalid cache namespace {namespace!r}: non-empty, without ':'")


class LatestValueCache(Protocol):
    """Newest value per key, per namespace."""

    async def put_many(self, namespace: str, values: Mapping[str, bytes]) -> None:
        """Store every value, replacing what each key held."""
        ...

    async def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        """Return the values held for `keys`; keys with no (or an expired) value are left out."""
        ...

    async def delete_many(self, namespace: str, keys: Iterable[str]) -> None:
        """Forget the given keys."""
        ...

    async def ping(self) -> bool:
        """Tell whether the backend answers."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


class InProcessCache:
    """A `LatestValueCache` in a dict, with the same time-to-live behaviour as the Redis adapter."""

    def __init__(self, *, ttl_seconds: float | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._data: dict[str, dict[str, tuple[bytes, float]]] = {}

    async def put_many(self, namespace: str, values: Mapping[str, bytes]) -> None:
        _check_namespace(namespace)
        expires = self._monotonic() + self._ttl if self._ttl is not None else float("inf")
        table = self._data.setdefault(namespace, {})
        for key, value in values.items():
            table[key] = (bytes(value), expires)

    async def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        _check_namespace(namespace)
        table = self._data.get(namespace, {})
        now = self._monotonic()
        found: dict[str, bytes] = {}
        for key in keys:
            entry = table.get(key)
            if entry is None:
                continue
            if entry[1] <= now:
                del table[key]
                continue
            found[key] = entry[0]
        return found

    async def delete_many(self, namespace: str, keys: Iterable[str]) -> None:
        _check_namespace(namespace)
        table = self._data.get(namespace, {})
        for key in keys:
            table.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """A `LatestValueCache` on Redis: one string key per entry, `<prefix>:<namespace>:<key>`.

    Writes go in one pipelined round trip (`SET ... PX ttl` per key, or `MSET` without a TTL); reads are
    one `MGET`.
    """

    def __init__(self, client: Any, *, prefix: str, ttl_seconds: float | None = None) -> None:
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        if not prefix or ":" in prefix:
            raise ValueError(f"invalid cache prefix {prefix!r}")
        self._client = client
        self._prefix = prefix
        self._ttl_ms = int(ttl_seconds * 1000) if ttl_seconds is not None else None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        prefix: str = "tastyplat",
        ttl_seconds: float | None = None,
        timeout: float = 5.0,
    ) -> RedisCache:
        """Connect to Redis at `url` (redis://host:port/db) and check that it answers.

        Raises:
            CacheError: Redis cannot be reached.
        """
        import redis.asyncio as redis_asyncio
        from redis.exceptions import RedisError

        client = redis_asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            await client.ping()
        except (RedisError, OSError) as error:
            await client.aclose()
            raise CacheError(f"cannot connect to Redis: {error}") from error
        return cls(client, prefix=prefix, ttl_seconds=ttl_seconds)

    def _key(self, namespace: str, key: str) -> str:
        return f"{self._prefix}:{namespace}:{key}"

    async def put_many(self, namespace: str, values: Mapping[str, bytes]) -> None:
        from redis.exceptions import RedisError

        _check_namespace(namespace)
        if not values:
            return
        try:
            if self._ttl_ms is None:
                await self._client.mset({self._key(namespace, k): v for k, v in values.items()})
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in values.items():
                    pipe.set(self._key(namespace, key), value, px=self._ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as error:
            raise CacheError(f"redis write failed: {error}") from error

    async def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        from redis.exceptions import RedisError

        _check_namespace(namespace)
        key_list = list(dict.fromkeys(keys))
        if not key_list:
            return {}
        try:
            values = await self._client.mget([self._key(namespace, k) for k in key_list])
        except (RedisError, OSError) as error:
            raise CacheError(f"redis read failed: {error}") from error
        return {key: value for key, value in zip(key_list, values, strict=True) if value is not None}

    async def delete_many(self, namespace: str, keys: Iterable[str]) -> None:
        from redis.exceptions import RedisError

        _check_namespace(namespace)
        names = [self._key(namespace, k) for k in keys]
        if not names:
            return
        try:
            await self._client.delete(*names)
        except (RedisError, OSError) as error:
            raise CacheError(f"redis delete failed: {error}") from error

    async def ping(self) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._client.aclose()
