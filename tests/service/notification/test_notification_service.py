"""NotificationService through the generated stubs: channels, verification, tests, deliveries, the alert consumer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from tastyplat.notification.v1 import notification_service_pb2 as pb
from tastyplat.type.v1 import alert_pb2, channel_pb2

from services.notification.domain.model import Preferences, Severity
from services.platform.error_mapping import decode_error
from tests.service.notification.conftest import NotificationRig

USER = "3b4a0c0e-0000-4000-8000-000000000001"
OTHER = "3b4a0c0e-0000-4000-8000-000000000002"
PHONE = "+14155550100"
EMAIL = "trader@example.com"
TOKEN = "fcm-device-token-" + "a" * 30


def _verified(escalation: timedelta = timedelta(0), kinds=(channel_pb2.CHANNEL_KIND_EMAIL, channel_pb2.CHANNEL_KIND_SMS)) -> Preferences:  # type: ignore[no-untyped-def]
    from services.notification.domain.model import ChannelKind

    chosen = tuple(ChannelKind(k) for k in kinds)
    return Preferences(phone_number=PHONE, phone_verified=True, email=EMAIL, email_verified=True,
                       push_tokens=frozenset({TOKEN}), severity_channels={Severity.WARNING: chosen},
                       escalation_delay=escalation)


async def _register(ns: NotificationRig, kind: int, address: str, user: str = USER) -> pb.Channel:
    response = await ns.stub.RegisterChannel(pb.RegisterChannelRequest(kind=kind, address=address), metadata=ns.auth(user))
    return response.channel


def _alert(alert_id: str = "alrt_000000000000001", state: int = alert_pb2.ALERT_STATE_OPEN) -> bytes:
    alert = alert_pb2.Alert(alert_id=alert_id, user_id=USER, account_number="5WW1", watch_id="w", kind=1,
                            severity=channel_pb2.SEVERITY_WARNING, state=state,
                            title="SPY delta 312 above band [-100, 300]", message="Delta moved from 280 to 312.")
    alert.raise_time.FromDatetime(datetime.now(UTC).replace(tzinfo=None))
    return alert.SerializeToString()


async def _wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_unverified_contacts_cannot_be_registered(ns: NotificationRig) -> None:
    ns.directory.users[USER] = Preferences(phone_number=PHONE, phone_verified=False)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _register(ns, channel_pb2.CHANNEL_KIND_SMS, PHONE)
    error = decode_error(raised.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONTACT_NOT_VERIFIED")
    assert ns.twilio.create_requests == 0


@pytest.mark.parametrize(
    ("kind", "address", "reason"),
    [
        (channel_pb2.CHANNEL_KIND_UNSPECIFIED, "x", "FIELD_REQUIRED"),
        (channel_pb2.CHANNEL_KIND_SMS, "", "FIELD_REQUIRED"),
        (channel_pb2.CHANNEL_KIND_SMS, "415-555", "PHONE_NUMBER_INVALID"),
        (channel_pb2.CHANNEL_KIND_EMAIL, "nope", "EMAIL_INVALID"),
    ],
)
async def test_bad_channels_are_rejected(ns: NotificationRig, kind: int, address: str, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _register(ns, kind, address)
    error = decode_error(raised.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)


async def test_register_is_idempotent_and_lists(ns: NotificationRig) -> None:
    ns.directory.users[USER] = _verified()
    first = await _register(ns, channel_pb2.CHANNEL_KIND_SMS, "+1 415 555 0100")
    again = await _register(ns, channel_pb2.CHANNEL_KIND_SMS, PHONE)
    assert first.channel_id == again.channel_id and first.address == PHONE
    listed = await ns.stub.ListChannels(pb.ListChannelsRequest(), metadata=ns.auth(USER))
    assert [c.channel_id for c in listed.channels] == [first.channel_id]
    assert (await ns.stub.ListChannels(pb.ListChannelsRequest(), metadata=ns.auth(OTHER))).channels == []


async def test_send_test_notification_on_each_channel(ns: NotificationRig) -> None:
    ns.directory.users[USER] = _verified()
    sms = await _register(ns, channel_pb2.CHANNEL_KIND_SMS, PHONE)
    mail = await _register(ns, channel_pb2.CHANNEL_KIND_EMAIL, EMAIL)
    push = await _register(ns, channel_pb2.CHANNEL_KIND_PUSH, TOKEN)
    for channel in (sms, mail, push):
        response = await ns.stub.SendTestNotification(
            pb.SendTestNotificationRequest(channel_id=channel.channel_id, message="hello"), metadata=ns.auth(USER)
        )
        assert response.delivery.status == pb.DELIVERY_STATUS_SENT and response.delivery.test
    assert len(ns.twilio.messages) == 1 and ns.twilio.messages[0].body.startswith("hello")
    assert len(ns.inbox.messages) == 1
    assert len(ns.fcm.delivered) == 1
    listed = await ns.stub.ListDeliveries(pb.ListDeliveriesRequest(), metadata=ns.auth(USER))
    assert len(listed.deliveries) == 3
    assert {d.masked_address for d in listed.deliveries} >= {"+1******0100", "t***@example.com"}


async def test_test_notifications_are_throttled(ns: NotificationRig) -> None:
    ns.directory.users[USER] = _verified()
    mail = await _register(ns, channel_pb2.CHANNEL_KIND_EMAIL, EMAIL)
    for _ in range(5):
        await ns.stub.SendTestNotification(pb.SendTestNotificationRequest(channel_id=mail.channel_id), metadata=ns.auth(USER))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ns.stub.SendTestNotification(pb.SendTestNotificationRequest(channel_id=mail.channel_id), metadata=ns.auth(USER))
    error = decode_error(raised.value)
    assert error.reason == "TEST_THROTTLED" and error.retry_after is not None and error.retry_after > 0


async def test_failed_test_is_unavailable_and_listed(ns: NotificationRig) -> None:
    ns.directory.users[USER] = _verified()
    sms = await _register(ns, channel_pb2.CHANNEL_KIND_SMS, PHONE)
    ns.twilio.fail_next(400, 21610)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ns.stub.SendTestNotification(pb.SendTestNotificationRequest(channel_id=sms.channel_id), metadata=ns.auth(USER))
    assert decode_error(raised.value).reason == "PROVIDER_UNAVAILABLE"
    failed = await ns.stub.ListDeliveries(pb.ListDeliveriesRequest(status=pb.DELIVERY_STATUS_FAILED), metadata=ns.auth(USER))
    assert len(failed.deliveries) == 1 and "21610" in failed.deliveries[0].last_error


async def test_an_alert_on_the_bus_is_delivered_once_per_channel_even_when_redelivered(ns: NotificationRig) -> None:
    ns.directory.users[USER] = _verified()
    await _register(ns, channel_pb2.CHANNEL_KIND_SMS, PHONE)
    await _register(ns, channel_pb2.CHANNEL_KIND_EMAIL, EMAIL)
    # Published twice with different message ids, as a publisher retrying an unconfirmed message would.
    await ns.bus.publish("deltamonitor.alert.raised", _alert(), "alrt_000000000000001")
    await ns.bus.publish("deltamonitor.alert.raised", _alert(), "alrt_000000000000001-retry")

    async def delivered() -> bool:
        return ns.assembly.consumer.handled == 2

    await _wait_for(delivered)
    assert len(ns.twilio.messages) == 1 and len(ns.inbox.messages) == 1
    assert ns.inbox.messages[0]["Message-ID"] == "<alrt_000000000000001@tastyplat>"
    listed = await ns.stub.ListDeliveries(pb.ListDeliveriesRequest(alert_id="alrt_000000000000001"), metadata=ns.auth(USER))
    assert sorted(d.status for d in listed.deliveries) == [pb.DELIVERY_STATUS_SENT] * 2


async def test_escalation_stops_when_the_alert_is_acknowledged(ns: NotificationRig) -> None:
    ns.directory.users[USER] = _verified(escalation=timedelta(milliseconds=400))
    await _register(ns, channel_pb2.CHANNEL_KIND_EMAIL, EMAIL)
    await _register(ns, channel_pb2.CHANNEL_KIND_SMS, PHONE)
    await ns.bus.publish("deltamonitor.alert.raised", _alert(), "a1")
    await ns.bus.publish("deltamonitor.alert.acknowledged", _alert(state=alert_pb2.ALERT_STATE_ACKNOWLEDGED), "a1.ack")

    async def settled() -> bool:
        listed = await ns.stub.ListDeliveries(pb.ListDeliveriesRequest(), metadata=ns.auth(USER))
        return sorted(d.status for d in listed.deliveries) == [pb.DELIVERY_STATUS_SENT, pb.DELIVERY_STATUS_SUPPRESSED]

    await _wait_for(settled)
    assert len(ns.inbox.messages) == 1 and ns.twilio.messages == []


async def test_unacknowledged_alert_escalates_to_the_next_channel(ns: NotificationRig) -> None:
    ns.directory.users[USER] = _verified(escalation=timedelta(milliseconds=300))
    await _register(ns, channel_pb2.CHANNEL_KIND_EMAIL, EMAIL)
    await _register(ns, channel_pb2.CHANNEL_KIND_SMS, PHONE)
    await ns.bus.publish("deltamonitor.alert.raised", _alert("alrt_000000000000002"), "a2")

    async def escalated() -> bool:
        return len(ns.twilio.messages) == 1

    await _wait_for(escalated)
    assert len(ns.inbox.messages) == 1


async def test_delete_channel(ns: NotificationRig) -> None:
    ns.directory.users[USER] = _verified()
    mail = await _register(ns, channel_pb2.CHANNEL_KIND_EMAIL, EMAIL)
    await ns.stub.DeleteChannel(pb.DeleteChannelRequest(channel_id=mail.channel_id), metadata=ns.auth(USER))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ns.stub.DeleteChannel(pb.DeleteChannelRequest(channel_id=mail.channel_id), metadata=ns.auth(USER))
    assert decode_error(raised.value).reason == "CHANNEL_NOT_FOUND"


async def test_verification_codes_from_the_user_service_reach_the_unverified_contact_once(ns: NotificationRig) -> None:
    import json as _json

    event = {"user_id": USER, "channel": "sms", "destination": "+14155550199", "purpose": "contact_verification",
             "code": "482913", "expire_time": (datetime.now(UTC) + timedelta(minutes=10)).isoformat()}
    payload = _json.dumps(event).encode()
    await ns.bus.publish("user.code.requested", payload, "code-1")

    async def sent() -> bool:
        return ns.assembly.user_events.sent == 1 and len(ns.twilio.messages) == 1

    await _wait_for(sent)

    class Redelivered:
        """The same bus message again, as after a consumer restart (the bus's own dedupe window is gone)."""

        topic, message_id, acked = "user.code.requested", "code-1", False

        async def ack(self) -> None:
            self.acked = True

    again = Redelivered()
    again.payload = payload  # type: ignore[attr-defined]
    await ns.assembly.user_events.handle(again)
    assert again.acked and len(ns.twilio.messages) == 1
    assert ns.twilio.messages[0].to == "+14155550199" and "482913" in ns.twilio.messages[0].body


async def test_a_deleted_user_is_forgotten(ns: NotificationRig) -> None:
    import json as _json

    ns.directory.users[USER] = _verified()
    await _register(ns, channel_pb2.CHANNEL_KIND_EMAIL, EMAIL)
    await ns.bus.publish("user.deleted", _json.dumps({"user_id": USER, "delete_time": "2024-01-02T00:00:00+00:00"}).encode(), "del-1")

    async def forgotten() -> bool:
        return await ns.store.user_channels(USER) == []

    await _wait_for(forgotten)
