"""The in-memory ``Store``: the full contract of the PostgreSQL store, without durability (embedded tests)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from services.deltamonitor.adapters.records import alert_id_for
from services.deltamonitor.domain.errors import WatchLimitExceeded
from services.deltamonitor.domain.model import Alert, AlertState, HeldPosition, Watch, WatchLive
from services.deltamonitor.domain.partitions import fair_share, partition_of
from services.deltamonitor.ports import (
    ACKNOWLEDGED_TOPIC,
    RAISED_TOPIC,
    AlertQuery,
    Fence,
    LeaseLost,
    LeaseView,
    MarketInputs,
    OutboxEntry,
    WatchCursor,
)

__all__ = ["InMemoryStore"]


class InMemoryStore:
    """Watches, live states, alerts, the outbox and partition leases in dictionaries."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        """Start empty; ``now`` (seconds) is the clock lease expiry is measured on."""
        self._now = now
        self._replicas: dict[str, float] = {}
        self._leases: dict[int, tuple[str, float]] = {}
        self._watches: dict[str, Watch] = {}
        self._requests: dict[tuple[str, str], str] = {}
        self._live: dict[str, tuple[int, WatchLive]] = {}
        self._alerts: list[Alert] = []
        self._alert_index: dict[str, int] = {}
        self._outbox: dict[int, OutboxEntry] = {}
        self._outbox_ids = itertools.count(1)
        self._accounts: dict[str, tuple[list[HeldPosition], MarketInputs]] = {}

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def create_watch(self, watch: Watch, request_id: str, limit: int) -> Watch:
        if request_id:
            existing = self._requests.get((watch.user_id, request_id))
            if existing is not None and existing in self._watches:
                return self._watches[existing]
        owned = sum(1 for w in self._watches.values() if w.user_id == watch.user_id)
        if owned >= limit:
            raise WatchLimitExceeded(limit)
        self._watches[watch.watch_id] = watch
        if request_id:
            self._requests[(watch.user_id, request_id)] = watch.watch_id
        return watch

    async def get_watch(self, user_id: str, watch_id: str) -> Watch | None:
        watch = self._watches.get(watch_id)
        return watch if watch is not None and watch.user_id == user_id else None

    async def list_watches(
        self, user_id: str, account_number: str, after: WatchCursor | None, limit: int
    ) -> list[Watch]:
        mine = sorted(
            (
                w
                for w in self._watches.values()
                if w.user_id == user_id and (not account_number or w.account_number == account_number)
            ),
            key=lambda w: (w.create_time, w.watch_id),
        )
        if after is not None:
            mine = [w for w in mine if (w.create_time, w.watch_id) > (after.create_time, after.watch_id)]
        return mine[:limit]

    async def update_watch(self, watch: Watch) -> bool:
        if watch.watch_id not in self._watches:
            return False
        self._watches[watch.watch_id] = watch
        return True

    async def delete_watch(self, user_id: str, watch_id: str) -> bool:
        watch = self._watches.get(watch_id)
        if watch is None or watch.user_id != user_id:
            return False
        del self._watches[watch_id]
        self._live.pop(watch_id, None)
        return True

    async def all_watches(self) -> list[Watch]:
        return sorted(self._watches.values(), key=lambda w: (w.create_time, w.watch_id))

    async def load_live(self, watch_ids: Sequence[str] | None = None) -> dict[str, tuple[int, WatchLive]]:
        if watch_ids is None:
            return dict(self._live)
        return {k: self._live[k] for k in watch_ids if k in self._live}

    async def save_live(self, states: dict[str, tuple[int, WatchLive]], fence: Fence | None = None) -> None:
        self._check(fence)
        for watch_id, state in states.items():
            if watch_id in self._watches:
                self._live[watch_id] = state

    async def save_account(self, account_number: str, positions: Sequence[HeldPosition], inputs: MarketInputs) -> None:
        self._accounts[account_number] = (list(positions), inputs)

    async def load_accounts(
        self, accounts: Sequence[str] | None = None
    ) -> dict[str, tuple[list[HeldPosition], MarketInputs]]:
        wanted = None if accounts is None else set(accounts)
        return {k: (list(v[0]), v[1]) for k, v in self._accounts.items() if wanted is None or k in wanted}

    async def record_alerts(
        self,
        drafts: Sequence[Alert],
        live: dict[str, tuple[int, WatchLive]],
        headers: Mapping[str, str] | None = None,
        fence: Fence | None = None,
    ) -> list[Alert]:
        self._check(fence)
        stored = []
        for draft in drafts:
            sequence = len(self._alerts) + 1
            alert = replace(draft, alert_id=alert_id_for(sequence), sequence=sequence)
            self._alerts.append(alert)
            self._alert_index[alert.alert_id] = sequence - 1
            entry_id = next(self._outbox_ids)
            self._outbox[entry_id] = OutboxEntry(entry_id, RAISED_TOPIC, alert.alert_id, alert, dict(headers or {}))
            stored.append(alert)
        await self.save_live(live)
        return stored

    async def get_alert(self, user_id: str, alert_id: str) -> Alert | None:
        index = self._alert_index.get(alert_id)
        if index is None:
            return None
        alert = self._alerts[index]
        return alert if alert.user_id == user_id else None

    async def list_alerts(self, user_id: str, query: AlertQuery) -> list[Alert]:
        out = []
        for alert in reversed(self._alerts):
            if alert.user_id != user_id:
                continue
            if query.before_sequence is not None and alert.sequence >= query.before_sequence:
                continue
            if query.watch_id and alert.watch_id != query.watch_id:
                continue
            if query.account_number and alert.account_number != query.account_number:
                continue
            if query.state is not None and alert.state is not query.state:
                continue
            if query.start_time is not None and alert.raise_time < query.start_time:
                continue
            if query.end_time is not None and alert.raise_time >= query.end_time:
                continue
            out.append(alert)
            if len(out) >= query.limit:
                break
        return out

    async def acknowledge(
        self, user_id: str, alert_id: str, at: datetime, headers: Mapping[str, str] | None = None
    ) -> Alert | None:
        alert = await self.get_alert(user_id, alert_id)
        if alert is None:
            return None
        if alert.state is AlertState.ACKNOWLEDGED:
            return alert
        acknowledged = replace(alert, state=AlertState.ACKNOWLEDGED, acknowledge_time=at)
        self._alerts[self._alert_index[alert_id]] = acknowledged
        entry_id = next(self._outbox_ids)
        self._outbox[entry_id] = OutboxEntry(
            entry_id, ACKNOWLEDGED_TOPIC, f"{alert_id}.ack", acknowledged, dict(headers or {})
        )
        return acknowledged

    async def alerts_after(self, user_id: str, sequence: int, limit: int) -> list[Alert]:
        out = []
        for alert in self._alerts[sequence:]:
            if alert.user_id == user_id:
                out.append(alert)
                if len(out) >= limit:
                    break
        return out

    async def pending_outbox(self, limit: int) -> list[OutboxEntry]:
        return [self._outbox[k] for k in sorted(self._outbox)[:limit]]

    async def mark_published(self, entry_ids: Sequence[int]) -> None:
        for entry_id in entry_ids:
            self._outbox.pop(entry_id, None)

    # ------------------------------------------------------------------------------------------- leases

    def _check(self, fence: Fence | None) -> None:
        if fence is None:
            return
        now = self._now()
        lost = frozenset(
            p for p in fence.partitions if (lease := self._leases.get(p)) is None or lease[0] != fence.owner or lease[1] <= now
        )
        if lost:
            raise LeaseLost(lost)

    async def heartbeat(self, replica_id: str, lease_seconds: float, partitions: int) -> LeaseView:
        now = self._now()
        expires = now + lease_seconds
        self._replicas[replica_id] = expires
        for gone in [r for r, until in self._replicas.items() if until <= now]:
            del self._replicas[gone]
        live = tuple(sorted(self._replicas))
        target = fair_share(live, replica_id, partitions)
        held = [p for p in range(partitions) if (lease := self._leases.get(p)) is not None and lease[0] == replica_id]
        for p in held:
            self._leases[p] = (replica_id, expires)
        for p in range(partitions):
            if len(held) >= target:
                break
            lease = self._leases.get(p)
            if lease is None or lease[1] <= now:
                self._leases[p] = (replica_id, expires)
                held.append(p)
        return LeaseView(frozenset(held), target, live)

    async def release(self, replica_id: str, partitions: Sequence[int]) -> None:
        for p in partitions:
            lease = self._leases.get(p)
            if lease is not None and lease[0] == replica_id:
                del self._leases[p]

    async def leave(self, replica_id: str) -> None:
        self._replicas.pop(replica_id, None)
        await self.release(replica_id, [p for p, (owner, _) in self._leases.items() if owner == replica_id])

    def lease_owner(self, account_number: str, partitions: int) -> str | None:
        """Who holds an unexpired lease on the account's partition (tests)."""
        lease = self._leases.get(partition_of(account_number, partitions))
        return lease[0] if lease is not None and lease[1] > self._now() else None
