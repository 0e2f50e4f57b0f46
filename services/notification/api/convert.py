"""Translation between the contract's messages (and the alert events on the bus) and the domain."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError
from tastyplat.notification.v1 import notification_service_pb2 as pb
from tastyplat.type.v1 import alert_pb2

from services.notification.domain.model import AlertNotice, Channel, Delivery, Severity, mask_address

__all__ = ["channel_to_proto", "decode_alert_event", "delivery_to_proto"]


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def channel_to_proto(channel: Channel) -> pb.Channel:
    """A channel as the contract's Channel."""
    return pb.Channel(
        channel_id=channel.channel_id,
        user_id=channel.user_id,
        kind=int(channel.kind),
        address=channel.address,
        display_name=channel.display_name,
        state=int(channel.state),
        create_time=_timestamp(channel.create_time),
    )


def delivery_to_proto(d: Delivery) -> pb.Delivery:
    """A delivery as the contract's Delivery (the address masked)."""
    out = pb.Delivery(
        delivery_id=d.delivery_id,
        alert_id=d.alert_id,
        user_id=d.user_id,
        channel_id=d.channel_id,
        channel_kind=int(d.channel_kind),
        masked_address=mask_address(d.channel_kind, d.address),
        status=int(d.status),
        attempt_count=d.attempt_count,
        escalation_level=d.escalation_level,
        provider_message_id=d.provider_message_id,
        last_error=d.last_error,
        test=d.test,
        create_time=_timestamp(d.create_time),
        update_time=_timestamp(d.update_time),
    )
    if d.send_time is not None:
        out.send_time.CopyFrom(_timestamp(d.send_time))
    return out


def decode_alert_event(payload: bytes) -> AlertNotice:
    """An alert event from the bus (serialized tastyplat.type.v1.Alert) as an ``AlertNotice``.

    Raises:
        ValueError: not an alert, or one without id, owner or raise time.
    """
    message = alert_pb2.Alert()
    try:
        message.ParseFromString(payload)
    except DecodeError as error:
        raise ValueError(f"not an Alert: {error}") from None
    if not message.alert_id or not message.user_id or not message.HasField("raise_time"):
        raise ValueError("alert event lacks id, user or raise time")
    try:
        severity = Severity(message.severity) if message.severity else Severity.WARNING
    except ValueError:
        raise ValueError(f"unknown severity {message.severity}") from None
    return AlertNotice(
        alert_id=message.alert_id,
        user_id=message.user_id,
        severity=severity,
        title=message.title or "Alert",
        message=message.message,
        raise_time=message.raise_time.ToDatetime(tzinfo=UTC),
        acknowledged=message.state == alert_pb2.ALERT_STATE_ACKNOWLEDGED,
    )
