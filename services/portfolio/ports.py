"""Ports of the portfolio service: the Protocols its adapters implement (peers, storage, identity)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from services.portfolio.domain.model import HeldPosition, Transaction
from services.portfolio.domain.risk import Breach, RiskLimits, Severity
from services.platform.identity import Authenticator, Caller

__all__ = [
    "ALERT_TOPIC",
    "AccountBalances",
    "Authenticator",
    "BrokerPort",
    "Caller",
    "FeedGreeks",
    "MarketDataPort",
    "Metrics",
    "RiskAlert",
    "Snapshot",
    "Store",
]

# Risk breaches travel the delta monitor's alert path: the same topic and the same Alert payload, which the
# notification service consumes.
ALERT_TOPIC = "deltamonitor.alert.raised"


@dataclass(frozen=True, slots=True)
class AccountBalances:
    """The balances the portfolio needs."""

    cash_balance: Decimal
    net_liquidating_value: Decimal


@dataclass(frozen=True, slots=True)
class Metrics:
    """The broker's model inputs.

    Attributes:
        betas: Beta to SPY per symbol (symbols without one are absent).
        dividend_yields: Annual dividend yield per symbol.
        volatility_indices: 30-day IV index per symbol.
        rate: Risk-free rate.
    """

    betas: dict[str, float]
    dividend_yields: dict[str, float]
    volatility_indices: dict[str, float]
    rate: float


class BrokerPort(Protocol):
    """The broker service, read on behalf of the caller.

    Every method raises ``AccountNotFound`` for an account that is not the caller's and ``BrokerUnavailable``
    when the broker cannot answer.
    """

    async def positions(self, account_number: str, caller: Caller) -> list[HeldPosition]:
        """Every open position of the account."""
        ...

    async def balances(self, account_number: str, caller: Caller) -> AccountBalances:
        """Cash and net liquidating value."""
        ...

    async def transactions(self, account_number: str, caller: Caller, end: datetime | None = None) -> list[Transaction]:
        """The whole history up to ``end`` (exclusive; None for all)."""
        ...

    async def metrics(self, symbols: Sequence[str], caller: Caller) -> Metrics:
        """Betas, yields, IV indices and the rate."""
        ...


@dataclass(frozen=True, slots=True)
class FeedGreeks:
    """An option's Greeks from the market data service.

    Attributes:
        broker: dxFeed (delta, gamma, theta, vega, rho, volatility), or None when the feed sent none.
        model_volatility: The implied vol core_ext solved from the feed's mark, or None.
    """

    broker: tuple[float, float, float, float, float, float] | None
    model_volatility: float | None


class MarketDataPort(Protocol):
    """The market data service. Methods raise ``MarketDataUnavailable`` when it cannot answer."""

    async def prices(self, symbols: Sequence[str], caller: Caller) -> dict[str, float]:
        """Latest mark per symbol (symbols without a quote are absent)."""
        ...

    async def option_greeks(self, symbols: Sequence[str], caller: Caller) -> dict[str, FeedGreeks]:
        """Latest Greeks per option symbol (symbols without any are absent)."""
        ...

    async def daily_closes(self, symbol: str, start: datetime, end: datetime, caller: Caller) -> dict[date, float]:
        """Daily closes from stored history (may be empty)."""
        ...


@dataclass(frozen=True, slots=True)
class RiskAlert:
    """A risk limit breach alert, as stored and published.

    Attributes:
        alert_id: ``risk_<15 digits>``, in the order raised.
        user_id: Owner of the limits.
        account_number: The account.
        severity: From the limits.
        title: One line.
        message: Plain text.
        raise_time: When it was raised.
        breach: The limit and values.
    """

    alert_id: str
    user_id: str
    account_number: str
    severity: Severity
    title: str
    message: str
    raise_time: datetime
    breach: Breach


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A recorded valuation."""

    record_time: datetime
    net_liquidating_value: Decimal
    unrealized_pnl: Decimal
    delta_dollars: float
    beta_weighted_delta: float
    theta: float
    vega: float
    benchmark_symbol: str


class Store(Protocol):
    """Risk limits, active breaches, alerts with their outbox, and snapshots (PostgreSQL or in memory).

    Any method may raise ``DatabaseUnavailable``.
    """

    async def start(self) -> None:
        """Connect and apply migrations."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def get_limits(self, account_number: str) -> tuple[str, RiskLimits] | None:
        """(owner user id, limits) of the account, or None."""
        ...

    async def put_limits(self, account_number: str, user_id: str, limits: RiskLimits) -> None:
        """Replace the account's limits (and forget its active breaches, so the new limits alert afresh)."""
        ...

    async def accounts_with_limits(self) -> list[tuple[str, str]]:
        """(account, owner) of every account with limits."""
        ...

    async def active_breaches(self, account_number: str) -> set[str]:
        """Keys of the account's active breaches."""
        ...

    async def record_breaches(
        self, account_number: str, drafts: Sequence[RiskAlert], active: set[str], expected: set[str]
    ) -> list[RiskAlert]:
        """Atomically replace the active set and store new alerts (assigning ids in order) with their outbox entries.

        ``expected`` is the active set the caller diffed against; if another valuation changed it meanwhile,
        nothing is stored and [] is returned (that valuation already alerted).
        """
        ...

    async def pending_outbox(self, limit: int) -> list[RiskAlert]:
        """Up to ``limit`` alerts not yet published, oldest first."""
        ...

    async def mark_published(self, alert_ids: Sequence[str]) -> None:
        """Forget published outbox entries."""
        ...

    async def list_alerts(
        self, account_number: str, start: datetime | None, end: datetime | None, before_id: str | None, limit: int
    ) -> list[RiskAlert]:
        """Up to ``limit`` alerts of the account raised in [start, end) with ids below ``before_id``, newest first."""
        ...

    async def add_snapshot(self, account_number: str, snapshot: Snapshot) -> None:
        """Record a valuation."""
        ...

    async def list_snapshots(self, account_number: str, start: datetime | None, end: datetime | None) -> list[Snapshot]:
        """Recorded valuations in [start, end), oldest first."""
        ...
