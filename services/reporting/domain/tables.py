"""Report sections as tables: typed columns, rows, and the charts drawn from them (no file format here)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.reporting.domain.model import (
    AlertRow,
    DailyPnl,
    PnlRow,
    PositionRow,
    ScenarioGrid,
    SnapshotRow,
    TransactionRow,
)

__all__ = [
    "Chart",
    "ChartKind",
    "Column",
    "Kind",
    "Table",
    "alerts_table",
    "daily_pnl_table",
    "pnl_table",
    "positions_table",
    "scenario_table",
    "snapshots_table",
    "transactions_table",
]


class Kind(enum.Enum):
    """How a column's values are formatted."""

    TEXT = "text"
    DATETIME = "datetime"
    MONEY = "money"
    PRICE = "price"
    NUMBER = "number"
    QUANTITY = "quantity"
    PERCENT = "percent"


@dataclass(frozen=True)
class Column:
    """One column: header, kind, display width in characters, and how to read it from a row."""

    header: str
    kind: Kind
    width: float
    get: Callable[[Any], Any]


class ChartKind(enum.Enum):
    """Native chart types the writers draw."""

    LINE = "line"
    SCATTER = "scatter"


@dataclass(frozen=True)
class Chart:
    """A chart over a table's columns.

    Attributes:
        title: Chart title.
        kind: Line (categories on x) or scatter (numeric x).
        x_column: Index of the x / category column.
        y_columns: Indexes of the series columns.
        x_title, y_title: Axis titles.
        anchor_column: Sheet column letter the chart's top-left corner sits in.
        series_by: For a scatter chart: split rows into one series per distinct value of this column index
            (rows must come grouped by it), else None.
        series_filter: Only rows whose ``series_filter[0]`` column equals ``series_filter[1]`` are plotted.
    """

    title: str
    kind: ChartKind
    x_column: int
    y_columns: tuple[int, ...]
    x_title: str
    y_title: str
    anchor_column: str = "K"
    series_by: int | None = None
    series_filter: tuple[int, Any] | None = None


@dataclass
class Table:
    """A named table (one sheet of an XLSX report, or a whole CSV file)."""

    name: str
    columns: list[Column]
    rows: Iterable[Any]
    charts: list[Chart] = field(default_factory=list)

    def values(self) -> Iterator[list[Any]]:
        """Each row's values, column by column."""
        getters = [c.get for c in self.columns]
        for row in self.rows:
            yield [g(row) for g in getters]



def positions_table(rows: Sequence[PositionRow]) -> Table:
    """Positions with their Greeks."""
    return Table(
        "Positions",
        [
            Column("Symbol", Kind.TEXT, 24, lambda r: r.symbol),
            Column("Underlying", Kind.TEXT, 11, lambda r: r.underlying_symbol),
            Column("Type", Kind.TEXT, 14, lambda r: r.instrument),
            Column("Call/Put", Kind.TEXT, 8, lambda r: r.option_kind),
            Column("Strike", Kind.PRICE, 10, lambda r: r.strike),
            Column("Expiration", Kind.DATETIME, 17, lambda r: r.expiration),
            Column("Strategy group", Kind.TEXT, 30, lambda r: r.strategy_group),
            Column("Quantity", Kind.QUANTITY, 10, lambda r: r.quantity),
            Column("Multiplier", Kind.NUMBER, 10, lambda r: r.multiplier),
            Column("Mark", Kind.PRICE, 11, lambda r: r.mark),
            Column("Avg open price", Kind.PRICE, 14, lambda r: r.average_open_price),
            Column("Market value", Kind.MONEY, 15, lambda r: r.market_value),
            Column("Cost basis", Kind.MONEY, 15, lambda r: r.cost_basis),
            Column("Unrealized P&L", Kind.MONEY, 15, lambda r: r.unrealized_pnl),
            Column("Day P&L", Kind.MONEY, 13, lambda r: r.day_pnl),
            Column("Implied vol", Kind.PERCENT, 11, lambda r: r.implied_volatility),
            Column("Delta (shares)", Kind.NUMBER, 14, lambda r: r.delta_shares),
            Column("Delta ($)", Kind.MONEY, 14, lambda r: r.delta_dollars),
            Column("Gamma", Kind.NUMBER, 11, lambda r: r.gamma),
            Column("Theta ($/day)", Kind.MONEY, 13, lambda r: r.theta),
            Column("Vega ($/vol pt)", Kind.MONEY, 14, lambda r: r.vega),
            Column("Beta-wtd delta", Kind.NUMBER, 14, lambda r: r.beta_weighted_delta),
            Column("dxFeed delta", Kind.NUMBER, 12, lambda r: r.broker_delta),
        ],
        rows,
    )


