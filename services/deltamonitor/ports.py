"""Ports of the delta monitor: the Protocols its adapters implement (storage, peers, bus codec, calendar, auth)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.deltamonitor.domain.model import Alert, AlertState, HeldPosition, Watch, WatchLive
from services.deltamonitor.domain.pricing import GreeksArrays, Pricer
from services.platform.identity import Authenticator, Caller

__all__ = [
    "ACKNOWLEDGED_TOPIC",
    "RAISED_TOPIC",
    "AlertCodec",
    "AlertQuery",
    "Authenticator",
    "Fence",
    "Caller",
    "GreeksArrays",
    "LeaseLost",
    "LeaseView",
    "MarketCalendar",
    "MarketInputs",
    "MarketInputsSource",
    "OutboxEntry",
    "PartitionLeases",
    "PositionSource",
    "Pricer",
    "Store",
    "WATCH_CHANGED_TOPIC",
    "WatchCursor",
]

# Bus topics of alert events: a new alert, and an alert the user acknowledged (stops escalation).
RAISED_TOPIC = "deltamonitor.alert.raised"
ACKNOWLEDGED_TOPIC = "deltamonitor.alert.acknowledged"
# A watch was created, changed or deleted on some replica: the replica that owns its account reloads it.
WATCH_CHANGED_TOPIC = "deltamonitor.watch.changed"


class PositionSource(Protocol):
    """The broker's view of an account's positions."""

    async def positions(self, account_number: str, caller: Caller) -> list[HeldPosition]:
        """Return the account's open positions, read on behalf of ``caller``.

        Raises:
            AccountNotFound: the account is not one of the caller's.
            Unavailable / DeadlineExceeded: the broker service failed.
        """
        ...


@dataclass(frozen=True, slots=True)
class MarketInputs:
    """Model inputs the broker publishes.

    Attributes:
        betas: Beta to SPY per symbol (symbols without one are absent).
        dividend_yields: Annual dividend yield per symbol.
        rate: Risk-free rate, or None when unknown.
    """

    betas: dict[str, float]
    dividend_yields: dict[str, float]
    rate: float | None


class MarketInputsSource(Protocol):
    """Betas, dividend yields and the rate, from the broker."""

    async def inputs(self, symbols: Sequence[str], caller: Caller) -> MarketInputs:
        """Return the model inputs of ``symbols``; unknown symbols are left out."""
        ...


class MarketCalendar(Protocol):
    """Trading hours and holidays of the watched market."""

    def is_open(self, when: datetime) -> bool:
        """Tell whether the market is open at ``when`` (timezone-aware)."""
        ...


class AlertCodec(Protocol):
    """The bus wire format of alerts (tastyplat.type.v1.Alert bytes)."""

    def encode(self, alert: Alert) -> bytes:
        """Serialise an alert."""
        ...

    def decode(self, payload: bytes) -> Alert:
        """Parse an alert; raises ValueError on a malformed payload."""
        ...


@dataclass(frozen=True, slots=True)
class WatchCursor:
    """Position after the last watch of a page (watches are ordered by creation time, then id)."""

    create_time: datetime
    watch_id: str


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """A validated ListAlerts query (alerts come newest first, by sequence).

    Attributes:
        limit: Maximum alerts to return.
        before_sequence: Only alerts raised before this sequence number (paging), or None.
        watch_id: Only this watch's alerts ("" for all).
        state: Only alerts in this state, or None.
        start_time: Raised at or after, or None.
        end_time: Raised before, or None.
        account_number: Only this account's alerts ("" for all).
    """

    limit: int
    before_sequence: int | None = None
    watch_id: str = ""
    state: AlertState | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    account_number: str = ""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An alert event waiting to be published on the bus.

    Attributes:
        entry_id: Outbox order.
        topic: Bus topic.
        message_id: Bus message id (the dedupe key downstream).
        alert: The alert as it is now.
        headers: Message headers recorded with the event: the trace context of the work that raised it (a
            tick's processing, an AcknowledgeAlert call), so the later publish continues that trace.
    """

    entry_id: int
    topic: str
    message_id: str
    alert: Alert
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fence:
    """The leases a write depends on: the store refuses it unless ``owner`` holds an unexpired lease on every
    partition in ``partitions`` at the moment of the write (in the same transaction).

    Attributes:
        owner: The writing replica's id.
        partitions: Partitions of the accounts the write touches.
    """

    owner: str
    partitions: frozenset[int]


class LeaseLost(Exception):
    """A fenced write was refused: the writer no longer holds these partitions (nothing was written)."""

    def __init__(self, partitions: frozenset[int]) -> None:
        super().__init__(f"partition leases lost: {sorted(partitions)}")
        self.partitions = partitions


