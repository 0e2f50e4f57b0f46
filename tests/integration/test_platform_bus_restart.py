"""The RabbitMQ bus across a real broker restart (a private node stopped and started again)."""

from __future__ import annotations

import asyncio

import pytest

from services.platform.bus import PublishNotConfirmed, RabbitMqBus
from tests.integration.rabbit_node import RabbitNode, rabbit  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _publish_until_confirmed(bus: RabbitMqBus, topic: str, message_id: str) -> int:
    # The robust connection comes back on its own; until then every publish fails with PublishNotConfirmed.
    for attempt in range(300):
        try:
            await asyncio.wait_for(bus.publish(topic, b"x", message_id), 30)
            return attempt
        except PublishNotConfirmed:
            await asyncio.sleep(0.1)
    raise AssertionError("the bus did not reconnect")


async def test_publish_while_the_broker_is_down_raises_publish_not_confirmed(rabbit: RabbitNode) -> None:  # noqa: F811
    bus = await RabbitMqBus.connect(rabbit.url, confirm_timeout=2.0)
    try:
        subscription = await bus.subscribe("restart.#", queue="restart.publish")
        await bus.publish("restart.a", b"a", "before")
        await asyncio.to_thread(rabbit.stop)
        with pytest.raises(PublishNotConfirmed):
            await asyncio.wait_for(bus.publish("restart.a", b"a", "down"), 30)
        await asyncio.to_thread(rabbit.start)
        await _publish_until_confirmed(bus, "restart.a", "after")
        received = []
        async with asyncio.timeout(60):
            async for delivery in subscription:
                received.append(delivery.message_id)
                await delivery.ack()
                if delivery.message_id == "after":
                    break
        # The durable queue kept the persistent message across the restart; the refused one never existed.
        assert received == ["before", "after"]
    finally:
        await asyncio.wait_for(bus.close(), 30)


async def test_a_delivery_taken_before_a_restart_is_acknowledged_after_it_and_not_handed_out_again(
    rabbit: RabbitNode,  # noqa: F811
) -> None:
    bus = await RabbitMqBus.connect(rabbit.url, confirm_timeout=2.0)
    try:
        subscription = await bus.subscribe("restart.#", queue="restart.ack")
        for message_id in ("m1", "m2"):
            await bus.publish("restart.b", b"b", message_id)
        first = await asyncio.wait_for(subscription.__anext__(), 30)
        assert first.message_id == "m1"
        await asyncio.to_thread(rabbit.stop)
        await asyncio.to_thread(rabbit.start)
        # Handled while the broker was away: its acknowledgement cannot reach the old channel, and must not fail.
        await first.ack()
        await _publish_until_confirmed(bus, "restart.b", "m3")
        received = []
        async with asyncio.timeout(60):
            async for delivery in subscription:
                received.append(delivery.message_id)
                await delivery.ack()
                if delivery.message_id == "m3":
                    break
        # m2 was prefetched on the old channel too: that copy is dropped and the broker's redelivery handed out;
        # m1's redelivery is recognised as already acknowledged.
        assert received == ["m2", "m3"]
    finally:
        await asyncio.wait_for(bus.close(), 30)


async def test_closing_a_subscription_does_not_hang_on_a_stalled_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen in CI: the broker did not answer a consumer cancel for minutes, and the closing caller waited with it.
    import time
    import uuid

    from services.platform import bus as bus_module

    monkeypatch.setattr(bus_module, "CLOSE_STEP_SECONDS", 0.2, raising=False)
    bus = await RabbitMqBus.connect("amqp://guest:guest@127.0.0.1:5672/", exchange=f"test.stall.{uuid.uuid4().hex}")
    try:
        subscription = await bus.subscribe("stall.*")

        class StalledQueue:
            # The real queue, but the broker never answers the consumer cancel.
            def __init__(self, queue: object) -> None:
                self._queue = queue

            async def cancel(self, *args: object, **kwargs: object) -> None:
                await asyncio.sleep(3600)

            def __getattr__(self, name: str) -> object:
                return getattr(self._queue, name)

        monkeypatch.setattr(subscription, "_queue", StalledQueue(subscription._queue))
        started = time.monotonic()
        await asyncio.wait_for(subscription.close(), 10)
        assert time.monotonic() - started < 2.0
        assert subscription._channel.is_closed  # the consumer ends with its channel
    finally:
        await bus.close()
