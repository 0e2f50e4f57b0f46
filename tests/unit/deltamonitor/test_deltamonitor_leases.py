"""Partition leases on the in-memory store with a hand-moved clock: shares, rebalance, takeover, fencing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.deltamonitor.adapters.memory_store import InMemoryStore
from services.deltamonitor.domain.model import (
    Alert,
    AlertKind,
    AlertState,
    Severity,
    StaleData,
    WatchLive,
    WatchState,
)
from services.deltamonitor.domain.partitions import PARTITION_COUNT, fair_share, partition_of
from services.deltamonitor.ports import Fence, LeaseLost

LEASE = 3.0
NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> InMemoryStore:
    return InMemoryStore(now=clock)


def _alert(account: str) -> Alert:
    return Alert("", "u1", account, "w1", AlertKind.STALE_DATA, Severity.WARNING, AlertState.OPEN, "t", "m", NOW,
                 StaleData("SPY", None, timedelta(minutes=2)))


@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 7])
def test_fair_shares_add_up_to_every_partition(replicas: int) -> None:
    names = [f"r{i}" for i in range(replicas)]
    shares = [fair_share(names, name) for name in names]
    assert sum(shares) == PARTITION_COUNT and max(shares) - min(shares) <= 1


def test_partition_of_is_stable_and_in_range() -> None:
    assert partition_of("5WW00001") == partition_of("5WW00001")
    assert {partition_of(f"ACC{i}") for i in range(2000)} == set(range(PARTITION_COUNT))


async def test_a_lone_replica_claims_every_partition(store: InMemoryStore) -> None:
    view = await store.heartbeat("a", LEASE, PARTITION_COUNT)
    assert view.held == frozenset(range(PARTITION_COUNT)) and view.target == PARTITION_COUNT and view.replicas == ("a",)


async def test_a_joining_replica_gets_its_share_once_the_holder_releases_the_surplus(store: InMemoryStore) -> None:
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    joined = await store.heartbeat("b", LEASE, PARTITION_COUNT)
    assert joined.held == frozenset() and joined.target == 32  # nothing is free yet: a's leases are live
    holder = await store.heartbeat("a", LEASE, PARTITION_COUNT)
    assert holder.target == 32 and len(holder.held) == 64
    await store.release("a", sorted(holder.held)[32:])
    assert len((await store.heartbeat("b", LEASE, PARTITION_COUNT)).held) == 32
    assert len((await store.heartbeat("a", LEASE, PARTITION_COUNT)).held) == 32


async def test_a_silent_replicas_partitions_are_taken_over_only_after_its_lease_expires(
    store: InMemoryStore, clock: Clock
) -> None:
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    clock.t += LEASE - 0.1
    before = await store.heartbeat("b", LEASE, PARTITION_COUNT)
    assert before.held == frozenset()
    clock.t += 0.2
    after = await store.heartbeat("b", LEASE, PARTITION_COUNT)
    assert after.replicas == ("b",) and after.held == frozenset(range(PARTITION_COUNT))


async def test_a_replica_that_leaves_frees_its_partitions_at_once(store: InMemoryStore) -> None:
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    await store.heartbeat("b", LEASE, PARTITION_COUNT)
    await store.leave("a")
    assert len((await store.heartbeat("b", LEASE, PARTITION_COUNT)).held) == PARTITION_COUNT


async def test_renewing_keeps_the_partitions_past_the_first_expiry(store: InMemoryStore, clock: Clock) -> None:
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    for _ in range(5):
        clock.t += LEASE / 3
        assert len((await store.heartbeat("a", LEASE, PARTITION_COUNT)).held) == PARTITION_COUNT
    assert (await store.heartbeat("b", LEASE, PARTITION_COUNT)).held == frozenset()


async def test_fencing_refuses_a_stale_owners_alert_and_writes_nothing(store: InMemoryStore, clock: Clock) -> None:
    account = "5WW00001"
    partition = partition_of(account)
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    clock.t += LEASE + 0.1
    await store.heartbeat("b", LEASE, PARTITION_COUNT)
    with pytest.raises(LeaseLost) as lost:
        await store.record_alerts([_alert(account)], {}, None, fence=Fence("a", frozenset({partition})))
    assert lost.value.partitions == frozenset({partition})
    assert await store.pending_outbox(10) == []
    (stored,) = await store.record_alerts([_alert(account)], {}, None, fence=Fence("b", frozenset({partition})))
    assert [e.message_id for e in await store.pending_outbox(10)] == [stored.alert_id]


async def test_fencing_refuses_an_expired_lease_even_before_anyone_claims_it(store: InMemoryStore, clock: Clock) -> None:
    await store.heartbeat("a", LEASE, PARTITION_COUNT)
    clock.t += LEASE
    with pytest.raises(LeaseLost):
        await store.save_live({"w1": (0, WatchLive(WatchState.ARMED))}, fence=Fence("a", frozenset({0})))
