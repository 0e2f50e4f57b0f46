"""Notification preferences: contact points, push devices, quiet hours and channels per alert severity."""

from __future__ import annotations

import enum
import functools
import re
import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta

from services.user.domain.errors import (
    FieldInvalid,
    FieldRequired,
    PhoneNumberInvalid,
    TimeZoneInvalid,
    UpdateMaskInvalid,
)
from services.user.domain.model import normalize_email
from services.user.domain.verification import ContactChannel

__all__ = [
    "Channel",
    "Contact",
    "NotificationPreferences",
    "PreferencesPatch",
    "PushDevice",
    "PushPlatform",
    "QuietHours",
    "Severity",
    "normalize_phone_number",
]

MAX_PUSH_DEVICES = 10
MAX_DEVICE_TOKEN_LENGTH = 4096
MAX_DISPLAY_NAME_LENGTH = 64
MAX_ESCALATION_DELAY = timedelta(hours=24)
MINUTES_PER_DAY = 24 * 60
_FIELD = "notification_preferences"
# E.164: a plus, a country code not starting with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")


class Channel(enum.Enum):
    """A way to deliver a notification."""

    SMS = "sms"
    EMAIL = "email"
    PUSH = "push"
    STREAM = "stream"


class Severity(enum.Enum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class PushPlatform(enum.Enum):
    """The kind of device a push token belongs to."""

    ANDROID = "android"
    IOS = "ios"
    WEB = "web"


def normalize_phone_number(raw: str, *, field_name: str = f"{_FIELD}.phone_number") -> str:
    """Return a phone number in E.164 form (separators such as spaces, dots and dashes removed).

    Raises:
        PhoneNumberInvalid: it is not ``+`` followed by 7..15 digits with a country code.
    """
    number = _PHONE_SEPARATORS.sub("", raw)
    if not _E164.match(number):
        raise PhoneNumberInvalid(field_name, "must be an E.164 number such as +14155550100")
    return number


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True, slots=True)
class Contact:
    """A phone number or e-mail address and whether its owner has confirmed it.

    Attributes:
        address: E.164 number or canonical e-mail address.
        verified_at: When the owner typed back the code sent to it, or None.
    """

    address: str
    verified_at: datetime | None = None

    @property
    def verified(self) -> bool:
        """Whether the contact may receive alerts."""
        return self.verified_at is not None


