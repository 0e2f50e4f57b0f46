"""Dead letters on the bus: failed deliveries published to a topic whose durable queue operators read."""

from __future__ import annotations

import json

from services.notification.domain.model import Delivery, mask_address
from services.notification.ports import DEAD_LETTER_TOPIC
from services.platform.bus import MessageBus

__all__ = ["BusDeadLetters", "DEAD_LETTER_QUEUE"]

DEAD_LETTER_QUEUE = "notification.deadletters"


class BusDeadLetters:
    """Publishes a failed delivery's record (address masked) with the delivery id as message id."""

    def __init__(self, bus: MessageBus) -> None:
        """Use ``bus``; ``declare`` binds the durable queue at start-up."""
        self._bus = bus

    async def declare(self) -> None:
        """Create the durable dead-letter queue and its binding now, not on first use."""
        subscription = await self._bus.subscribe(DEAD_LETTER_TOPIC, queue=DEAD_LETTER_QUEUE, prefetch=1)
        await subscription.close()

    async def publish(self, delivery: Delivery) -> None:
        """Park the delivery."""
        record = {
            "delivery_id": delivery.delivery_id,
            "alert_id": delivery.alert_id,
            "user_id": delivery.user_id,
            "channel_id": delivery.channel_id,
            "channel_kind": delivery.channel_kind.name,
            "masked_address": mask_address(delivery.channel_kind, delivery.address),
            "attempt_count": delivery.attempt_count,
            "last_error": delivery.last_error,
            "test": delivery.test,
        }
        await self._bus.publish(DEAD_LETTER_TOPIC, json.dumps(record).encode(), f"dead:{delivery.delivery_id}")
