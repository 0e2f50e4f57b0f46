"""Delivery of one-time codes into an in-process outbox (embedded mode, tests)."""

from __future__ import annotations

import asyncio
import logging

from services.user.ports import OutboundCode

__all__ = ["MemoryOutbox"]

log = logging.getLogger("tastyplat.user.outbox")


class MemoryOutbox:
    """``CodeSender`` that keeps messages for a reader in the same process (the embedded notification path).

    Only the channel and a masked destination are logged; the code itself never is.
    """

    def __init__(self, capacity: int = 1000) -> None:
        """Keep at most ``capacity`` undelivered messages (the oldest are dropped beyond that)."""
        self._messages: list[OutboundCode] = []
        self._capacity = capacity
        self._arrived = asyncio.Condition()

    @property
    def messages(self) -> list[OutboundCode]:
        """Messages sent so far (oldest first)."""
        return list(self._messages)

    async def send(self, message: OutboundCode) -> None:
        """Store the message and wake readers."""
        async with self._arrived:
            self._messages.append(message)
            del self._messages[: -self._capacity]
            self._arrived.notify_all()
        log.info("one-time code queued", extra={"channel": message.channel.value,
                                                "destination": _mask(message.destination),
                                                "purpose": message.purpose.value})

    def last_to(self, destination: str) -> OutboundCode | None:
        """The newest message to ``destination``, or None."""
        return next((m for m in reversed(self._messages) if m.destination == destination), None)


def _mask(destination: str) -> str:
    if "@" in destination:
        local, _, domain = destination.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"{destination[:3]}***{destination[-2:]}"
