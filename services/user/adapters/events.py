"""Publishing one-time codes and user events on the platform bus, and an in-memory recorder of events.

Topics and payloads (JSON, UTF-8), for the services that consume them:

- ``user.code.requested``: ``{"user_id", "channel": "sms"|"email", "destination", "purpose":
  "contact_verification"|"password_reset", "code", "expire_time"}``: a one-time code to deliver, the only
  message an unverified contact may receive. The payload carries a secret: consumers must not log it.
- ``user.deleted``: ``{"user_id", "delete_time"}``: stop every delivery to this user, drop their data.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from services.platform.bus import MessageBus
from services.user.ports import OutboundCode

__all__ = ["CODE_TOPIC", "USER_DELETED_TOPIC", "BusCodeSender", "BusUserEvents", "RecordedUserEvents"]

CODE_TOPIC = "user.code.requested"
USER_DELETED_TOPIC = "user.deleted"


class BusCodeSender:
    """``CodeSender`` publishing each code on the bus (confirmed before ``send`` returns)."""

    def __init__(self, bus: Callable[[], MessageBus]) -> None:
        """Publish on the bus returned by ``bus`` (connected at start-up, hence the indirection)."""
        self._bus = bus

    async def send(self, message: OutboundCode) -> None:
        """Publish ``user.code.requested``."""
        payload = {
            "user_id": message.user_id,
            "channel": message.channel.value,
            "destination": message.destination,
            "purpose": message.purpose.value,
            "code": message.code,
            "expire_time": message.expires_at.astimezone(UTC).isoformat(),
        }
        await self._bus().publish(CODE_TOPIC, json.dumps(payload).encode(), str(uuid.uuid4()))


class BusUserEvents:
    """``UserEvents`` on the bus."""

    def __init__(self, bus: Callable[[], MessageBus]) -> None:
        """Publish on the bus returned by ``bus``."""
        self._bus = bus

    async def user_deleted(self, user_id: str, at: datetime) -> None:
        """Publish ``user.deleted``."""
        payload = {"user_id": user_id, "delete_time": at.astimezone(UTC).isoformat()}
        await self._bus().publish(USER_DELETED_TOPIC, json.dumps(payload).encode(), f"user.deleted:{user_id}")


class RecordedUserEvents:
    """``UserEvents`` kept in memory (outbox delivery: the embedded reader or a test looks at them)."""

    def __init__(self) -> None:
        """Start with no events."""
        self.deleted: list[tuple[str, datetime]] = []

    async def user_deleted(self, user_id: str, at: datetime) -> None:
        """Record the deletion."""
        self.deleted.append((user_id, at))
