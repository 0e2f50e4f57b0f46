"""In-memory portfolio, broker and alert sources with the ports' contracts (tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.reporting.domain.errors import AccountNotFound
from services.reporting.domain.model import (
    AlertRow,
    ClosedTrade,
    DailyPnl,
    PnlRow,
    PositionRow,
    ScenarioGrid,
    SnapshotRow,
    TransactionRow,
)
from services.reporting.ports import Caller

__all__ = ["MemoryAccount", "MemorySources"]


def _within(t: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or t >= start) and (end is None or t < end)


@dataclass
class MemoryAccount:
    """Everything the peers would report about one account."""

    owner: str
    positions: list[PositionRow] = field(default_factory=list)
    pnl: list[PnlRow] = field(default_factory=list)
    daily: list[DailyPnl] = field(default_factory=list)
    snapshots: list[SnapshotRow] = field(default_factory=list)
    scenario: ScenarioGrid | None = None
    trades: list[ClosedTrade] = field(default_factory=list)
    transactions: list[TransactionRow] = field(default_factory=list)
    delta_alerts: list[AlertRow] = field(default_factory=list)
    risk_alerts: list[AlertRow] = field(default_factory=list)


class MemorySources:
    """Implements PortfolioPort, BrokerPort and AlertsPort over ``accounts``."""

    def __init__(self) -> None:
        """Start with no accounts."""
        self.accounts: dict[str, MemoryAccount] = {}
        self.calls = 0

    def _account(self, account_number: str, caller: Caller) -> MemoryAccount:
        self.calls += 1
        account = self.accounts.get(account_number)
        if account is None or account.owner != caller.user_id:
            raise AccountNotFound(account_number)
        return account

    async def positions(self, account_number: str, caller: Caller) -> list[PositionRow]:
        return list(self._account(account_number, caller).positions)

    async def pnl(self, account_number: str, caller: Caller) -> list[PnlRow]:
        return list(self._account(account_number, caller).pnl)

    async def history(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> tuple[list[DailyPnl], list[SnapshotRow]]:
        a = self._account(account_number, caller)
        return (
            [d for d in a.daily if _within(d.day_end, start, end)],
            [s for s in a.snapshots if _within(s.record_time, start, end)],
        )

    async def scenario(
        self, account_number: str, caller: Caller, moves: Sequence[float], shifts: Sequence[float], days: Sequence[float]
    ) -> ScenarioGrid:
        grid = self._account(account_number, caller).scenario
        assert grid is not None, "no scenario configured for this account"
        return grid

    async def closed_trades(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[ClosedTrade]:
        return [t for t in self._account(account_number, caller).trades if _within(t.close_time, start, end)]

    async def risk_alerts(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[AlertRow]:
        return [a for a in self._account(account_number, caller).risk_alerts if _within(a.raise_time, start, end)]

    async def transactions(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[TransactionRow]:
        return [t for t in self._account(account_number, caller).transactions if _within(t.executed_at, start, end)]

    async def alerts(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[AlertRow]:
        return [a for a in self._account(account_number, caller).delta_alerts if _within(a.raise_time, start, end)]