@dataclass(frozen=True, slots=True)
class PushDevice:
    """A device registered for push notifications.

    Attributes:
        device_token: The FCM registration token.
        platform: Android, iOS or web.
        display_name: A name the user recognises.
        registered_at: When it was first registered.
    """

    device_token: str
    platform: PushPlatform
    display_name: str = ""
    registered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily local-time window in which only allowed alerts go out.

    Attributes:
        enabled: Whether the window applies.
        time_zone: IANA zone of the window.
        start_minute: Start, minutes after local midnight (0..1439).
        end_minute: End, minutes after local midnight (0..1439); the window wraps midnight if end < start.
        allow_critical: Whether critical alerts go out during the window anyway.
    """

    enabled: bool = False
    time_zone: str = "UTC"
    start_minute: int = 22 * 60
    end_minute: int = 7 * 60
    allow_critical: bool = True

    def validated(self, field_name: str = f"{_FIELD}.quiet_hours") -> QuietHours:
        """Return self after checking its values.

        Raises:
            TimeZoneInvalid: ``time_zone`` is not an IANA zone.
            FieldInvalid: a minute is outside 0..1439, or start equals end while enabled.
        """
        if self.time_zone not in _time_zones():
            raise TimeZoneInvalid(f"{field_name}.time_zone", f"{self.time_zone[:64]!r} is not an IANA time zone")
        for name in ("start_minute", "end_minute"):
            value = getattr(self, name)
            if not 0 <= value < MINUTES_PER_DAY:
                raise FieldInvalid(f"{field_name}.{name}", f"must be within 0..{MINUTES_PER_DAY - 1}, got {value}")
        if self.enabled and self.start_minute == self.end_minute:
            raise FieldInvalid(f"{field_name}.end_minute", "must differ from start_minute")
        return self

    def contains(self, at: datetime) -> bool:
        """Whether the aware datetime ``at`` falls inside the window."""
        if not self.enabled:
            return False
        local = at.astimezone(zoneinfo.ZoneInfo(self.time_zone))
        minute = local.hour * 60 + local.minute
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute

    def ends_after(self, at: datetime) -> datetime:
        """The end of the window containing ``at`` (``at`` itself when it is outside the window)."""
        if not self.contains(at):
            return at
        zone = zoneinfo.ZoneInfo(self.time_zone)
        local = at.astimezone(zone)
        end = datetime.combine(local.date(), time(self.end_minute // 60, self.end_minute % 60), tzinfo=zone)
        if end <= local:
            end = datetime.combine(
                local.date() + timedelta(days=1), time(self.end_minute // 60, self.end_minute % 60), tzinfo=zone
            )
        return end.astimezone(at.tzinfo)


_DEFAULT_CHANNELS: tuple[tuple[Severity, tuple[Channel, ...]], ...] = (
    (Severity.INFO, (Channel.STREAM,)),
    (Severity.WARNING, (Channel.STREAM, Channel.PUSH, Channel.EMAIL)),
    (Severity.CRITICAL, (Channel.STREAM, Channel.PUSH, Channel.SMS, Channel.EMAIL)),
)

WRITABLE_PATHS = frozenset(
    {
        "phone_number",
        "email",
        "push_devices",
        "quiet_hours",
        "quiet_hours.enabled",
        "quiet_hours.time_zone",
        "quiet_hours.start_minute",
        "quiet_hours.end_minute",
        "quiet_hours.allow_critical",
        "severity_channels",
        "escalation_delay",
    }
)
TOP_LEVEL_PATHS = frozenset(p for p in WRITABLE_PATHS if "." not in p)


@dataclass(frozen=True, slots=True)
class PreferencesPatch:
    """New values for some preference fields.

    Attributes:
        paths: The fields to change (``WRITABLE_PATHS``; ``quiet_hours.x`` changes one sub-field).
        phone_number: New phone number; empty removes it.
        email: New alert e-mail address; empty removes it.
        push_devices: New device list (registration times are kept for known tokens).
        quiet_hours: New quiet hours (or the source of the sub-fields named in ``paths``).
        severity_channels: New channels per severity.
        escalation_delay: New escalation delay.
    """

    paths: frozenset[str]
    phone_number: str = ""
    email: str = ""
    push_devices: tuple[PushDevice, ...] = ()
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    severity_channels: tuple[tuple[Severity, tuple[Channel, ...]], ...] = ()
    escalation_delay: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class NotificationPreferences:
    """Where and when a user wants to hear about alerts.

    Attributes:
        phone: SMS contact, or None.
        email: Alert e-mail contact, or None.
        push_devices: Devices registered for push.
        quiet_hours: The daily quiet window.
        severity_channels: Channels per severity, in escalation order; a missing severity goes to the stream.
        escalation_delay: How long an alert may stay unacknowledged before going to the next channel.
    """

    phone: Contact | None = None
    email: Contact | None = None
    push_devices: tuple[PushDevice, ...] = ()
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    severity_channels: tuple[tuple[Severity, tuple[Channel, ...]], ...] = _DEFAULT_CHANNELS
    escalation_delay: timedelta = timedelta(minutes=5)

    @classmethod
    def default_for(cls, login_email: str) -> NotificationPreferences:
        """Preferences of a new user: alerts by e-mail to the login address, once it is verified."""
        return cls(email=Contact(login_email))

    def contact(self, channel: ContactChannel) -> Contact | None:
        """The contact for SMS or e-mail."""
        return self.phone if channel is ContactChannel.SMS else self.email

    def with_contact_verified(self, channel: ContactChannel, address: str, at: datetime) -> NotificationPreferences:
        """Return the preferences with the contact verified, if it still is ``address``."""
        current = self.contact(channel)
        if current is None or current.address != address or current.verified:
            return self
        verified = Contact(address, verified_at=at)
        return replace(self, phone=verified) if channel is ContactChannel.SMS else replace(self, email=verified)

    def channels_for(self, severity: Severity) -> tuple[Channel, ...]:
        """The channels the user chose for ``severity`` (the stream alone when none)."""
        return dict(self.severity_channels).get(severity, (Channel.STREAM,))

    def deliverable(self, severity: Severity, at: datetime) -> tuple[Channel, ...]:
        """The channels an alert of ``severity`` raised at ``at`` may use now.

        Unverified contacts and missing devices are skipped; inside quiet hours only the stream is used
        unless the alert is critical and the user allows critical alerts then.
        """
        usable = []
        quiet = self.quiet_hours.contains(at) and not (
            severity is Severity.CRITICAL and self.quiet_hours.allow_critical
        )
        for channel in self.channels_for(severity):
            if quiet and channel is not Channel.STREAM:
                continue
            if channel is Channel.SMS and not (self.phone and self.phone.verified):
                continue
            if channel is Channel.EMAIL and not (self.email and self.email.verified):
                continue
            if channel is Channel.PUSH and not self.push_devices:
                continue
            usable.append(channel)
        return tuple(usable)

    def apply(
        self, patch: PreferencesPatch, now: datetime, *, verified_login_email: str | None = None
    ) -> tuple[NotificationPreferences, frozenset[ContactChannel]]:
        """Return the preferences with ``patch`` applied, and the contacts that changed (now unverified).

        Args:
            patch: The new values and the paths to take from it.
            now: The current time (registration time of new devices).
            verified_login_email: The user's login address if verified: setting it as the alert address
                needs no new code.

        Raises:
            UpdateMaskInvalid: a path is unknown or output only.
            PhoneNumberInvalid, EmailInvalid, TimeZoneInvalid, FieldInvalid, FieldRequired: a bad value.
        """
        for path in sorted(patch.paths):
            if path not in WRITABLE_PATHS:
                raise UpdateMaskInvalid("update_mask", f"{path!r} is not a writable field of NotificationPreferences")
        paths = patch.paths
        result = self
        changed: set[ContactChannel] = set()
        if "phone_number" in paths:
            phone = normalize_phone_number(patch.phone_number) if patch.phone_number.strip() else None
            new_phone = _keep_verification(self.phone, phone, None)
            if new_phone is not None and new_phone != self.phone:
                changed.add(ContactChannel.SMS)
            result = replace(result, phone=new_phone)
        if "email" in paths:
            email = normalize_email(patch.email, field_name=f"{_FIELD}.email") if patch.email.strip() else None
            login_proof = (verified_login_email, now) if verified_login_email else None
            new_email = _keep_verification(self.email, email, login_proof)
            if new_email is not None and new_email != self.email and not new_email.verified:
                changed.add(ContactChannel.EMAIL)
            result = replace(result, email=new_email)
        if "push_devices" in paths:
            result = replace(result, push_devices=_merge_devices(self.push_devices, patch.push_devices, now))
        quiet_paths = {p for p in paths if p == "quiet_hours" or p.startswith("quiet_hours.")}
        if quiet_paths:
            if "quiet_hours" in quiet_paths:
                quiet = patch.quiet_hours
            else:
                quiet = replace(
                    self.quiet_hours,
                    **{p.split(".", 1)[1]: getattr(patch.quiet_hours, p.split(".", 1)[1]) for p in quiet_paths},
                )
            result = replace(result, quiet_hours=quiet.validated())
        if "severity_channels" in paths:
            result = replace(result, severity_channels=_validated_channels(patch.severity_channels))
        if "escalation_delay" in paths:
            delay = patch.escalation_delay
            if not timedelta(0) <= delay <= MAX_ESCALATION_DELAY:
                raise FieldInvalid(f"{_FIELD}.escalation_delay", "must be within 0 s..24 h")
            result = replace(result, escalation_delay=delay)
        return result, frozenset(changed)


def _keep_verification(
    current: Contact | None, address: str | None, verified_elsewhere: tuple[str, datetime] | None
) -> Contact | None:
    if address is None:
        return None
    if current is not None and current.address == address:
        return current
    if verified_elsewhere is not None and verified_elsewhere[0] == address:
        return Contact(address, verified_at=verified_elsewhere[1])
    return Contact(address)


def _merge_devices(
    current: tuple[PushDevice, ...], devices: tuple[PushDevice, ...], now: datetime
) -> tuple[PushDevice, ...]:
    if len(devices) > MAX_PUSH_DEVICES:
        raise FieldInvalid(f"{_FIELD}.push_devices", f"at most {MAX_PUSH_DEVICES} devices")
    known = {d.device_token: d for d in current}
    merged: dict[str, PushDevice] = {}
    for i, device in enumerate(devices):
        where = f"{_FIELD}.push_devices[{i}]"
        token = device.device_token.strip()
        if not token:
            raise FieldRequired(f"{where}.device_token")
        if len(token) > MAX_DEVICE_TOKEN_LENGTH:
            raise FieldInvalid(f"{where}.device_token", f"at most {MAX_DEVICE_TOKEN_LENGTH} characters")
        if len(device.display_name) > MAX_DISPLAY_NAME_LENGTH:
            raise FieldInvalid(f"{where}.display_name", f"at most {MAX_DISPLAY_NAME_LENGTH} characters")
        previous = known.get(token)
        registered = previous.registered_at if previous is not None else now
        merged[token] = PushDevice(token, device.platform, device.display_name.strip(), registered)
    return tuple(merged.values())


def _validated_channels(
    entries: tuple[tuple[Severity, tuple[Channel, ...]], ...],
) -> tuple[tuple[Severity, tuple[Channel, ...]], ...]:
    seen: dict[Severity, tuple[Channel, ...]] = {}
    for i, (severity, channels) in enumerate(entries):
        where = f"{_FIELD}.severity_channels[{i}]"
        if severity in seen:
            raise FieldInvalid(f"{where}.severity", f"{severity.name} appears twice")
        if len(set(channels)) != len(channels):
            raise FieldInvalid(f"{where}.channels", "a channel appears twice")
        seen[severity] = tuple(channels)
    order = list(Severity)
    return tuple(sorted(seen.items(), key=lambda item: order.index(item[0])))

