"""The in-memory store: the full Store contract in dicts (embedded tests, benchmarks)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import datetime

from services.portfolio.adapters.records import alert_id_for
from services.portfolio.domain.risk import RiskLimits
from services.portfolio.ports import RiskAlert, Snapshot

__all__ = ["MemoryStore"]


class MemoryStore:
    """Limits, breaches, alerts, outbox and snapshots held in memory."""

    def __init__(self) -> None:
        """Start empty."""
        self._limits: dict[str, tuple[str, RiskLimits]] = {}
        self._active: dict[str, set[str]] = {}
        self._alerts: list[tuple[str, RiskAlert]] = []
        self._outbox: dict[str, RiskAlert] = {}
        self._snapshots: dict[str, list[Snapshot]] = {}
        self._sequence = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def get_limits(self, account_number: str) -> tuple[str, RiskLimits] | None:
        return self._limits.get(account_number)

    async def put_limits(self, account_number: str, user_id: str, limits: RiskLimits) -> None:
        async with self._lock:
            self._limits[account_number] = (user_id, limits)
            self._active.pop(account_number, None)

    async def accounts_with_limits(self) -> list[tuple[str, str]]:
        return sorted((account, owner) for account, (owner, _) in self._limits.items())

    async def active_breaches(self, account_number: str) -> set[str]:
        return set(self._active.get(account_number, set()))

    async def record_breaches(
        self, account_number: str, drafts: Sequence[RiskAlert], active: set[str], expected: set[str]
    ) -> list[RiskAlert]:
        async with self._lock:
            if self._active.get(account_number, set()) != expected:
                return []
            self._active[account_number] = set(active)
            stored = []
            for draft in drafts:
                self._sequence += 1
                alert = dataclasses.replace(draft, alert_id=alert_id_for(self._sequence))
                self._alerts.append((account_number, alert))
                self._outbox[alert.alert_id] = alert
                stored.append(alert)
            return stored

    async def pending_outbox(self, limit: int) -> list[RiskAlert]:
        return sorted(self._outbox.values(), key=lambda a: a.alert_id)[:limit]

    async def mark_published(self, alert_ids: Sequence[str]) -> None:
        for alert_id in alert_ids:
            self._outbox.pop(alert_id, None)

    async def list_alerts(
        self, account_number: str, start: datetime | None, end: datetime | None, before_id: str | None, limit: int
    ) -> list[RiskAlert]:
        found = [
            a for acct, a in self._alerts
            if acct == account_number
            and (start is None or a.raise_time >= start)
            and (end is None or a.raise_time < end)
            and (before_id is None or a.alert_id < before_id)
        ]
        return sorted(found, key=lambda a: a.alert_id, reverse=True)[:limit]

    async def add_snapshot(self, account_number: str, snapshot: Snapshot) -> None:
        self._snapshots.setdefault(account_number, []).append(snapshot)

    async def list_snapshots(self, account_number: str, start: datetime | None, end: datetime | None) -> list[Snapshot]:
        return sorted(
            (s for s in self._snapshots.get(account_number, [])
             if (start is None or s.record_time >= start) and (end is None or s.record_time < end)),
            key=lambda s: s.record_time,
        )
