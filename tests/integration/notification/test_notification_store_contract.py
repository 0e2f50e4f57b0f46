"""One contract suite for the notification stores: in memory and on the real PostgreSQL (unique schema per run)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.notification.adapters.memory_store import InMemoryStore
from services.notification.adapters.postgres_store import PostgresStore
from services.notification.domain.delivery import DeliveryEvent, PlannedDelivery
from services.notification.domain.errors import ChannelLimitExceeded
from services.notification.domain.model import (
    AlertNotice,
    Channel,
    ChannelKind,
    ChannelState,
    DeliveryStatus,
    Preferences,
    QuietHours,
    Severity,
)
from services.notification.ports import DeliveryQuery

DSN = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[InMemoryStore | PostgresStore]:
    """Each backend, empty."""
    if request.param == "memory":
        yield InMemoryStore()
        return
    schema = f"nt_test_{uuid.uuid4().hex[:12]}"
    pg = PostgresStore(DSN, schema=schema, max_size=10)
    await pg.start()
    try:
        yield pg
    finally:
        await pg.close()
        connection = await asyncpg.connect(DSN)
        await connection.execute(f"DROP SCHEMA {schema} CASCADE")
        await connection.close()


def _channel(kind: ChannelKind = ChannelKind.SMS, address: str = "+14155550100", user: str = "u1") -> Channel:
    return Channel(str(uuid.uuid4()), user, kind, address, "", ChannelState.ACTIVE, NOW)


def _notice(alert_id: str = "alrt_1") -> AlertNotice:
    return AlertNotice(alert_id, "u1", Severity.WARNING, "title", "body", NOW)


async def _one(store, due: datetime = NOW) -> str:  # type: ignore[no-untyped-def]
    channel = await store.register_channel(_channel(), "", 10)
    deliveries = await store.plan_deliveries(_notice(), [PlannedDelivery(channel, 0, due)], NOW)
    return deliveries[0].delivery_id


async def test_channels_are_unique_per_kind_and_address_and_limited(store) -> None:  # type: ignore[no-untyped-def]
    first = await store.register_channel(_channel(), "r1", 2)
    assert (await store.register_channel(_channel(), "", 2)).channel_id == first.channel_id
    assert (await store.register_channel(_channel(ChannelKind.EMAIL, "a@b.co"), "r1", 2)).channel_id == first.channel_id
    await store.register_channel(_channel(ChannelKind.EMAIL, "a@b.co"), "", 2)
    with pytest.raises(ChannelLimitExceeded):
        await store.register_channel(_channel(ChannelKind.PUSH, "tok"), "", 2)
    await store.disable_channel(first.channel_id)
    assert (await store.get_channel("u1", first.channel_id)).state is ChannelState.DISABLED  # type: ignore[union-attr]
    assert await store.get_channel("u2", first.channel_id) is None


async def test_preferences_round_trip(store) -> None:  # type: ignore[no-untyped-def]
    prefs = Preferences("+14155550100", True, "a@b.co", False, frozenset({"t"}), QuietHours(True, "Europe/Paris", 1, 2, False),
                        {Severity.CRITICAL: (ChannelKind.SMS, ChannelKind.EMAIL)}, timedelta(minutes=3), NOW)
    await store.save_preferences("u1", prefs)
    assert await store.get_preferences("u1") == prefs
    assert await store.get_preferences("u2") is None


async def test_planning_twice_creates_one_delivery_per_alert_and_channel(store) -> None:  # type: ignore[no-untyped-def]
    channel = await store.register_channel(_channel(), "", 10)
    first = await store.plan_deliveries(_notice(), [PlannedDelivery(channel, 0, NOW)], NOW)
    second = await store.plan_deliveries(_notice(), [PlannedDelivery(channel, 0, NOW)], NOW)
    assert [d.delivery_id for d in first] == [d.delivery_id for d in second]
    assert first[0].status is DeliveryStatus.PENDING


async def test_concurrent_claims_have_one_winner(store) -> None:  # type: ignore[no-untyped-def]
    delivery_id = await _one(store)
    results = await asyncio.gather(*(store.claim(delivery_id, f"w{i}", NOW, NOW + timedelta(minutes=1)) for i in range(8)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    claimed, previous = winners[0]
    assert claimed.status is DeliveryStatus.ATTEMPTING and claimed.attempt_count == 1 and previous is DeliveryStatus.PENDING


async def test_not_yet_due_deliveries_are_not_claimed(store) -> None:  # type: ignore[no-untyped-def]
    delivery_id = await _one(store, due=NOW + timedelta(minutes=5))
    assert await store.claim(delivery_id, "w", NOW, NOW + timedelta(minutes=1)) is None
    assert await store.claimable(NOW, 10) == []
    assert await store.claimable(NOW + timedelta(minutes=5), 10) == [delivery_id]


async def test_an_abandoned_attempt_is_claimable_after_its_lease_and_marked_ambiguous(store) -> None:  # type: ignore[no-untyped-def]
    delivery_id = await _one(store)
    await store.claim(delivery_id, "dead", NOW, NOW + timedelta(seconds=30))
    assert await store.claim(delivery_id, "w2", NOW + timedelta(seconds=10), NOW + timedelta(minutes=1)) is None
    later = NOW + timedelta(seconds=31)
    assert await store.claimable(later, 10) == [delivery_id]
    claimed, previous = await store.claim(delivery_id, "w2", later, later + timedelta(minutes=1))  # type: ignore[misc]
    assert previous is DeliveryStatus.ATTEMPTING and claimed.ambiguous and claimed.attempt_count == 2


async def test_transitions_are_compare_and_set(store) -> None:  # type: ignore[no-untyped-def]
    delivery_id = await _one(store)
    await store.claim(delivery_id, "w1", NOW, NOW + timedelta(minutes=1))
    assert await store.transition(delivery_id, "w2", DeliveryEvent.ACCEPTED, NOW, provider_message_id="x") is None
    sent = await store.transition(delivery_id, "w1", DeliveryEvent.ACCEPTED, NOW, provider_message_id="SM1")
    assert sent.status is DeliveryStatus.SENT and sent.provider_message_id == "SM1" and sent.send_time == NOW  # type: ignore[union-attr]
    assert sent.lease_owner == ""  # type: ignore[union-attr]
    assert await store.transition(delivery_id, "w1", DeliveryEvent.ACCEPTED, NOW) is None
    assert await store.claim(delivery_id, "w1", NOW, NOW) is None


async def test_retrying_stays_with_its_worker(store) -> None:  # type: ignore[no-untyped-def]
    delivery_id = await _one(store)
    await store.claim(delivery_id, "w1", NOW, NOW + timedelta(minutes=1))
    retrying = await store.transition(delivery_id, "w1", DeliveryEvent.TRANSIENT_FAILURE, NOW, last_error="429",
                                      lease_until=NOW + timedelta(minutes=1))
    assert retrying.status is DeliveryStatus.RETRYING  # type: ignore[union-attr]
    assert await store.claim(delivery_id, "w2", NOW, NOW + timedelta(minutes=1)) is None
    assert await store.claim(delivery_id, "w1", NOW, NOW + timedelta(minutes=1)) is not None


async def test_deliveries_list_newest_first_with_filters(store) -> None:  # type: ignore[no-untyped-def]
    channel = await store.register_channel(_channel(), "", 10)
    for i in range(3):
        notice = AlertNotice(f"alrt_{i}", "u1", Severity.WARNING, "t", "b", NOW)
        await store.plan_deliveries(notice, [PlannedDelivery(channel, 0, NOW)], NOW + timedelta(seconds=i))
    listed = await store.list_deliveries("u1", DeliveryQuery(limit=10))
    assert [d.alert_id for d in listed] == ["alrt_2", "alrt_1", "alrt_0"]
    page = await store.list_deliveries("u1", DeliveryQuery(limit=10, before=(listed[0].create_time, listed[0].delivery_id)))
    assert [d.alert_id for d in page] == ["alrt_1", "alrt_0"]
    assert [d.alert_id for d in await store.list_deliveries("u1", DeliveryQuery(limit=10, alert_id="alrt_1"))] == ["alrt_1"]
    assert await store.list_deliveries("u2", DeliveryQuery(limit=10)) == []


async def test_acknowledgements_are_remembered(store) -> None:  # type: ignore[no-untyped-def]
    assert not await store.is_acknowledged("alrt_1")
    await store.mark_acknowledged("alrt_1", "u1")
    await store.mark_acknowledged("alrt_1", "u1")
    assert await store.is_acknowledged("alrt_1")