def pnl_table(rows: Sequence[PnlRow]) -> Table:
    """P&L by position, underlying, strategy and account."""
    return Table(
        "P&L",
        [
            Column("Level", Kind.TEXT, 12, lambda r: r.level),
            Column("Key", Kind.TEXT, 34, lambda r: r.key),
            Column("Realized today", Kind.MONEY, 15, lambda r: r.realized_today),
            Column("Unrealized today", Kind.MONEY, 16, lambda r: r.unrealized_today),
            Column("Realized since open", Kind.MONEY, 19, lambda r: r.realized_since_open),
            Column("Unrealized since open", Kind.MONEY, 21, lambda r: r.unrealized_since_open),
            Column("Fees since open", Kind.MONEY, 16, lambda r: r.fees_since_open),
            Column("Dividends since open", Kind.MONEY, 20, lambda r: r.dividends_since_open),
        ],
        rows,
    )


def daily_pnl_table(rows: Sequence[DailyPnl]) -> Table:
    """Realized P&L per day, with the P&L-over-time chart."""
    return Table(
        "P&L over time",
        [
            Column("Day", Kind.DATETIME, 17, lambda r: r.day_end),
            Column("Realized P&L", Kind.MONEY, 15, lambda r: r.realized_pnl),
            Column("Cumulative realized P&L", Kind.MONEY, 24, lambda r: r.cumulative_realized_pnl),
        ],
        rows,
        [Chart("Realized P&L over time", ChartKind.LINE, 0, (2,), "Day", "USD", anchor_column="E")],
    )


def snapshots_table(rows: Sequence[SnapshotRow]) -> Table:
    """Recorded valuations, with the delta-over-time chart."""
    return Table(
        "Delta over time",
        [
            Column("Time", Kind.DATETIME, 17, lambda r: r.record_time),
            Column("Net liq", Kind.MONEY, 15, lambda r: r.net_liquidating_value),
            Column("Unrealized P&L", Kind.MONEY, 15, lambda r: r.unrealized_pnl),
            Column("Delta ($)", Kind.MONEY, 14, lambda r: r.delta_dollars),
            Column("Beta-wtd delta", Kind.NUMBER, 14, lambda r: r.beta_weighted_delta),
            Column("Theta ($/day)", Kind.MONEY, 13, lambda r: r.theta),
            Column("Vega ($/vol pt)", Kind.MONEY, 14, lambda r: r.vega),
        ],
        rows,
        [Chart("Delta over time", ChartKind.LINE, 0, (3,), "Time", "Dollar delta", anchor_column="I")],
    )


def transactions_table(rows: Iterable[TransactionRow]) -> Table:
    """Transactions with their fees."""
    return Table(
        "Transactions",
        [
            Column("Executed", Kind.DATETIME, 17, lambda r: r.executed_at),
            Column("Id", Kind.TEXT, 12, lambda r: r.transaction_id),
            Column("Type", Kind.TEXT, 16, lambda r: r.transaction_type),
            Column("Sub-type", Kind.TEXT, 16, lambda r: r.sub_type),
            Column("Action", Kind.TEXT, 13, lambda r: r.action),
            Column("Symbol", Kind.TEXT, 24, lambda r: r.symbol),
            Column("Underlying", Kind.TEXT, 11, lambda r: r.underlying_symbol),
            Column("Description", Kind.TEXT, 40, lambda r: r.description),
            Column("Quantity", Kind.QUANTITY, 10, lambda r: r.quantity),
            Column("Price", Kind.PRICE, 10, lambda r: r.price),
            Column("Value", Kind.MONEY, 14, lambda r: r.value),
            Column("Commission", Kind.MONEY, 12, lambda r: r.commission),
            Column("Clearing fees", Kind.MONEY, 13, lambda r: r.clearing_fees),
            Column("Regulatory fees", Kind.MONEY, 15, lambda r: r.regulatory_fees),
            Column("Other fees", Kind.MONEY, 11, lambda r: r.other_fees),
            Column("Net value", Kind.MONEY, 14, lambda r: r.net_value),
        ],
        rows,
    )


