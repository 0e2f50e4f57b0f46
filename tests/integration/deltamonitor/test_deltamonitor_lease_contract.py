"""Partition leases and fenced writes: one contract for the in-memory store and PostgreSQL (real time, short
leases; the PostgreSQL expiry is the database's clock)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.deltamonitor.adapters.postgres_store import PostgresStore
from services.deltamonitor.domain.model import (
    Alert,
    AlertKind,
    AlertState,
    Metric,
    Severity,
    StaleData,
    StaticBand,
    UnderlyingTarget,
    Watch,
    WatchLive,
    WatchState,
)
from services.deltamonitor.domain.partitions import PARTITION_COUNT, partition_of
from services.deltamonitor.ports import Fence, LeaseLost, MarketInputs

DSN = "postgresql://postgres@127.0.0.1:5432/test"
LEASE = 0.6
NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
ACCOUNT = "5WW00001"

pytestmark = pytest.mark.integration


def _watch() -> Watch:
    return Watch("w1", "u1", ACCOUNT, "", UnderlyingTarget("SPY"), Metric.SHARES, "", StaticBand(-1.0, 1.0), 0.2,
                 timedelta(0), None, Severity.WARNING, NOW, NOW)


def _alert() -> Alert:
    return Alert("", "u1", ACCOUNT, "w1", AlertKind.STALE_DATA, Severity.WARNING, AlertState.OPEN, "t", "m", NOW,
                 StaleData("SPY", None, timedelta(minutes=2)))


def _fence(owner: str) -> Fence:
    return Fence(owner, frozenset({partition_of(ACCOUNT)}))


async def test_two_replicas_split_the_partitions_after_a_release(store) -> None:  # type: ignore[no-untyped-def]
    first = await store.heartbeat("a", LEASE, PARTITION_COUNT)
    assert first.held == frozenset(range(PARTITION_COUNT))
    assert (await store.heartbeat("b", LEASE, PARTITION_COUNT)).held == frozenset()
    again = await store.heartbeat("a", LEASE, PARTITION_COUNT)
    assert again.target == 32 and again.replicas == ("a", "b")
    await store.release("a", sorted(again.held)[32:])
    b = await store.heartbeat("b", LEASE, PARTITION_COUNT)
    a = await store.heartbeat("a", LEASE, PARTITION_COUNT)
    assert len(a.held) == len(b.held) == 32 and not a.held & b.held


async def test_a_dead_replicas_partitions_are_claimed_after_its_lease(store) -> None:  # type: ignore[no-untyped-def]
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    assert (await store.heartbeat("b", LEASE, PARTITION_COUNT)).held == frozenset()
    await asyncio.sleep(LEASE + 0.15)
    taken = await store.heartbeat("b", LEASE, PARTITION_COUNT)
    assert taken.held == frozenset(range(PARTITION_COUNT)) and taken.replicas == ("b",)


async def test_a_stale_owners_alert_is_refused_and_nothing_is_written(store) -> None:  # type: ignore[no-untyped-def]
    await store.create_watch(_watch(), "", 10)
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    await asyncio.sleep(LEASE + 0.15)
    await store.heartbeat("b", LEASE, PARTITION_COUNT)
    breached = WatchLive(WatchState.BREACHED, 2.0, -1.0, 1.0, None, NOW, NOW, False)
    with pytest.raises(LeaseLost):
        await store.record_alerts([_alert()], {"w1": (0, breached)}, None, fence=_fence("a"))
    assert await store.pending_outbox(10) == [] and await store.load_live() == {}
    with pytest.raises(LeaseLost):
        await store.save_live({"w1": (0, breached)}, fence=_fence("a"))
    assert await store.load_live() == {}
    (alert,) = await store.record_alerts([_alert()], {"w1": (0, breached)}, None, fence=_fence("b"))
    assert [e.message_id for e in await store.pending_outbox(10)] == [alert.alert_id]
    assert (await store.load_live())["w1"] == (0, breached)


async def test_released_partitions_refuse_their_former_owner(store) -> None:  # type: ignore[no-untyped-def]
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    await store.release("a", [partition_of(ACCOUNT)])
    with pytest.raises(LeaseLost):
        await store.record_alerts([_alert()], {}, None, fence=_fence("a"))


async def test_account_snapshots_load_by_account(store) -> None:  # type: ignore[no-untyped-def]
    inputs = MarketInputs({"SPY": 1.0}, {}, 0.04)
    await store.save_account("A1", [], inputs)
    await store.save_account("A2", [], inputs)
    assert set(await store.load_accounts(["A2", "A3"])) == {"A2"}
    assert set(await store.load_accounts()) == {"A1", "A2"}


async def test_a_claim_waits_for_the_fenced_write_in_flight() -> None:
    # PostgreSQL only: the fenced transaction holds the lease row, so a takeover cannot slip in between its check
    # and its commit, and the new owner reads what it wrote.
    schema = f"dm_lease_{uuid.uuid4().hex[:12]}"
    pg = PostgresStore(DSN, schema=schema)
    await pg.start()
    connection = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        await pg.heartbeat("a", LEASE, PARTITION_COUNT)
        transaction = connection.transaction()
        await transaction.start()
        rows = await connection.fetch(
            "SELECT partition FROM partition_leases WHERE partition = $1 AND owner = 'a'"
            " AND expires_at > clock_timestamp() FOR SHARE", partition_of(ACCOUNT)
        )
        assert len(rows) == 1
        await asyncio.sleep(LEASE + 0.15)
        claim = asyncio.create_task(pg.heartbeat("b", LEASE, PARTITION_COUNT))
        await asyncio.sleep(0.3)
        assert not claim.done()
        await transaction.commit()
        assert partition_of(ACCOUNT) in (await asyncio.wait_for(claim, 5)).held
    finally:
        await connection.close()
        await pg.close()
        cleanup = await asyncpg.connect(DSN)
        await cleanup.execute(f"DROP SCHEMA {schema} CASCADE")
        await cleanup.close()
