"""In-memory broker and market data with the ports' full contract (embedded tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from services.portfolio.domain.errors import AccountNotFound
from services.portfolio.domain.model import HeldPosition, Transaction
from services.portfolio.ports import AccountBalances, Caller, FeedGreeks, Metrics

__all__ = ["MemoryBroker", "MemoryMarketData"]


class MemoryBroker:
    """Accounts (owner, positions, balances, history) and metrics held in memory."""

    def __init__(self) -> None:
        """Start with no accounts."""
        self._owners: dict[str, str] = {}
        self._positions: dict[str, list[HeldPosition]] = {}
        self._balances: dict[str, AccountBalances] = {}
        self._history: dict[str, list[Transaction]] = {}
        self.betas: dict[str, float] = {}
        self.dividend_yields: dict[str, float] = {}
        self.volatility_indices: dict[str, float] = {}
        self.rate = 0.0
        self.calls = 0

    def set_account(
        self,
        account_number: str,
        user_id: str,
        positions: Sequence[HeldPosition],
        transactions: Sequence[Transaction] = (),
        *,
        cash: Decimal = Decimal(0),
    ) -> None:
        """Give ``user_id`` the account; its net liquidating value is cash plus the positions at marks."""
        self._owners[account_number] = user_id
        self._positions[account_number] = list(positions)
        self._history[account_number] = list(transactions)
        value = sum(((p.mark_price or Decimal(0)) * p.quantity * p.multiplier for p in positions), Decimal(0))
        self._balances[account_number] = AccountBalances(cash, cash + value)

    def _check(self, account_number: str, caller: Caller) -> None:
        self.calls += 1
        if self._owners.get(account_number) != caller.user_id:
            raise AccountNotFound(account_number)

    async def positions(self, account_number: str, caller: Caller) -> list[HeldPosition]:
        self._check(account_number, caller)
        return list(self._positions[account_number])

    async def balances(self, account_number: str, caller: Caller) -> AccountBalances:
        self._check(account_number, caller)
        return self._balances[account_number]

    async def transactions(self, account_number: str, caller: Caller, end: datetime | None = None) -> list[Transaction]:
        self._check(account_number, caller)
        return [t for t in self._history[account_number] if end is None or t.executed_at < end]

    async def metrics(self, symbols: Sequence[str], caller: Caller) -> Metrics:
        wanted = set(symbols)
        return Metrics(
            betas={s: b for s, b in self.betas.items() if s in wanted},
            dividend_yields={s: y for s, y in self.dividend_yields.items() if s in wanted},
            volatility_indices={s: v for s, v in self.volatility_indices.items() if s in wanted},
            rate=self.rate,
        )


class MemoryMarketData:
    """Prices, feed Greeks and daily closes held in memory."""

    def __init__(self) -> None:
        """Start with no data."""
        self.quotes: dict[str, float] = {}
        self.greeks: dict[str, FeedGreeks] = {}
        self.closes: dict[str, dict[date, float]] = {}

    async def prices(self, symbols: Sequence[str], caller: Caller) -> dict[str, float]:
        return {s: self.quotes[s] for s in symbols if s in self.quotes}

    async def option_greeks(self, symbols: Sequence[str], caller: Caller) -> dict[str, FeedGreeks]:
        return {s: self.greeks[s] for s in symbols if s in self.greeks}

    async def daily_closes(self, symbol: str, start: datetime, end: datetime, caller: Caller) -> dict[date, float]:
        return {d: c for d, c in self.closes.get(symbol, {}).items() if start.date() <= d < end.date()}
