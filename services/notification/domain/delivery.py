"""The delivery state machine and the plan of deliveries for an alert.

Theory of operation. Every (alert, channel) gets one delivery row, created when the alert is planned; the
row is the idempotency key of the side effect. Nothing calls a provider without first moving the row to
``ATTEMPTING`` (with a lease and the attempt count incremented) in the database, and a provider's acceptance
is recorded as ``SENT`` right after the call. So a process that dies at any point leaves one of:

- ``PENDING`` / ``RETRYING``: nothing sent (or the last attempt failed); the next worker sends.
- ``ATTEMPTING`` with an expired lease: the call may or may not have reached the provider. The next worker
  first reconciles with the provider where it can be asked (Twilio's message log, by recipient and the tag
  in the body) and records ``SENT`` if the message is there; otherwise it sends again (SMTP re-sends with the
  same Message-ID = alert id; FCM with the same collapse key), which is the most the providers allow.
- ``SENT``, ``FAILED``, ``SUPPRESSED``: final; a redelivered bus message finds them and only acknowledges.

Transitions are compare-and-set on the stored status, so two workers never both act on one row. The table
below lists every allowed (status, event) pair; anything else is a bug and raises.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from services.notification.domain.model import (
    AlertNotice,
    Channel,
    ChannelKind,
    ChannelState,
    DeliveryStatus,
    Preferences,
    Severity,
)

__all__ = ["TRANSITIONS", "DeliveryEvent", "PlannedDelivery", "next_status", "plan", "sources_of"]


class DeliveryEvent(enum.Enum):
    """What happens to a delivery."""

    CLAIM = "claim"  # a worker takes a due PENDING/RETRYING delivery, or an ATTEMPTING one whose lease expired
    ACCEPTED = "accepted"  # the provider accepted the message
    RECONCILED = "reconciled"  # the provider's log shows an earlier attempt got through
    TRANSIENT_FAILURE = "transient_failure"  # try again later (429, 5xx, timeouts, connection errors)
    PERMANENT_FAILURE = "permanent_failure"  # never going to work (invalid number, unregistered token)
    RETRIES_EXHAUSTED = "retries_exhausted"  # transient failures until the attempt budget ran out
    SUPPRESS = "suppress"  # not sent by design: acknowledged before escalation, contact no longer verified


_P, _A, _S, _R, _F, _X = (
    DeliveryStatus.PENDING,
    DeliveryStatus.ATTEMPTING,
    DeliveryStatus.SENT,
    DeliveryStatus.RETRYING,
    DeliveryStatus.FAILED,
    DeliveryStatus.SUPPRESSED,
)

TRANSITIONS: Final[dict[tuple[DeliveryStatus, DeliveryEvent], DeliveryStatus]] = {
    (_P, DeliveryEvent.CLAIM): _A,
    (_R, DeliveryEvent.CLAIM): _A,
    (_A, DeliveryEvent.CLAIM): _A,
    (_A, DeliveryEvent.ACCEPTED): _S,
    (_A, DeliveryEvent.RECONCILED): _S,
    (_A, DeliveryEvent.TRANSIENT_FAILURE): _R,
    (_A, DeliveryEvent.PERMANENT_FAILURE): _F,
    (_A, DeliveryEvent.RETRIES_EXHAUSTED): _F,
    (_R, DeliveryEvent.RETRIES_EXHAUSTED): _F,
    (_P, DeliveryEvent.SUPPRESS): _X,
    (_A, DeliveryEvent.SUPPRESS): _X,
    (_R, DeliveryEvent.SUPPRESS): _X,
}


def next_status(status: DeliveryStatus, event: DeliveryEvent) -> DeliveryStatus:
    """The status after ``event``.

    Raises:
        ValueError: the event is not allowed in ``status`` (a programming error).
    """
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise ValueError(f"delivery event {event.value} is not allowed in status {status.name}") from None


def sources_of(event: DeliveryEvent) -> frozenset[DeliveryStatus]:
    """The statuses ``event`` may start from (the compare part of compare-and-set)."""
    return frozenset(status for (status, ev) in TRANSITIONS if ev is event)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One delivery the plan asks for.

    Attributes:
        channel: The destination.
        escalation_level: Position of the channel's kind in the escalation order.
        due_time: When it may go out (escalation delay, end of quiet hours).
        suppressed_reason: Why it is not sent at all, or "".
    """

    channel: Channel
    escalation_level: int
    due_time: datetime
    suppressed_reason: str = ""


def plan(
    alert: AlertNotice, preferences: Preferences | None, channels: list[Channel], now: datetime
) -> list[PlannedDelivery]:
    """Which channels get the alert, when.

    With preferences, the alert's severity picks the channel kinds in escalation order; level ``i`` is due
    ``i`` x escalation delay after the alert was raised (all at once when the delay is zero); inside quiet
    hours everything but the stream waits for the window's end, unless the alert is critical and the user
    allows critical alerts then. A channel whose contact is no longer verified is planned as suppressed.
    Without preferences (the user service never reported them), every active channel gets it now.

    Args:
        alert: The alert.
        preferences: The user's preferences, or None.
        channels: The user's registered channels.
        now: The current time.
    """
    active = [c for c in channels if c.state is ChannelState.ACTIVE]
    if preferences is None:
        return [PlannedDelivery(c, 0, now) for c in active]
    out: list[PlannedDelivery] = []
    delay = preferences.escalation_delay
    quiet = preferences.quiet_hours
    bypass = alert.severity is Severity.CRITICAL and quiet.allow_critical
    for level, kind in enumerate(preferences.kinds_for(alert.severity)):
        due = max(now, alert.raise_time + delay * level) if delay > timedelta(0) else now
        if kind is not ChannelKind.STREAM and not bypass and quiet.contains(due):
            due = quiet.end_after(due)
        for channel in (c for c in active if c.kind is kind):
            reason = "" if preferences.verified(kind, channel.address) else "contact not verified"
            out.append(PlannedDelivery(channel, level, due, reason))
    return out
