"""Publisher leases: which market data replica publishes ticks on the bus.

`PostgresPublisherLease` holds a session-level PostgreSQL advisory lock on a connection of its own. The
server releases the lock the moment that connection ends, so a replica that is killed (SIGKILL, OOM, node
loss: the kernel closes its socket) hands the lease over at the next `hold` of another replica, with no
expiry to wait out. A replica that loses its connection stops publishing at once (its `hold` fails) and
competes again once it reconnects. During a network partition between a replica and the database both may
publish for a moment; consumers of the ticks must tolerate an occasional repeated update (they do: a tick is
a latest value, not an event to count).
"""

from __future__ import annotations

import hashlib
import logging

import asyncpg

from services.platform import telemetry

__all__ = ["PostgresPublisherLease", "lock_key"]

log = logging.getLogger("tastyplat.marketdata.publisher")

_PUBLISHER = telemetry.gauge(
    "marketdata_bus_publisher", "1 while this replica holds the publisher lease and publishes ticks on the bus"
)


def lock_key(name: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of a lease name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PostgresPublisherLease:
    """A `PublisherLease` on a PostgreSQL advisory lock (see the module docstring)."""

    def __init__(self, dsn: str, *, name: str, timeout: float = 2.0) -> None:
        """Compete for the lease called ``name`` (replicas of one deployment use the same name).

        Args:
            dsn: PostgreSQL DSN.
            name: Lease name; the lock key is derived from it.
            timeout: Seconds allowed for connecting and for each query.
        """
        self._dsn = dsn
        self._name = name
        self._key = lock_key(name)
        self._timeout = timeout
        self._connection: asyncpg.Connection | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """Whether the last `hold` found the lease held by this replica."""
        return self._held

    async def hold(self) -> bool:
        was, held = self._held, False
        try:
            connection = self._connection
            if connection is None or connection.is_closed():
                self._held = False
                connection = self._connection = await asyncpg.connect(self._dsn, timeout=self._timeout)
            if self._held:
                # The lock lives as long as the session: a live connection means it is still ours.
                await connection.fetchval("SELECT 1", timeout=self._timeout)
                held = True
            else:
                held = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", self._key, timeout=self._timeout))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("publisher lease %s cannot be checked: %r", self._name, error)
            await self._drop()
        if held != was:
            log.info("publisher lease %s %s", self._name, "taken" if held else "lost")
        self._held = held
        _PUBLISHER.set(1 if held else 0)
        return held

    async def release(self) -> None:
        self._held = False
        _PUBLISHER.set(0)
        await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._held = False
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=self._timeout)
            except Exception:  # noqa: BLE001 - the session ends either way; terminate frees the lock
                connection.terminate()
