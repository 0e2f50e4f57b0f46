"""One contract for every MessageBus: the in-process bus and RabbitMQ must behave the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from services.platform.bus import InProcessBus, MessageBus, RabbitMqBus, Unroutable, topic_matches

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
RECEIVE_TIMEOUT = 5.0


@pytest.fixture(params=["in_process", pytest.param("rabbitmq", marks=pytest.mark.integration)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[MessageBus]:
    if request.param == "in_process":
        memory = InProcessBus(delivery_limit=2)
        yield memory
        await memory.close()
        return
    rabbit = await RabbitMqBus.connect(RABBITMQ_URL, exchange=f"test.bus.{uuid.uuid4().hex}", delivery_limit=2)
    rabbit.created_queues = []  # type: ignore[attr-defined]
    yield rabbit
    for name in rabbit.created_queues:  # type: ignore[attr-defined]
        await rabbit.delete_queue(name)
    await rabbit.delete_exchanges()
    await rabbit.close()


def _queue_name(bus: MessageBus) -> str:
    name = f"test.q.{uuid.uuid4().hex[:12]}"
    if hasattr(bus, "created_queues"):
        bus.created_queues.append(name)
    return name


async def _next(subscription) -> object:
    return await asyncio.wait_for(subscription.__anext__(), RECEIVE_TIMEOUT)


async def _nothing_within(subscription, seconds: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(subscription.__anext__(), seconds)
    except TimeoutError:
        return True
    return False


async def test_published_message_reaches_matching_subscriber_with_id_and_topic(bus: MessageBus) -> None:
    async with await bus.subscribe("ticks.*") as subscription:
        await bus.publish("ticks.SPY", b"payload-1", "m-1")
        delivery = await _next(subscription)
        assert (delivery.topic, delivery.payload, delivery.message_id, delivery.redelivered) == (
            "ticks.SPY",
            b"payload-1",
            "m-1",
            False,
        )
        await delivery.ack()


async def test_non_matching_topic_is_not_delivered(bus: MessageBus) -> None:
    async with await bus.subscribe("ticks.*.quote") as subscription:
        await bus.publish("ticks.SPY.greeks", b"x", "m-1")
        await bus.publish("ticks.SPY.quote", b"y", "m-2")
        delivery = await _next(subscription)
        assert delivery.message_id == "m-2"
        await delivery.ack()


async def test_hash_wildcard_matches_zero_or_more_words(bus: MessageBus) -> None:
    async with await bus.subscribe("alerts.#") as subscription:
        for index, topic in enumerate(["alerts", "alerts.user", "alerts.user.42"]):
            await bus.publish(topic, b"", f"m-{index}")
        received = [await _next(subscription) for _ in range(3)]
        assert [d.topic for d in received] == ["alerts", "alerts.user", "alerts.user.42"]
        for delivery in received:
            await delivery.ack()


async def test_every_private_subscriber_gets_every_message(bus: MessageBus) -> None:
    async with await bus.subscribe("fan.out") as first, await bus.subscribe("fan.out") as second:
        await bus.publish("fan.out", b"1", "m-1")
        a, b = await _next(first), await _next(second)
        assert a.message_id == b.message_id == "m-1"
        await a.ack()
        await b.ack()


async def test_named_queue_consumers_compete_for_messages(bus: MessageBus) -> None:
    name = _queue_name(bus)
    async with await bus.subscribe("work.*", queue=name, prefetch=1) as first:
        async with await bus.subscribe("work.*", queue=name, prefetch=1) as second:
            for index in range(4):
                await bus.publish("work.item", str(index).encode(), f"m-{index}")
            seen: list[str] = []
            for subscription in (first, second, first, second):
                delivery = await _next(subscription)
                seen.append(delivery.message_id)
                await delivery.ack()
            assert sorted(seen) == ["m-0", "m-1", "m-2", "m-3"]


async def test_named_queue_keeps_messages_while_nobody_consumes(bus: MessageBus) -> None:
    name = _queue_name(bus)
    subscription = await bus.subscribe("keep.#", queue=name)
    await subscription.close()
    await bus.publish("keep.this", b"kept", "m-kept")
    async with await bus.subscribe("keep.#", queue=name) as again:
        delivery = await _next(again)
        assert delivery.payload == b"kept"
        await delivery.ack()


async def test_unacked_message_is_redelivered_after_subscription_closes(bus: MessageBus) -> None:
    name = _queue_name(bus)
    first = await bus.subscribe("orders.*", queue=name)
    await bus.publish("orders.new", b"o", "order-1")
    delivery = await _next(first)
    assert not delivery.redelivered
    await first.close()
    async with await bus.subscribe("orders.*", queue=name) as second:
        again = await _next(second)
        assert (again.message_id, again.redelivered) == ("order-1", True)
        await again.ack()


async def test_acked_message_is_not_redelivered(bus: MessageBus) -> None:
    name = _queue_name(bus)
    first = await bus.subscribe("acked.*", queue=name)
    await bus.publish("acked.one", b"o", "m-1")
    await (await _next(first)).ack()
    await first.close()
    async with await bus.subscribe("acked.*", queue=name) as second:
        assert await _nothing_within(second)


async def test_rejected_message_with_requeue_comes_back(bus: MessageBus) -> None:
    name = _queue_name(bus)
    async with await bus.subscribe("retry.*", queue=name) as subscription:
        await bus.publish("retry.one", b"r", "m-1")
        await (await _next(subscription)).reject(requeue=True)
        again = await _next(subscription)
        assert (again.message_id, again.redelivered) == ("m-1", True)
        await again.ack()


async def test_poison_message_lands_in_dead_letters_after_delivery_limit(bus: MessageBus) -> None:
    name = _queue_name(bus)
    async with await bus.subscribe("poison.*", queue=name) as subscription:
        await bus.publish("poison.pill", b"bad", "m-poison")
        for _ in range(3):  # delivery_limit=2: the first delivery and two retries
            await (await _next(subscription)).reject(requeue=True)
        await bus.publish("poison.ok", b"good", "m-ok")
        following = await _next(subscription)
        assert following.message_id == "m-ok"
        await following.ack()
    async with await bus.subscribe_dead_letters(name) as dead:
        delivery = await _next(dead)
        assert (delivery.message_id, delivery.payload) == ("m-poison", b"bad")
        await delivery.ack()


async def test_duplicate_message_id_is_skipped_by_a_subscription(bus: MessageBus) -> None:
    name = _queue_name(bus)
    async with await bus.subscribe("dup.*", queue=name) as subscription:
        await bus.publish("dup.x", b"first", "same-id")
        await (await _next(subscription)).ack()
        await bus.publish("dup.x", b"retransmitted", "same-id")
        await bus.publish("dup.x", b"next", "other-id")
        delivery = await _next(subscription)
        assert delivery.message_id == "other-id"
        await delivery.ack()


async def test_mandatory_publish_without_matching_queue_raises_unroutable(bus: MessageBus) -> None:
    with pytest.raises(Unroutable):
        await bus.publish("nobody.listens", b"x", "m-1", mandatory=True)


async def test_non_mandatory_publish_without_matching_queue_is_accepted(bus: MessageBus) -> None:
    await bus.publish("nobody.listens", b"x", "m-1")


async def test_routes_follow_subscriptions_made_and_closed_between_publishes(bus: MessageBus) -> None:
    # A topic published to before anyone listened, then with a subscriber, then after it left.
    await bus.publish("routes.SPY", b"early", "m-1")
    async with await bus.subscribe("routes.*") as first:
        await bus.publish("routes.SPY", b"x", "m-2")
        assert (await _next(first)).message_id == "m-2"
        async with await bus.subscribe("routes.SPY") as second:
            await bus.publish("routes.SPY", b"y", "m-3")
            assert (await _next(first)).message_id == "m-3"
            assert (await _next(second)).message_id == "m-3"
        await bus.publish("routes.SPY", b"z", "m-4")
        assert (await _next(first)).message_id == "m-4"
    with pytest.raises(Unroutable):
        await bus.publish("routes.SPY", b"late", "m-5", mandatory=True)


async def test_prefetch_limits_unacked_deliveries(bus: MessageBus) -> None:
    name = _queue_name(bus)
    async with await bus.subscribe("pf.*", queue=name, prefetch=2) as subscription:
        for index in range(3):
            await bus.publish("pf.x", b"", f"m-{index}")
        first, second = await _next(subscription), await _next(subscription)
        assert await _nothing_within(subscription)
        await first.ack()
        third = await _next(subscription)
        assert third.message_id == "m-2"
        await second.ack()
        await third.ack()


@pytest.mark.parametrize("topic", ["", "has space", "a.*", "a.#", "a..b"])
async def test_invalid_topic_is_rejected(bus: MessageBus, topic: str) -> None:
    with pytest.raises(ValueError):
        await bus.publish(topic, b"", "m-1")


async def test_empty_message_id_is_rejected(bus: MessageBus) -> None:
    with pytest.raises(ValueError):
        await bus.publish("a.b", b"", "")


def test_topic_matching_follows_amqp_rules() -> None:
    assert topic_matches("a.*.c", "a.b.c")
    assert not topic_matches("a.*.c", "a.c")
    assert topic_matches("a.#.c", "a.c")
    assert topic_matches("#", "x.y.z")
    assert not topic_matches("a.b", "a.b.c")


async def test_bounded_private_queue_drops_oldest_messages(bus: MessageBus) -> None:
    async with await bus.subscribe("ticks.#", prefetch=1, max_length=3) as subscription:
        first = None
        for index in range(10):
            await bus.publish("ticks.x", b"", f"m-{index}")
            if first is None:
                first = await _next(subscription)  # holds the only prefetch slot
        await asyncio.sleep(0.2)  # let the broker apply the bound
        await first.ack()
        received = []
        for _ in range(3):
            delivery = await _next(subscription)
            received.append(delivery.message_id)
            await delivery.ack()
        assert received == ["m-7", "m-8", "m-9"]
        assert await _nothing_within(subscription)
