"""The publisher lease on the machine's PostgreSQL: one holder; a released or dead holder's lease is taken over."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.marketdata.adapters.publisher_lease import PostgresPublisherLease, lock_key
from services.marketdata.config import MarketDataSettings

pytestmark = pytest.mark.integration

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[PostgresPublisherLease, PostgresPublisherLease, str]]:
    name = f"test-lease-{uuid.uuid4().hex[:10]}"
    first = PostgresPublisherLease(POSTGRES_DSN, name=name)
    second = PostgresPublisherLease(POSTGRES_DSN, name=name)
    yield first, second, name
    await first.release()
    await second.release()


async def test_only_one_replica_holds_the_lease_and_keeps_it(pair) -> None:  # type: ignore[no-untyped-def]
    first, second, _ = pair
    assert await first.hold()
    assert not await second.hold()
    assert await first.hold() and not await second.hold(), "holding again keeps it, asking again does not take it"


async def test_a_released_lease_is_taken_by_the_other_replica(pair) -> None:  # type: ignore[no-untyped-def]
    first, second, _ = pair
    assert await first.hold()
    await first.release()
    assert await second.hold()
    assert not await first.hold()


async def test_a_holder_whose_session_dies_loses_the_lease_to_the_other_replica(pair) -> None:  # type: ignore[no-untyped-def]
    # What a SIGKILLed replica looks like to the database: its session ends and the advisory lock goes with it.
    first, second, _ = pair
    assert await first.hold()
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        killed = await connection.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND ((classid::bigint << 32) | objid::bigint) = ($1::bigint & x'ffffffffffffffff'::bigint)",
            lock_key(first._name),  # noqa: SLF001 - the test finds the holder's backend by its key
        )
    finally:
        await connection.close()
    assert killed == 1
    assert await second.hold()
    assert not await first.hold(), "the old holder notices it lost the session and does not publish"


async def test_a_database_that_cannot_be_reached_means_the_lease_is_not_held() -> None:
    lease = PostgresPublisherLease("postgresql://postgres@127.0.0.1:1/test", name="unreachable", timeout=1.0)
    assert not await lease.hold()
    await lease.release()


def test_the_rabbitmq_bus_needs_the_database_for_the_lease_unless_every_instance_publishes() -> None:
    from services.platform.settings import MissingSettingError

    common = {"MARKETDATA_RABBITMQ_URL": "amqp://x", "MARKETDATA_REDIS_URL": "redis://x", "MARKETDATA_HISTORY": "memory"}
    with pytest.raises(MissingSettingError, match="MARKETDATA_DATABASE_URL"):
        MarketDataSettings.from_env(common, port=0)
    assert MarketDataSettings.from_env({**common, "MARKETDATA_BUS_PUBLISHER": "every"}, port=0).publisher() == "every"
    memory = MarketDataSettings.from_env({}, port=0, bus="memory", cache="memory", history="memory")
    assert memory.publisher() == "every"