def alerts_table(rows: Sequence[AlertRow]) -> Table:
    """Alerts with their market context."""
    return Table(
        "Alerts",
        [
            Column("Raised", Kind.DATETIME, 17, lambda r: r.raise_time),
            Column("Id", Kind.TEXT, 22, lambda r: r.alert_id),
            Column("Kind", Kind.TEXT, 18, lambda r: r.kind),
            Column("Severity", Kind.TEXT, 9, lambda r: r.severity),
            Column("State", Kind.TEXT, 13, lambda r: r.state),
            Column("Title", Kind.TEXT, 46, lambda r: r.title),
            Column("Underlying", Kind.TEXT, 11, lambda r: r.underlying_symbol),
            Column("Underlying price", Kind.PRICE, 16, lambda r: r.underlying_price),
            Column("Metric", Kind.TEXT, 14, lambda r: r.metric),
            Column("Delta before", Kind.NUMBER, 13, lambda r: r.delta_before),
            Column("Delta after", Kind.NUMBER, 12, lambda r: r.delta_after),
            Column("Band lower", Kind.NUMBER, 11, lambda r: r.band_lower),
            Column("Band upper", Kind.NUMBER, 11, lambda r: r.band_upper),
            Column("Implied vol", Kind.PERCENT, 11, lambda r: r.implied_volatility),
            Column("Beta", Kind.NUMBER, 8, lambda r: r.beta),
            Column("Hedge symbol", Kind.TEXT, 12, lambda r: r.hedge_symbol),
            Column("Suggested hedge", Kind.QUANTITY, 15, lambda r: r.suggested_hedge_quantity),
            Column("Limit", Kind.TEXT, 24, lambda r: r.limit),
            Column("Limit value", Kind.NUMBER, 12, lambda r: r.limit_value),
            Column("Observed", Kind.NUMBER, 12, lambda r: r.observed_value),
        ],
        rows,
    )


def _scenario_rows(grid: ScenarioGrid) -> Iterator[tuple[float, float, float, float, float, float, float, float, float]]:
    m, s = len(grid.moves), len(grid.shifts)
    for d, day in enumerate(grid.days):
        for j, shift in enumerate(grid.shifts):
            for i, move in enumerate(grid.moves):
                k = (d * s + j) * m + i
                yield (day, shift, move, grid.values[k], grid.pnls[k], grid.delta_dollars[k], grid.dollar_gammas[k],
                       grid.vegas[k], grid.thetas[k])


def scenario_table(grid: ScenarioGrid) -> Table:
    """The scenario grid, one row per point, with the scenario curve (P&L against the move at zero vol shift)."""
    zero_shift = min(grid.shifts, key=abs)
    return Table(
        "Scenarios",
        [
            Column("Days forward", Kind.NUMBER, 13, lambda r: r[0]),
            Column("Vol shift", Kind.PERCENT, 10, lambda r: r[1]),
            Column("Underlying move", Kind.PERCENT, 16, lambda r: r[2]),
            Column("Value", Kind.MONEY, 15, lambda r: r[3]),
            Column("P&L", Kind.MONEY, 14, lambda r: r[4]),
            Column("Delta ($)", Kind.MONEY, 14, lambda r: r[5]),
            Column("Dollar gamma (1%)", Kind.MONEY, 17, lambda r: r[6]),
            Column("Vega ($/vol pt)", Kind.MONEY, 15, lambda r: r[7]),
            Column("Theta ($/day)", Kind.MONEY, 13, lambda r: r[8]),
        ],
        _scenario_rows(grid),
        [
            Chart("Scenario curve: P&L by underlying move", ChartKind.SCATTER, 2, (4,), "Underlying move", "P&L (USD)",
                  series_by=0, series_filter=(1, zero_shift))
        ],
    )


