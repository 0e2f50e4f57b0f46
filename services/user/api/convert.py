"""Conversions between ``tastyplat.user.v1`` messages and the user service's domain values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from tastyplat.type.v1 import channel_pb2
from tastyplat.user.v1 import user_service_pb2 as pb

from services.user.app import TokenGrant, UserView
from services.user.domain.errors import FieldInvalid, FieldRequired
from services.user.domain.model import Role
from services.user.domain.preferences import (
    TOP_LEVEL_PATHS,
    Channel,
    NotificationPreferences,
    PreferencesPatch,
    PushDevice,
    PushPlatform,
    QuietHours,
    Severity,
)
from services.user.domain.verification import ContactChannel

__all__ = [
    "contact_channel_from_proto",
    "jwks_to_proto",
    "patch_from_proto",
    "preferences_to_proto",
    "roles_from_proto",
    "timestamp",
    "tokens_to_proto",
    "user_to_proto",
]

_ROLE_TO_PROTO = {Role.TRADER: pb.ROLE_TRADER, Role.ADMIN: pb.ROLE_ADMIN, Role.READONLY: pb.ROLE_READONLY}
_ROLE_FROM_PROTO: dict[int, Role] = {v: k for k, v in _ROLE_TO_PROTO.items()}
_CHANNEL_TO_PROTO = {
    Channel.SMS: channel_pb2.CHANNEL_KIND_SMS,
    Channel.EMAIL: channel_pb2.CHANNEL_KIND_EMAIL,
    Channel.PUSH: channel_pb2.CHANNEL_KIND_PUSH,
    Channel.STREAM: channel_pb2.CHANNEL_KIND_STREAM,
}
_CHANNEL_FROM_PROTO: dict[int, Channel] = {v: k for k, v in _CHANNEL_TO_PROTO.items()}
_SEVERITY_TO_PROTO = {
    Severity.INFO: channel_pb2.SEVERITY_INFO,
    Severity.WARNING: channel_pb2.SEVERITY_WARNING,
    Severity.CRITICAL: channel_pb2.SEVERITY_CRITICAL,
}
_SEVERITY_FROM_PROTO: dict[int, Severity] = {v: k for k, v in _SEVERITY_TO_PROTO.items()}
_PLATFORM_TO_PROTO = {
    PushPlatform.ANDROID: pb.PUSH_PLATFORM_ANDROID,
    PushPlatform.IOS: pb.PUSH_PLATFORM_IOS,
    PushPlatform.WEB: pb.PUSH_PLATFORM_WEB,
}
_PLATFORM_FROM_PROTO: dict[int, PushPlatform] = {v: k for k, v in _PLATFORM_TO_PROTO.items()}
_CONTACT_FROM_PROTO: dict[int, ContactChannel] = {
    channel_pb2.CHANNEL_KIND_SMS: ContactChannel.SMS,
    channel_pb2.CHANNEL_KIND_EMAIL: ContactChannel.EMAIL,
}
_PREFS = "notification_preferences"
# Proto-field paths of NotificationPreferences that exist but cannot be written.
_OUTPUT_ONLY = frozenset({"phone_number_verified", "email_verified"})


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp for an aware datetime."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def _duration(value: timedelta) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def preferences_to_proto(p: NotificationPreferences) -> pb.NotificationPreferences:
    """NotificationPreferences message for the domain preferences."""
    message = pb.NotificationPreferences(
        phone_number=p.phone.address if p.phone else "",
        phone_number_verified=bool(p.phone and p.phone.verified),
        email=p.email.address if p.email else "",
        email_verified=bool(p.email and p.email.verified),
        quiet_hours=pb.QuietHours(
            enabled=p.quiet_hours.enabled,
            time_zone=p.quiet_hours.time_zone,
            start_minute=p.quiet_hours.start_minute,
            end_minute=p.quiet_hours.end_minute,
            allow_critical=p.quiet_hours.allow_critical,
        ),
        escalation_delay=_duration(p.escalation_delay),
    )
    for device in p.push_devices:
        entry = message.push_devices.add(
            device_token=device.device_token,
            platform=_PLATFORM_TO_PROTO[device.platform],
            display_name=device.display_name,
        )
        if device.registered_at is not None:
            entry.register_time.CopyFrom(timestamp(device.registered_at))
    for severity, channels in p.severity_channels:
        message.severity_channels.add(
            severity=_SEVERITY_TO_PROTO[severity], channels=[_CHANNEL_TO_PROTO[c] for c in channels]
        )
    return message


def user_to_proto(view: UserView) -> pb.User:
    """User message; preferences only when the view carries them."""
    user = view.user
    message = pb.User(
        user_id=user.user_id,
        email=user.email,
        email_verified=user.email_verified,
        roles=[_ROLE_TO_PROTO[r] for r in sorted(user.roles, key=list(Role).index)],
        create_time=timestamp(user.created_at),
        update_time=timestamp(user.updated_at),
    )
    if view.preferences is not None:
        message.notification_preferences.CopyFrom(preferences_to_proto(view.preferences))
    return message


def tokens_to_proto(grant: TokenGrant) -> pb.TokenPair:
    """TokenPair message for a grant."""
    return pb.TokenPair(
        access_token=grant.access_token,
        token_type="Bearer",
        access_token_expire_time=timestamp(grant.access_expires_at),
        refresh_token=grant.refresh_token,
        refresh_token_expire_time=timestamp(grant.refresh_expires_at),
    )


def jwks_to_proto(keys: Sequence[Mapping[str, str]]) -> pb.GetJwksResponse:
    """GetJwksResponse for public JWKs."""
    response = pb.GetJwksResponse()
    for jwk in keys:
        response.keys.add(
            kty=jwk["kty"], crv=jwk.get("crv", ""), x=jwk["x"], y=jwk.get("y", ""), kid=jwk["kid"],
            use=jwk.get("use", "sig"), alg=jwk["alg"],
        )
    return response


def roles_from_proto(values: Sequence[int]) -> list[Role]:
    """Domain roles; UNSPECIFIED or an unknown number is FIELD_REQUIRED / FIELD_INVALID."""
    roles = []
    for i, value in enumerate(values):
        if value == pb.ROLE_UNSPECIFIED:
            raise FieldRequired(f"roles[{i}]", "ROLE_UNSPECIFIED is not a role")
        role = _ROLE_FROM_PROTO.get(value)
        if role is None:
            raise FieldInvalid(f"roles[{i}]", f"unknown role {value}")
        roles.append(role)
    return roles


def contact_channel_from_proto(value: int) -> ContactChannel:
    """SMS or e-mail; any other channel kind is FIELD_INVALID."""
    channel = _CONTACT_FROM_PROTO.get(value)
    if channel is None:
        raise FieldInvalid("channel", "must be CHANNEL_KIND_SMS or CHANNEL_KIND_EMAIL")
    return channel


def _mask_paths(mask: field_mask_pb2.FieldMask, has_mask: bool) -> frozenset[str]:
    if not has_mask or not mask.paths:
        return TOP_LEVEL_PATHS
    return frozenset(p.strip() for p in mask.paths)


def patch_from_proto(
    prefs: pb.NotificationPreferences, mask: field_mask_pb2.FieldMask, *, has_mask: bool
) -> PreferencesPatch:
    """The domain patch for an UpdateNotificationPreferences request (empty mask: every writable field).

    Raises:
        UpdateMaskInvalid: (from the domain, when applied) a path that is not writable.
        FieldInvalid, FieldRequired: an UNSPECIFIED or unknown enum, or a negative duration.
    """
    paths = _mask_paths(mask, has_mask)
    devices = []
    for i, device in enumerate(prefs.push_devices):
        if device.platform == pb.PUSH_PLATFORM_UNSPECIFIED:
            raise FieldInvalid(f"{_PREFS}.push_devices[{i}].platform", "PUSH_PLATFORM_UNSPECIFIED is not allowed")
        platform = _PLATFORM_FROM_PROTO.get(device.platform)
        if platform is None:
            raise FieldInvalid(f"{_PREFS}.push_devices[{i}].platform", f"unknown platform {device.platform}")
        devices.append(PushDevice(device.device_token, platform, device.display_name))
    channels = []
    for i, entry in enumerate(prefs.severity_channels):
        severity = _SEVERITY_FROM_PROTO.get(entry.severity)
        if severity is None:
            raise FieldInvalid(f"{_PREFS}.severity_channels[{i}].severity", "must be INFO, WARNING or CRITICAL")
        kinds = []
        for j, kind in enumerate(entry.channels):
            channel = _CHANNEL_FROM_PROTO.get(kind)
            if channel is None:
                raise FieldInvalid(
                    f"{_PREFS}.severity_channels[{i}].channels[{j}]", "must be SMS, EMAIL, PUSH or STREAM"
                )
            kinds.append(channel)
        channels.append((severity, tuple(kinds)))
    delay = prefs.escalation_delay.ToTimedelta()
    if prefs.escalation_delay.seconds < 0 or prefs.escalation_delay.nanos < 0:
        raise FieldInvalid(f"{_PREFS}.escalation_delay", "must not be negative")
    quiet = prefs.quiet_hours
    return PreferencesPatch(
        paths=paths,
        phone_number=prefs.phone_number,
        email=prefs.email,
        push_devices=tuple(devices),
        quiet_hours=QuietHours(
            enabled=quiet.enabled,
            time_zone=quiet.time_zone or "UTC",
            start_minute=quiet.start_minute,
            end_minute=quiet.end_minute,
            allow_critical=quiet.allow_critical,
        ),
        severity_channels=tuple(channels),
        escalation_delay=delay,
    )
