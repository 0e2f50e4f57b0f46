"""Unit tests of the user events and one-time codes published on the (in-process) platform bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from user_unit_support import sign_up

from services.platform.bus import InProcessBus
from services.platform.clock import FakeClock
from services.user.domain.preferences import PreferencesPatch
from services.user.testing import memory_settings
from services.user.wiring import UserComponents, build


@pytest.fixture
async def on_bus(clock: FakeClock) -> AsyncIterator[tuple[UserComponents, InProcessBus]]:
    bus = InProcessBus()
    components = build(memory_settings(code_delivery="bus", bus_provided=True), clock=clock, bus=bus)
    await components.start()
    try:
        yield components, bus
    finally:
        await components.stop()
        await bus.close()


async def test_deleting_a_user_is_recorded_with_outbox_delivery(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.delete_user(alice.identity, "me")
    assert [user_id for user_id, _ in service.events.deleted] == [alice.user_id]


async def test_verification_code_is_published_for_the_notification_service(
    on_bus: tuple[UserComponents, InProcessBus],
) -> None:
    service, bus = on_bus
    async with await bus.subscribe("user.code.requested") as subscription:
        alice = await sign_up(service, "alice@example.com")
        patch = PreferencesPatch(paths=frozenset({"phone_number"}), phone_number="+14155550100")
        await service.app.update_preferences(alice.identity, "me", patch)
        delivery = await asyncio.wait_for(anext(subscription), 5)
        await delivery.ack()
    message = json.loads(delivery.payload)
    assert {k: message[k] for k in ("user_id", "channel", "destination", "purpose")} == {
        "user_id": alice.user_id, "channel": "sms", "destination": "+14155550100", "purpose": "contact_verification",
    }
    assert len(message["code"]) == 6 and service.outbox.messages == []


async def test_user_deletion_is_published(on_bus: tuple[UserComponents, InProcessBus]) -> None:
    service, bus = on_bus
    async with await bus.subscribe("user.deleted") as subscription:
        alice = await sign_up(service, "alice@example.com")
        await service.app.delete_user(alice.identity, "me")
        delivery = await asyncio.wait_for(anext(subscription), 5)
    assert json.loads(delivery.payload)["user_id"] == alice.user_id