@dataclass(frozen=True, slots=True)
class LeaseView:
    """What one heartbeat found.

    Attributes:
        held: Partitions this replica holds a lease on after the heartbeat.
        target: Its fair share among the live replicas.
        replicas: Live replicas, this one included.
    """

    held: frozenset[int]
    target: int
    replicas: tuple[str, ...]


class PartitionLeases(Protocol):
    """Replica heartbeats and partition leases, kept with the watches (expiry by the store's clock)."""

    async def heartbeat(self, replica_id: str, lease_seconds: float, partitions: int) -> LeaseView:
        """In one step: mark ``replica_id`` live for ``lease_seconds``, renew its leases, and claim free or
        expired partitions up to its fair share among the live replicas.
        """
        ...

    async def release(self, replica_id: str, partitions: Sequence[int]) -> None:
        """Give up leases (only those ``replica_id`` holds), so another replica may claim them at once."""
        ...

    async def leave(self, replica_id: str) -> None:
        """Forget the replica and release all its leases (graceful stop)."""
        ...


class Store(Protocol):
    """Watches, their live state, alerts and the outbox of alert events (PostgreSQL or in memory).

    Any method may raise ``DatabaseUnavailable``.
    """

    async def start(self) -> None:
        """Connect and apply migrations."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def create_watch(self, watch: Watch, request_id: str, limit: int) -> Watch:
        """Store a new watch, or return the one this user created with the same non-empty ``request_id``.

        Raises:
            WatchLimitExceeded: the user already has ``limit`` watches.
        """
        ...

    async def get_watch(self, user_id: str, watch_id: str) -> Watch | None:
        """Return the user's watch, or None."""
        ...

    async def list_watches(
        self, user_id: str, account_number: str, after: WatchCursor | None, limit: int
    ) -> list[Watch]:
        """Return up to ``limit`` of the user's watches after ``after``, by creation time then id."""
        ...

    async def update_watch(self, watch: Watch) -> bool:
        """Replace a watch's configuration; False if it is gone."""
        ...

    async def delete_watch(self, user_id: str, watch_id: str) -> bool:
        """Delete the user's watch (its alerts stay); False if there was none."""
        ...

    async def all_watches(self) -> list[Watch]:
        """Every watch (the monitor loads them at start-up)."""
        ...

    async def load_live(self, watch_ids: Sequence[str] | None = None) -> dict[str, tuple[int, WatchLive]]:
        """The persisted live state by watch id (only of ``watch_ids`` when given), with the watch generation it
        belongs to."""
        ...

    async def save_live(self, states: dict[str, tuple[int, WatchLive]], fence: Fence | None = None) -> None:
        """Persist live states (ignoring watches that are gone).

        Raises:
            LeaseLost: ``fence`` is given and not held (nothing written).
        """
        ...

    async def save_account(self, account_number: str, positions: Sequence[HeldPosition], inputs: MarketInputs) -> None:
        """Keep the positions and model inputs last read for an account (the monitor reloads them at start-up)."""
        ...

    async def load_accounts(
        self, accounts: Sequence[str] | None = None
    ) -> dict[str, tuple[list[HeldPosition], MarketInputs]]:
        """Every kept account snapshot (only those of ``accounts`` when given)."""
        ...

    async def record_alerts(
        self,
        drafts: Sequence[Alert],
        live: dict[str, tuple[int, WatchLive]],
        headers: Mapping[str, str] | None = None,
        fence: Fence | None = None,
    ) -> list[Alert]:
        """Atomically store alerts (ids in order), their outbox entries (with ``headers``) and the live states.

        Raises:
            LeaseLost: ``fence`` is given and not held (nothing written): a replica that lost a partition to
                another cannot raise an alert the new owner raises too.
        """
        ...

    async def get_alert(self, user_id: str, alert_id: str) -> Alert | None:
        """Return the user's alert, or None."""
        ...

    async def list_alerts(self, user_id: str, query: AlertQuery) -> list[Alert]:
        """Return up to ``query.limit`` of the user's alerts, newest first."""
        ...

    async def acknowledge(
        self, user_id: str, alert_id: str, at: datetime, headers: Mapping[str, str] | None = None
    ) -> Alert | None:
        """Acknowledge an open alert (queuing its event with ``headers``), or return it unchanged if acknowledged;
        None if missing."""
        ...

    async def alerts_after(self, user_id: str, sequence: int, limit: int) -> list[Alert]:
        """Return up to ``limit`` of the user's alerts raised after ``sequence``, oldest first."""
        ...

    async def pending_outbox(self, limit: int) -> list[OutboxEntry]:
        """Return up to ``limit`` unpublished events, oldest first."""
        ...

    async def mark_published(self, entry_ids: Sequence[int]) -> None:
        """Forget published outbox entries."""
        ...
