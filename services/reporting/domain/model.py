"""What reports are made of: the rows read from the peers, and a validated report request."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

__all__ = [
    "AlertRow",
    "ClosedTrade",
    "DailyPnl",
    "PnlRow",
    "PositionRow",
    "ReportFormat",
    "ReportSpec",
    "ScenarioGrid",
    "Section",
    "SnapshotRow",
    "TransactionRow",
]

ZERO = Decimal(0)


class ReportFormat(enum.IntEnum):
    """File format (values mirror tastyplat.reporting.v1.ReportFormat)."""

    XLSX = 1
    CSV = 2


class Section(enum.IntEnum):
    """Report sections (values mirror tastyplat.reporting.v1.ReportSection)."""

    POSITIONS = 1
    PROFIT_AND_LOSS = 2
    TRANSACTIONS = 3
    ALERTS = 4
    SCENARIOS = 5


@dataclass(frozen=True, slots=True)
class ReportSpec:
    """A validated report request."""

    account_number: str
    format: ReportFormat
    sections: tuple[Section, ...]
    start: datetime | None
    end: datetime
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class TransactionRow:
    """A transaction with its fees (money signed as the broker sends it)."""

    transaction_id: str
    executed_at: datetime
    transaction_type: str
    sub_type: str
    action: str
    symbol: str
    underlying_symbol: str
    instrument: str
    description: str
    quantity: Decimal
    price: Decimal | None
    value: Decimal
    commission: Decimal
    clearing_fees: Decimal
    regulatory_fees: Decimal
    other_fees: Decimal
    net_value: Decimal
    is_option: bool = False

    @property
    def fees(self) -> Decimal:
        """Clearing, regulatory and other fees."""
        return self.clearing_fees + self.regulatory_fees + self.other_fees


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A closed trade as the portfolio service reports it."""

    trade_id: str
    underlying_symbol: str
    strategy: str
    strategy_group: str
    symbols: tuple[str, ...]
    open_time: datetime
    close_time: datetime
    close_reason: str
    realized_pnl: Decimal
    commissions: Decimal
    fees: Decimal
    dividends: Decimal

    @property
    def days_held(self) -> float:
        """Calendar days from open to close."""
        return (self.close_time - self.open_time).total_seconds() / 86_400.0


@dataclass(frozen=True, slots=True)
class PositionRow:
    """A position with its valuation and Greeks."""

    symbol: str
    underlying_symbol: str
    instrument: str
    strategy_group: str
    quantity: Decimal
    multiplier: float
    mark: Decimal
    average_open_price: Decimal
    market_value: Decimal
    cost_basis: Decimal
    unrealized_pnl: Decimal
    day_pnl: Decimal
    implied_volatility: float | None
    delta_shares: float
    delta_dollars: float
    gamma: float
    theta: float
    vega: float
    beta_weighted_delta: float
    expiration: datetime | None = None
    strike: float | None = None
    option_kind: str = ""
    broker_delta: float | None = None


@dataclass(frozen=True, slots=True)
class PnlRow:
    """P&L of one group."""

    level: str
    key: str
    realized_today: Decimal
    unrealized_today: Decimal
    realized_since_open: Decimal
    unrealized_since_open: Decimal
    fees_since_open: Decimal
    dividends_since_open: Decimal


@dataclass(frozen=True, slots=True)
class DailyPnl:
    """Realized P&L of one day and the running total."""

    day_end: datetime
    realized_pnl: Decimal
    cumulative_realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A recorded valuation."""

    record_time: datetime
    net_liquidating_value: Decimal
    unrealized_pnl: Decimal
    delta_dollars: float
    beta_weighted_delta: float
    theta: float
    vega: float


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert with its market context (fields not applying to its kind are None)."""

    alert_id: str
    raise_time: datetime
    kind: str
    severity: str
    state: str
    title: str
    underlying_symbol: str = ""
    underlying_price: float | None = None
    metric: str = ""
    delta_before: float | None = None
    delta_after: float | None = None
    band_lower: float | None = None
    band_upper: float | None = None
    implied_volatility: float | None = None
    beta: float | None = None
    hedge_symbol: str = ""
    suggested_hedge_quantity: float | None = None
    limit: str = ""
    limit_value: float | None = None
    observed_value: float | None = None


@dataclass(frozen=True)
class ScenarioGrid:
    """A scenario grid result: values over [day][shift][move]."""

    moves: tuple[float, ...]
    shifts: tuple[float, ...]
    days: tuple[float, ...]
    base_value: Decimal
    values: list[float] = field(default_factory=list)
    pnls: list[float] = field(default_factory=list)
    delta_dollars: list[float] = field(default_factory=list)
    dollar_gammas: list[float] = field(default_factory=list)
    vegas: list[float] = field(default_factory=list)
    thetas: list[float] = field(default_factory=list)
