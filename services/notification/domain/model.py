"""Value types of the notification service: channels, deliveries, the user's preferences and alert notices.

Enum values carry the numbers of the contract's enums.
"""

from __future__ import annotations

import enum
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from services.notification.domain.errors import EmailInvalid, PhoneNumberInvalid

__all__ = [
    "AlertNotice",
    "Channel",
    "ChannelKind",
    "ChannelState",
    "Delivery",
    "DeliveryStatus",
    "Preferences",
    "QuietHours",
    "Severity",
    "mask_address",
    "normalize_email",
    "normalize_phone",
]

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


class ChannelKind(enum.IntEnum):
    """A way to deliver a notification."""

    SMS = 1
    EMAIL = 2
    PUSH = 3
    STREAM = 4


class ChannelState(enum.IntEnum):
    """Whether a channel is used."""

    ACTIVE = 1
    DISABLED = 2


class Severity(enum.IntEnum):
    """How urgent an alert is."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3


class DeliveryStatus(enum.IntEnum):
    """Where a delivery is (see ``domain.delivery`` for the machine)."""

    PENDING = 1
    ATTEMPTING = 2
    SENT = 3
    RETRYING = 4
    FAILED = 5
    SUPPRESSED = 6


def normalize_phone(raw: str, field_name: str = "address") -> str:
    """A phone number in E.164 form (separators removed).

    Raises:
        PhoneNumberInvalid: not ``+`` and 7..15 digits with a country code.
    """
    number = _PHONE_SEPARATORS.sub("", raw)
    if not _E164.match(number):
        raise PhoneNumberInvalid(field_name, "must be an E.164 number such as +14155550100")
    return number


def normalize_email(raw: str, field_name: str = "address") -> str:
    """The canonical (trimmed, lower-cased) form of an e-mail address.

    Raises:
        EmailInvalid: not a plausible address.
    """
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise EmailInvalid(field_name, "is not a valid e-mail address")
    return email


def mask_address(kind: ChannelKind, address: str) -> str:
    """The destination with most of it hidden: ``+1******0100``, ``j***@example.com``, ``…a1b2`` for tokens."""
    if kind is ChannelKind.SMS:
        return address[:2] + "*" * max(0, len(address) - 6) + address[-4:]
    if kind is ChannelKind.EMAIL:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if kind is ChannelKind.PUSH:
        return "…" + address[-4:]
    return ""


@dataclass(frozen=True, slots=True)
class Channel:
    """A registered destination of a user."""

    channel_id: str
    user_id: str
    kind: ChannelKind
    address: str
    display_name: str
    state: ChannelState
    create_time: datetime


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily local-time window in which only the stream (and, if allowed, critical alerts) goes out."""

    enabled: bool = False
    time_zone: str = "UTC"
    start_minute: int = 22 * 60
    end_minute: int = 7 * 60
    allow_critical: bool = True

    def _zone(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` is inside the window."""
        if not self.enabled or self.start_minute == self.end_minute:
            return False
        local = at.astimezone(self._zone())
        minute = local.hour * 60 + local.minute
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute

    def end_after(self, at: datetime) -> datetime:
        """The end of the window containing ``at`` (``at`` when outside it)."""
        if not self.contains(at):
            return at
        zone = self._zone()
        local = at.astimezone(zone)
        end_time = time(self.end_minute // 60, self.end_minute % 60)
        end = datetime.combine(local.date(), end_time, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), end_time, tzinfo=zone)
        return end.astimezone(at.tzinfo)


DEFAULT_SEVERITY_CHANNELS: dict[Severity, tuple[ChannelKind, ...]] = {
    Severity.INFO: (ChannelKind.STREAM,),
    Severity.WARNING: (ChannelKind.STREAM, ChannelKind.PUSH, ChannelKind.EMAIL),
    Severity.CRITICAL: (ChannelKind.STREAM, ChannelKind.PUSH, ChannelKind.SMS, ChannelKind.EMAIL),
}


@dataclass(frozen=True, slots=True)
class Preferences:
    """A user's notification preferences as the user service last reported them.

    Attributes:
        phone_number: E.164 number, or "".
        phone_verified: Whether the number is verified.
        email: Alert e-mail address, or "".
        email_verified: Whether it is verified.
        push_tokens: Registered device tokens.
        quiet_hours: The quiet window.
        severity_channels: Channel kinds per severity, in escalation order.
        escalation_delay: Delay between escalation levels; zero sends every level at once.
        fetched_at: When the user service reported them.
    """

    phone_number: str = ""
    phone_verified: bool = False
    email: str = ""
    email_verified: bool = False
    push_tokens: frozenset[str] = frozenset()
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    severity_channels: dict[Severity, tuple[ChannelKind, ...]] = field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_CHANNELS)
    )
    escalation_delay: timedelta = timedelta(minutes=5)
    fetched_at: datetime | None = None

    def verified(self, kind: ChannelKind, address: str) -> bool:
        """Whether ``address`` is currently a verified destination of this kind."""
        if kind is ChannelKind.SMS:
            return bool(self.phone_verified and address == self.phone_number)
        if kind is ChannelKind.EMAIL:
            return bool(self.email_verified and address == self.email.lower())
        if kind is ChannelKind.PUSH:
            return address in self.push_tokens
        return True

    def kinds_for(self, severity: Severity) -> tuple[ChannelKind, ...]:
        """The channel kinds chosen for ``severity`` (the stream alone when none)."""
        return self.severity_channels.get(severity) or (ChannelKind.STREAM,)


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """What the notification service needs of an alert.

    Attributes:
        alert_id: The alert.
        user_id: Its owner.
        severity: Its severity.
        title: One-line summary.
        message: Plain-text body.
        raise_time: When it was raised.
        acknowledged: Whether the user acknowledged it.
    """

    alert_id: str
    user_id: str
    severity: Severity
    title: str
    message: str
    raise_time: datetime
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt-tracked delivery of one alert (or test) to one channel.

    Attributes:
        delivery_id: Server-assigned id.
        alert_id: The alert ("" for a test).
        user_id: The recipient.
        channel_id: The channel.
        channel_kind: Its kind.
        address: The full destination (never returned to clients; see ``mask_address``).
        status: Where it is.
        attempt_count: Provider calls made.
        escalation_level: Position of the channel kind in the escalation order.
        due_time: When it may be attempted (quiet hours and escalation delay it).
        provider_message_id: The provider's id once known.
        last_error: Last provider error.
        test: Whether it is a SendTestNotification.
        title: Notification title.
        body: Notification text.
        create_time: When it was created.
        update_time: When it last changed.
        send_time: When the provider accepted it.
        lease_until: Until when the worker that set ATTEMPTING/RETRYING owns it.
        ambiguous: Whether an earlier attempt may have reached the provider (reconcile before resending).
        attempt_started: When the current or last attempt began (reconciliation window).
        lease_owner: The worker holding the lease ("" when none).
    """

    delivery_id: str
    alert_id: str
    user_id: str
    channel_id: str
    channel_kind: ChannelKind
    address: str
    status: DeliveryStatus
    attempt_count: int
    escalation_level: int
    due_time: datetime
    title: str
    body: str
    create_time: datetime
    update_time: datetime
    provider_message_id: str = ""
    last_error: str = ""
    test: bool = False
    send_time: datetime | None = None
    lease_until: datetime | None = None
    ambiguous: bool = False
    attempt_started: datetime | None = None
    lease_owner: str = ""

    @property
    def reference(self) -> str:
        """The short tag put in SMS bodies so a sent message can be found in the provider's log."""
        return self.delivery_id.replace("-", "")[:10]
