"""Deliveries through the real SDKs against local fakes (Twilio, FCM) and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import prometheus_client

from services.notification.domain.model import ChannelKind, ChannelState, DeliveryStatus
from services.notification.ports import DEAD_LETTER_TOPIC
from tests.fakes.fcm_api import FakeFcm
from tests.fakes.twilio_api import FakeTwilio
from tests.unit.notification.conftest import (
    EMAIL,
    PHONE,
    PUSH_TOKEN,
    Rig,
    SmtpInbox,
    channel,
    notice,
    preferences,
)


def _sms_count(name: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(f"tastyplat_{name}_total", {"channel": "sms"}) or 0.0


async def _planned(rig: Rig, kind: ChannelKind, address: str, alert_id: str = "alrt_000000000000001") -> str:
    ch = channel(kind, address)
    await rig.store.register_channel(ch, "", 20)
    await rig.store.save_preferences(ch.user_id, preferences(kind))
    alert = notice(alert_id)
    from services.notification.domain.delivery import plan

    deliveries = await rig.store.plan_deliveries(alert, plan(alert, await rig.store.get_preferences(ch.user_id), [ch], alert.raise_time), alert.raise_time)
    return deliveries[0].delivery_id


async def test_sms_goes_through_the_twilio_sdk_with_a_reference_tag(rig: Rig, fake_twilio: FakeTwilio) -> None:
    delivery_id = await _planned(rig, ChannelKind.SMS, PHONE)
    result = await rig.deliverer.run(delivery_id)
    assert result is not None and result.status is DeliveryStatus.SENT
    assert [m.to for m in fake_twilio.messages] == [PHONE]
    assert result.provider_message_id == fake_twilio.messages[0].sid
    assert f"[ref {result.reference}]" in fake_twilio.messages[0].body


async def test_twilio_429_is_retried_with_backoff_and_sent_once(rig: Rig, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(429, 20429, count=2)
    retries = _sms_count("notification_retries")
    result = await rig.deliverer.run(await _planned(rig, ChannelKind.SMS, PHONE))
    assert result is not None and result.status is DeliveryStatus.SENT
    assert result.attempt_count == 3
    assert _sms_count("notification_retries") == retries + 2
    assert len(fake_twilio.messages) == 1


async def test_twilio_500_after_acceptance_is_reconciled_not_resent(rig: Rig, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(500, 20500, send_anyway=True)
    result = await rig.deliverer.run(await _planned(rig, ChannelKind.SMS, PHONE))
    assert result is not None and result.status is DeliveryStatus.SENT
    assert len(fake_twilio.messages) == 1
    assert result.provider_message_id == fake_twilio.messages[0].sid
    assert fake_twilio.list_requests == 1


async def test_twilio_invalid_number_fails_permanently_into_the_dead_letters(rig: Rig, fake_twilio: FakeTwilio) -> None:
    dead = await rig.bus.subscribe(DEAD_LETTER_TOPIC, queue="notification.deadletters")
    fake_twilio.fail_next(400, 21211)
    dead_letters = _sms_count("notification_dead_letters")
    result = await rig.deliverer.run(await _planned(rig, ChannelKind.SMS, PHONE))
    assert result is not None and result.status is DeliveryStatus.FAILED
    assert _sms_count("notification_dead_letters") == dead_letters + 1
    assert result.attempt_count == 1
    assert "21211" in result.last_error
    message = await asyncio.wait_for(dead.__anext__(), 2)
    assert result.delivery_id.encode() in message.payload


async def test_exhausted_retries_fail_the_delivery(rig: Rig, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(429, 20429, count=10)
    result = await rig.deliverer.run(await _planned(rig, ChannelKind.SMS, PHONE))
    assert result is not None and result.status is DeliveryStatus.FAILED
    assert result.attempt_count == 4
    assert result.last_error.startswith("retries exhausted")
    assert fake_twilio.messages == []


async def test_email_reaches_a_real_smtp_server_with_text_html_and_alert_message_id(rig: Rig, smtp_inbox: SmtpInbox) -> None:
    result = await rig.deliverer.run(await _planned(rig, ChannelKind.EMAIL, EMAIL, "alrt_000000000000042"))
    assert result is not None and result.status is DeliveryStatus.SENT
    assert len(smtp_inbox.messages) == 1
    received = smtp_inbox.messages[0]
    assert received["Message-ID"] == "<alrt_000000000000042@tastyplat>"
    assert received["To"] == EMAIL
    kinds = sorted(part.get_content_type() for part in received.walk() if not part.is_multipart())
    assert kinds == ["text/html", "text/plain"]


async def test_push_goes_through_firebase_admin_with_the_alert_as_collapse_key(rig: Rig, fake_fcm: FakeFcm) -> None:
    result = await rig.deliverer.run(await _planned(rig, ChannelKind.PUSH, PUSH_TOKEN, "alrt_000000000000007"))
    assert result is not None and result.status is DeliveryStatus.SENT
    assert len(fake_fcm.delivered) == 1
    message = fake_fcm.delivered[0]
    assert message["token"] == PUSH_TOKEN
    assert message["android"]["collapse_key"] == "alrt_000000000000007"
    assert message["apns"]["headers"]["apns-collapse-id"] == "alrt_000000000000007"
    assert result.provider_message_id.startswith(f"projects/{fake_fcm.project_id}/messages/")


async def test_fcm_503_makes_one_post_per_attempt_not_hidden_sdk_retries(rig: Rig, fake_fcm: FakeFcm) -> None:
    fake_fcm.fail_next(503)
    result = await rig.deliverer.run(await _planned(rig, ChannelKind.PUSH, PUSH_TOKEN))
    assert result is not None and result.status is DeliveryStatus.SENT
    # firebase-admin alone would have POSTed up to five times on 503; here each POST is one recorded attempt.
    assert len(fake_fcm.posts) == result.attempt_count == 2
    assert len(fake_fcm.delivered) == 1


async def test_fcm_unregistered_token_disables_the_channel_and_is_not_retried(rig: Rig, fake_fcm: FakeFcm) -> None:
    fake_fcm.unregistered.add(PUSH_TOKEN)
    delivery_id = await _planned(rig, ChannelKind.PUSH, PUSH_TOKEN)
    result = await rig.deliverer.run(delivery_id)
    assert result is not None and result.status is DeliveryStatus.FAILED
    assert len(fake_fcm.posts) == 1
    channel_state = next(iter(rig.store.channels.values())).state
    assert channel_state is ChannelState.DISABLED


async def test_a_sent_delivery_is_never_sent_again(rig: Rig, fake_twilio: FakeTwilio) -> None:
    delivery_id = await _planned(rig, ChannelKind.SMS, PHONE)
    await rig.deliverer.run(delivery_id)
    again = await rig.deliverer.run(delivery_id)
    assert again is not None and again.status is DeliveryStatus.SENT
    assert len(fake_twilio.messages) == 1


async def test_an_abandoned_attempt_that_reached_twilio_is_reconciled_by_the_next_worker(
    rig: Rig, fake_twilio: FakeTwilio
) -> None:
    delivery_id = await _planned(rig, ChannelKind.SMS, PHONE)
    # A worker claimed the delivery, Twilio accepted the message, and the worker died before recording SENT.
    now = datetime.now(UTC)
    claimed, _ = await rig.store.claim(delivery_id, "dead-worker", now, now + timedelta(milliseconds=1))  # type: ignore[misc]
    from services.notification.adapters.providers import sms_body

    provider = rig.deliverer._providers[ChannelKind.SMS]
    await asyncio.to_thread(provider._create, PHONE, sms_body(claimed))  # type: ignore[attr-defined]
    await asyncio.sleep(0.01)
    result = await rig.deliverer.run(delivery_id)
    assert result is not None and result.status is DeliveryStatus.SENT
    assert len(fake_twilio.messages) == 1
    assert result.provider_message_id == fake_twilio.messages[0].sid


async def test_a_live_lease_keeps_other_workers_off(rig: Rig, fake_twilio: FakeTwilio) -> None:
    delivery_id = await _planned(rig, ChannelKind.SMS, PHONE)
    now = datetime.now(UTC)
    await rig.store.claim(delivery_id, "other-worker", now, now + timedelta(minutes=5))
    result = await rig.deliverer.run(delivery_id)
    assert result is not None and result.status is DeliveryStatus.ATTEMPTING
    assert fake_twilio.create_requests == 0

