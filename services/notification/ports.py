"""Ports of the notification service: storage, providers, the user directory, identity, dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.notification.domain.delivery import DeliveryEvent, PlannedDelivery
from services.notification.domain.model import (
    AlertNotice,
    Channel,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Preferences,
)
from services.platform.identity import Authenticator, Caller

__all__ = [
    "ALERT_PATTERNS",
    "ALERT_QUEUE",
    "DEAD_LETTER_TOPIC",
    "USER_PATTERNS",
    "USER_QUEUE",
    "Authenticator",
    "Caller",
    "ContactDirectory",
    "DeadLetters",
    "DeliveryQuery",
    "Provider",
    "ProviderError",
    "Store",
]

# The durable queue notification consumes alerts from, bound to the delta monitor's alert topics.
ALERT_QUEUE = "notification.alerts"
ALERT_PATTERNS = ("deltamonitor.alert.raised", "deltamonitor.alert.acknowledged")
# One-time codes and account deletions from the user service.
USER_QUEUE = "notification.user-events"
USER_PATTERNS = ("user.code.requested", "user.deleted")
DEAD_LETTER_TOPIC = "notification.delivery.failed"


class ContactDirectory(Protocol):
    """The user service's view of the caller's contacts and preferences."""

    async def preferences(self, caller: Caller) -> Preferences:
        """Return the caller's notification preferences with the verification state of each contact."""
        ...


class ProviderError(Exception):
    """A provider call failed.

    Attributes:
        permanent: Retrying cannot help (invalid number, unregistered token, rejected recipient).
        ambiguous: The message may have been accepted anyway (5xx after sending, timeout, reset).
        disable_channel: The destination is gone for good (e.g. FCM UNREGISTERED): disable the channel.
        retry_after: Seconds the provider asked to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        ambiguous: bool = False,
        disable_channel: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Create the error."""
        super().__init__(message)
        self.permanent = permanent
        self.ambiguous = ambiguous
        self.disable_channel = disable_channel
        self.retry_after = retry_after


class Provider(Protocol):
    """One delivery channel's provider (Twilio, SMTP, FCM, or the stream)."""

    kind: ChannelKind

    async def send(self, delivery: Delivery) -> str:
        """Hand the message to the provider once; return its message id.

        Raises:
            ProviderError: it did not (certainly) accept it.
        """
        ...

    async def reconcile(self, delivery: Delivery) -> str | None:
        """Ask the provider whether an earlier attempt of ``delivery`` got through; its id if so, None if not
        or if the provider cannot be asked."""
        ...


class DeadLetters(Protocol):
    """Where permanently failed deliveries are parked for operators."""

    async def publish(self, delivery: Delivery) -> None:
        """Park a failed delivery."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    """A validated ListDeliveries query (newest first)."""

    limit: int
    before: tuple[datetime, str] | None = None
    alert_id: str = ""
    channel_id: str = ""
    status: DeliveryStatus | None = None


class Store(Protocol):
    """Channels, preferences snapshots, acknowledged alerts and deliveries (PostgreSQL or in memory)."""

    async def start(self) -> None:
        """Connect and migrate."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def register_channel(self, channel: Channel, request_id: str, limit: int) -> Channel:
        """Store a channel, or return the user's existing one with the same kind and address / request id.

        Raises:
            ChannelLimitExceeded: the user has ``limit`` channels.
        """
        ...

    async def get_channel(self, user_id: str, channel_id: str) -> Channel | None:
        """The user's channel, or None."""
        ...

    async def list_channels(self, user_id: str, after: tuple[datetime, str] | None, limit: int) -> list[Channel]:
        """The user's channels by creation time."""
        ...

    async def delete_channel(self, user_id: str, channel_id: str) -> bool:
        """Delete a channel (its deliveries stay); False if there was none."""
        ...

    async def disable_channel(self, channel_id: str) -> None:
        """Mark a channel DISABLED (the provider rejected the destination for good)."""
        ...

    async def user_channels(self, user_id: str) -> list[Channel]:
        """Every channel of the user."""
        ...

    async def save_preferences(self, user_id: str, preferences: Preferences) -> None:
        """Keep the user's latest preferences."""
        ...

    async def get_preferences(self, user_id: str) -> Preferences | None:
        """The user's last known preferences, or None."""
        ...

    async def mark_acknowledged(self, alert_id: str, user_id: str) -> None:
        """Remember that an alert was acknowledged (stops escalation)."""
        ...

    async def is_acknowledged(self, alert_id: str) -> bool:
        """Whether the alert was acknowledged."""
        ...

    async def plan_deliveries(self, alert: AlertNotice, planned: Sequence[PlannedDelivery], now: datetime) -> list[Delivery]:
        """Insert the planned deliveries that do not exist yet (one per alert and channel); return every
        delivery of the alert."""
        ...

    async def add_delivery(self, delivery: Delivery) -> Delivery:
        """Insert one delivery (test notifications)."""
        ...

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """A delivery by id."""
        ...

    async def claim(self, delivery_id: str, owner: str, now: datetime, lease_until: datetime) -> tuple[Delivery, DeliveryStatus] | None:
        """Move a delivery to ATTEMPTING for ``owner`` if it may be attempted now, counting the attempt.

        A delivery may be claimed when it is PENDING or RETRYING and due, and not leased to another owner;
        or when it is ATTEMPTING and its lease expired (its worker died). Returns the claimed delivery and
        the status it had, or None.
        """
        ...

    async def transition(
        self, delivery_id: str, owner: str, event: DeliveryEvent, now: datetime, **changes: Any
    ) -> Delivery | None:
        """Apply ``event`` if the delivery is in one of its source statuses and leased to ``owner`` (or not
        leased); store ``changes`` (provider id, error, lease, ambiguity, due time) with it."""
        ...

    async def claimable(self, now: datetime, limit: int) -> list[str]:
        """Ids of deliveries that may be claimed now (due, or abandoned by a dead worker)."""
        ...

    async def list_deliveries(self, user_id: str, query: DeliveryQuery) -> list[Delivery]:
        """The user's deliveries, newest first."""
        ...

    async def test_times(self, user_id: str, since: datetime) -> list[datetime]:
        """When the user's test notifications since ``since`` were created."""
        ...

    async def code_sent(self, message_id: str) -> bool:
        """Whether the one-time code of this bus message was already handed to a provider."""
        ...

    async def record_code(self, message_id: str, user_id: str, kind: ChannelKind, provider_message_id: str, at: datetime) -> None:
        """Remember that a one-time code went out (never the code itself)."""
        ...

    async def delete_user(self, user_id: str) -> None:
        """Forget a deleted user: channels, preferences, deliveries."""
        ...
