"""The in-memory ``Store``: the PostgreSQL store's contract without durability (embedded tests)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from services.notification.domain.delivery import DeliveryEvent, PlannedDelivery, next_status, sources_of
from services.notification.domain.errors import ChannelLimitExceeded
from services.notification.domain.model import (
    AlertNotice,
    Channel,
    ChannelKind,
    ChannelState,
    Delivery,
    DeliveryStatus,
    Preferences,
)
from services.notification.ports import DeliveryQuery

__all__ = ["InMemoryStore"]


class InMemoryStore:
    """Channels, preferences, acknowledgements and deliveries in dictionaries."""

    def __init__(self) -> None:
        """Start empty."""
        self.channels: dict[str, Channel] = {}
        self._channel_requests: dict[tuple[str, str], str] = {}
        self._preferences: dict[str, Preferences] = {}
        self._acknowledged: set[str] = set()
        self.deliveries: dict[str, Delivery] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self.codes: dict[str, tuple[str, ChannelKind, str, datetime]] = {}

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def register_channel(self, channel: Channel, request_id: str, limit: int) -> Channel:
        if request_id:
            existing_id = self._channel_requests.get((channel.user_id, request_id))
            if existing_id in self.channels:
                return self.channels[existing_id]
        for existing in self.channels.values():
            if (existing.user_id, existing.kind, existing.address) == (channel.user_id, channel.kind, channel.address):
                return existing
        if sum(1 for c in self.channels.values() if c.user_id == channel.user_id) >= limit:
            raise ChannelLimitExceeded(limit)
        self.channels[channel.channel_id] = channel
        if request_id:
            self._channel_requests[(channel.user_id, request_id)] = channel.channel_id
        return channel

    async def get_channel(self, user_id: str, channel_id: str) -> Channel | None:
        channel = self.channels.get(channel_id)
        return channel if channel is not None and channel.user_id == user_id else None

    async def list_channels(self, user_id: str, after: tuple[datetime, str] | None, limit: int) -> list[Channel]:
        mine = sorted((c for c in self.channels.values() if c.user_id == user_id), key=lambda c: (c.create_time, c.channel_id))
        if after is not None:
            mine = [c for c in mine if (c.create_time, c.channel_id) > after]
        return mine[:limit]

    async def delete_channel(self, user_id: str, channel_id: str) -> bool:
        if await self.get_channel(user_id, channel_id) is None:
            return False
        del self.channels[channel_id]
        return True

    async def disable_channel(self, channel_id: str) -> None:
        channel = self.channels.get(channel_id)
        if channel is not None:
            self.channels[channel_id] = replace(channel, state=ChannelState.DISABLED)

    async def user_channels(self, user_id: str) -> list[Channel]:
        return await self.list_channels(user_id, None, 10_000)

    async def save_preferences(self, user_id: str, preferences: Preferences) -> None:
        self._preferences[user_id] = preferences

    async def get_preferences(self, user_id: str) -> Preferences | None:
        return self._preferences.get(user_id)

    async def mark_acknowledged(self, alert_id: str, user_id: str) -> None:
        self._acknowledged.add(alert_id)

    async def is_acknowledged(self, alert_id: str) -> bool:
        return alert_id in self._acknowledged

    async def plan_deliveries(self, alert: AlertNotice, planned: Sequence[PlannedDelivery], now: datetime) -> list[Delivery]:
        for item in planned:
            key = (alert.alert_id, item.channel.channel_id)
            if key in self._by_key:
                continue
            delivery = Delivery(
                delivery_id=str(uuid.uuid4()),
                alert_id=alert.alert_id,
                user_id=alert.user_id,
                channel_id=item.channel.channel_id,
                channel_kind=item.channel.kind,
                address=item.channel.address,
                status=DeliveryStatus.SUPPRESSED if item.suppressed_reason else DeliveryStatus.PENDING,
                attempt_count=0,
                escalation_level=item.escalation_level,
                due_time=item.due_time,
                title=alert.title,
                body=alert.message,
                create_time=now,
                update_time=now,
                last_error=item.suppressed_reason,
            )
            self.deliveries[delivery.delivery_id] = delivery
            self._by_key[key] = delivery.delivery_id
        return [d for d in self.deliveries.values() if d.alert_id == alert.alert_id]

    async def add_delivery(self, delivery: Delivery) -> Delivery:
        self.deliveries[delivery.delivery_id] = delivery
        return delivery

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        return self.deliveries.get(delivery_id)

    async def claim(
        self, delivery_id: str, owner: str, now: datetime, lease_until: datetime
    ) -> tuple[Delivery, DeliveryStatus] | None:
        d = self.deliveries.get(delivery_id)
        if d is None:
            return None
        leased_elsewhere = d.lease_until is not None and d.lease_until > now and d.lease_owner != owner
        if d.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING):
            if d.due_time > now or leased_elsewhere:
                return None
        elif d.status is DeliveryStatus.ATTEMPTING:
            if d.lease_until is not None and d.lease_until > now:
                return None
        else:
            return None
        claimed = replace(
            d,
            status=next_status(d.status, DeliveryEvent.CLAIM),
            attempt_count=d.attempt_count + 1,
            attempt_started=now,
            lease_owner=owner,
            lease_until=lease_until,
            ambiguous=d.ambiguous or d.status is DeliveryStatus.ATTEMPTING,
            update_time=now,
        )
        self.deliveries[delivery_id] = claimed
        return claimed, d.status

    async def transition(
        self, delivery_id: str, owner: str, event: DeliveryEvent, now: datetime, **changes: Any
    ) -> Delivery | None:
        d = self.deliveries.get(delivery_id)
        if d is None or d.status not in sources_of(event):
            return None
        if d.lease_owner and d.lease_owner != owner and d.lease_until is not None and d.lease_until > now:
            return None
        status = next_status(d.status, event)
        final = status in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED)
        fields: dict[str, Any] = {"status": status, "update_time": now, **changes}
        if final:
            fields.update(lease_owner="", lease_until=None)
        if status is DeliveryStatus.SENT:
            fields["send_time"] = now
        updated = replace(d, **fields)
        self.deliveries[delivery_id] = updated
        return updated

    async def claimable(self, now: datetime, limit: int) -> list[str]:
        out = []
        for d in sorted(self.deliveries.values(), key=lambda x: (x.due_time, x.delivery_id)):
            lease_over = d.lease_until is None or d.lease_until <= now
            if (d.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING) and d.due_time <= now and lease_over) or (
                d.status is DeliveryStatus.ATTEMPTING and lease_over
            ):
                out.append(d.delivery_id)
                if len(out) >= limit:
                    break
        return out

    async def list_deliveries(self, user_id: str, query: DeliveryQuery) -> list[Delivery]:
        mine = sorted(
            (d for d in self.deliveries.values() if d.user_id == user_id),
            key=lambda d: (d.create_time, d.delivery_id),
            reverse=True,
        )
        out = []
        for d in mine:
            if query.before is not None and (d.create_time, d.delivery_id) >= query.before:
                continue
            if query.alert_id and d.alert_id != query.alert_id:
                continue
            if query.channel_id and d.channel_id != query.channel_id:
                continue
            if query.status is not None and d.status is not query.status:
                continue
            out.append(d)
            if len(out) >= query.limit:
                break
        return out

    async def test_times(self, user_id: str, since: datetime) -> list[datetime]:
        return sorted(d.create_time for d in self.deliveries.values() if d.user_id == user_id and d.test and d.create_time >= since)

    async def code_sent(self, message_id: str) -> bool:
        return message_id in self.codes

    async def record_code(self, message_id: str, user_id: str, kind: ChannelKind, provider_message_id: str, at: datetime) -> None:
        self.codes.setdefault(message_id, (user_id, kind, provider_message_id, at))

    async def delete_user(self, user_id: str) -> None:
        for channel_id in [c.channel_id for c in self.channels.values() if c.user_id == user_id]:
            del self.channels[channel_id]
        self._preferences.pop(user_id, None)
        for delivery_id in [d.delivery_id for d in self.deliveries.values() if d.user_id == user_id]:
            delivery = self.deliveries.pop(delivery_id)
            self._by_key.pop((delivery.alert_id, delivery.channel_id), None)
