"""P&L of positions, underlyings, strategy groups and the account, from the ledger and the current marks.

Definitions (money is Decimal; nothing is rounded):

- unrealized since open: sum over open lots of (mark - open price) x signed quantity x multiplier;
- unrealized today: the same against the previous close for lots opened before today (New York date), and
  against the open price for lots opened today; a lot without a previous close uses its open price;
- realized today: bookings (gains, commissions, fees, dividends) made today;
- realized since open: bookings on the symbol since its current holding period began (for a symbol closed
  today, since its last holding period began); fees and dividends likewise.

A position appears while it is open, and on the day it was closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal

from services.portfolio.domain.ledger import BookingKind, Ledger
from services.portfolio.domain.model import NEW_YORK, HeldPosition

__all__ = ["PnlRow", "PnlReport", "PositionValuation", "compute_pnl", "day_start", "value_positions"]

ZERO = Decimal(0)


def day_start(now: datetime) -> datetime:
    """Midnight New York time of the trading day containing ``now``."""
    local = now.astimezone(NEW_YORK)
    return datetime.combine(local.date(), time(0, 0), tzinfo=NEW_YORK)


@dataclass(slots=True)
class PnlRow:
    """P&L of one group (a symbol, an underlying, a strategy group or the account)."""

    key: str
    realized_today: Decimal = ZERO
    unrealized_today: Decimal = ZERO
    realized_since_open: Decimal = ZERO
    unrealized_since_open: Decimal = ZERO
    fees_since_open: Decimal = ZERO
    dividends_since_open: Decimal = ZERO

    def add(self, other: PnlRow) -> None:
        """Add another row's amounts to this one."""
        self.realized_today += other.realized_today
        self.unrealized_today += other.unrealized_today
        self.realized_since_open += other.realized_since_open
        self.unrealized_since_open += other.unrealized_since_open
        self.fees_since_open += other.fees_since_open
        self.dividends_since_open += other.dividends_since_open


@dataclass(slots=True)
class PnlReport:
    """P&L at every grouping."""

    positions: list[PnlRow] = field(default_factory=list)
    underlyings: list[PnlRow] = field(default_factory=list)
    strategies: list[PnlRow] = field(default_factory=list)
    account: PnlRow = field(default_factory=lambda: PnlRow(""))


@dataclass(frozen=True, slots=True)
class PositionValuation:
    """A held position valued with its lots.

    Attributes:
        position: The broker's position.
        mark: Mark per share used.
        market_value: mark x quantity x multiplier.
        cost_basis: Sum of open price x signed quantity x multiplier over the remaining lots.
        average_open_price: Quantity-weighted open price of the remaining lots.
        unrealized_pnl: market_value - cost_basis.
        day_pnl: Unrealized P&L of the day.
        open_time: Oldest remaining lot's open time.
        strategy_group: The group of the oldest remaining lot's trade.
    """

    position: HeldPosition
    mark: Decimal
    market_value: Decimal
    cost_basis: Decimal
    average_open_price: Decimal
    unrealized_pnl: Decimal
    day_pnl: Decimal
    open_time: datetime | None
    strategy_group: str


def _unrealized(ledger: Ledger, position: HeldPosition, mark: Decimal, today: datetime) -> tuple[Decimal, Decimal, Decimal, Decimal, datetime | None]:
    lots = ledger.lots.get(position.symbol)
    if not lots:
        # The history does not know this position (GetPortfolio tolerates that): one lot at the broker's figures.
        price = position.average_open_price if position.average_open_price is not None else mark
        cost = price * position.quantity * position.multiplier
        reference = position.close_price if position.close_price is not None else price
        day = (mark - reference) * position.quantity * position.multiplier
        return cost, price, (mark * position.quantity * position.multiplier) - cost, day, position.open_time
    cost = ZERO
    day = ZERO
    size = ZERO
    weighted = ZERO
    for lot in lots:
        cost += lot.price * lot.quantity * lot.multiplier
        size += abs(lot.quantity)
        weighted += lot.price * abs(lot.quantity)
        if lot.open_time >= today or position.close_price is None:
            reference = lot.price
        else:
            reference = position.close_price
        day += (mark - reference) * lot.quantity * lot.multiplier
    average = weighted / size if size else ZERO
    value = mark * position.quantity * position.multiplier
    return cost, average, value - cost, day, lots[0].open_time


def value_positions(ledger: Ledger, positions: Sequence[HeldPosition], now: datetime) -> list[PositionValuation]:
    """Value every held position with its lots (positions without a mark are valued at their open price)."""
    today = day_start(now)
    out: list[PositionValuation] = []
    for position in positions:
        mark = position.mark_price
        if mark is None:
            mark = position.average_open_price if position.average_open_price is not None else ZERO
        cost, average, unrealized, day, opened = _unrealized(ledger, position, mark, today)
        trade = ledger.trade_of(position.symbol)
        out.append(
            PositionValuation(
                position=position,
                mark=mark,
                market_value=mark * position.quantity * position.multiplier,
                cost_basis=cost,
                average_open_price=average,
                unrealized_pnl=unrealized,
                day_pnl=day,
                open_time=opened,
                strategy_group=trade.group if trade is not None else "",
            )
        )
    return out


def compute_pnl(
    ledger: Ledger, valuations: Iterable[PositionValuation], now: datetime, account_number: str
) -> PnlReport:
    """P&L per position, underlying, strategy group and account (see the module docstring)."""
    today = day_start(now)
    rows: dict[str, PnlRow] = {}
    groups: dict[str, str] = {}
    underlyings: dict[str, str] = {}
    for v in valuations:
        row = rows.setdefault(v.position.symbol, PnlRow(v.position.symbol))
        row.unrealized_since_open += v.unrealized_pnl
        row.unrealized_today += v.day_pnl
        groups[v.position.symbol] = v.strategy_group
        underlyings[v.position.symbol] = v.position.underlying_symbol
    closed_today = {b.symbol for b in ledger.bookings if b.time >= today and b.symbol not in rows}
    for symbol in closed_today:
        rows[symbol] = PnlRow(symbol)
        trade = ledger.trade_of(symbol)
        groups[symbol] = trade.group if trade is not None else ""
        underlyings[symbol] = ledger.underlyings.get(symbol, symbol)
    for booking in ledger.bookings:
        found = rows.get(booking.symbol)
        if found is None:
            continue
        row = found
        if booking.time >= today:
            row.realized_today += booking.amount
        start = ledger.period_start.get(booking.symbol)
        if start is not None and booking.time < start:
            continue
        row.realized_since_open += booking.amount
        if booking.kind in (BookingKind.COMMISSION, BookingKind.FEE):
            row.fees_since_open += booking.amount
        elif booking.kind is BookingKind.DIVIDEND:
            row.dividends_since_open += booking.amount
    report = PnlReport(account=PnlRow(account_number))
    by_underlying: dict[str, PnlRow] = {}
    by_group: dict[str, PnlRow] = {}
    for symbol in sorted(rows, key=lambda s: (underlyings.get(s, s), s)):
        row = rows[symbol]
        report.positions.append(row)
        by_underlying.setdefault(underlyings.get(symbol, symbol), PnlRow(underlyings.get(symbol, symbol))).add(row)
        if groups.get(symbol):
            by_group.setdefault(groups[symbol], PnlRow(groups[symbol])).add(row)
        report.account.add(row)
    report.underlyings = [by_underlying[k] for k in sorted(by_underlying)]
    report.strategies = [by_group[k] for k in sorted(by_group)]
    return report
