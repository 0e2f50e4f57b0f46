"""FIFO lots from the full transaction history: realized P&L, fees, dividends and trades.

Theory of operation. Transactions are replayed oldest first. A trade, a delivery (assignment, exercise,
expiration) or a stock receipt changes one symbol's position by a signed quantity; the change first closes
the oldest open lots of the opposite sign (FIFO), and whatever is left opens a new lot. Every realized amount
is a *booking* with its time, symbol and trade:

| event                          | booking                                                             |
|--------------------------------|---------------------------------------------------------------------|
| a lot (part) closed            | GAIN = (close price - open price) x closed signed quantity x multiplier |
| expiration / assignment / exercise without cash | a close at price 0 (the option leaves; shares move by their own delivery) |
| commission, fees of any fill   | COMMISSION, FEE: the signed broker amounts, booked when paid        |
| a dividend on a held symbol    | DIVIDEND, shared among the open lots of the symbol by quantity      |

Fees are booked when paid (they are cash already spent), so realized + unrealized is the whole P&L after
every fee. A trade is the set of lots one order opened (its id is the order id, or the transaction id
without an order); it closes when its last lot closes. Amounts split between lots (closing fees over the
lots a fill closes, dividends over the lots held) are rounded half-even to 1/10,000 with the remainder on
the last share, so the parts always add up to the broker's amount exactly.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.portfolio.domain.model import (
    Action,
    HeldPosition,
    InstrumentKind,
    OptionTerms,
    Transaction,
    TransactionType,
    ny_date,
    quantize_money,
)
from services.portfolio.domain.strategy import Leg, classify, group_name

__all__ = ["Booking", "BookingKind", "CloseReason", "Ledger", "Lot", "Trade", "allocate", "build_ledger"]

ZERO = Decimal(0)
_REMOVALS = {
    "expiration": "EXPIRED",
    "assignment": "ASSIGNED",
    "exercise": "EXERCISED",
    "cash settled assignment": "ASSIGNED",
    "cash settled exercise": "EXERCISED",
}


class CloseReason(enum.IntEnum):
    """How a trade's last lot went away (values mirror tastyplat.portfolio.v1.TradeCloseReason)."""

    CLOSED = 1
    EXPIRED = 2
    ASSIGNED = 3
    EXERCISED = 4


class BookingKind(enum.IntEnum):
    """What a realized amount is."""

    GAIN = 1
    COMMISSION = 2
    FEE = 3
    DIVIDEND = 4


@dataclass(frozen=True, slots=True)
class Booking:
    """One realized amount.

    Attributes:
        time: When it was realized.
        symbol: The instrument.
        underlying: Its underlying.
        trade_id: The trade it belongs to ("" for a dividend on a symbol never traded).
        kind: Gain, commission, fee or dividend.
        amount: Signed amount.
    """

    time: datetime
    symbol: str
    underlying: str
    trade_id: str
    kind: BookingKind
    amount: Decimal


@dataclass(slots=True)
class Lot:
    """An open lot: what one fill opened and is not closed yet.

    Attributes:
        symbol: The instrument.
        underlying: Its underlying.
        quantity: Remaining signed quantity.
        price: Open price per share.
        multiplier: Shares per unit.
        open_time: When it was opened.
        trade_id: The trade it belongs to.
    """

    symbol: str
    underlying: str
    quantity: Decimal
    price: Decimal
    multiplier: Decimal
    open_time: datetime
    trade_id: str


@dataclass(slots=True)
class Trade:
    """The lots one order opened, and what they realized.

    Attributes:
        trade_id: Order id, or "tx-<transaction id>".
        underlying: The underlying.
        open_time: First fill.
        legs: Signed quantity opened per symbol, with the leg's terms.
        open_lots: Lots still open.
        close_time: When the last lot closed (None while open).
        close_reason: How it closed.
        gains, commissions, fees, dividends: Realized amounts by kind.
    """

    trade_id: str
    underlying: str
    open_time: datetime
    legs: dict[str, Leg] = field(default_factory=dict)
    open_lots: int = 0
    close_time: datetime | None = None
    close_reason: CloseReason | None = None
    gains: Decimal = ZERO
    commissions: Decimal = ZERO
    fees: Decimal = ZERO
    dividends: Decimal = ZERO
    _strategy: str | None = None

    @property
    def realized(self) -> Decimal:
        """Realized P&L after commissions and fees, with dividends."""
        return self.gains + self.commissions + self.fees + self.dividends

    @property
    def strategy(self) -> str:
        """The strategy the opening order formed."""
        if self._strategy is None:
            self._strategy = classify(list(self.legs.values()))
        return self._strategy

    @property
    def group(self) -> str:
        """The strategy group name ("" for plain shares)."""
        return group_name(self.underlying, list(self.legs.values()), self.strategy)

    @property
    def symbols(self) -> list[str]:
        """The legs' symbols, sorted."""
        return sorted(self.legs)


def allocate(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``amount`` in proportion to ``weights``; the parts add up to ``amount`` exactly.

    Parts are rounded half-even to 1/10,000 and the last part takes the remainder.
    """
    if not weights:
        return []
    total = sum(weights, ZERO)
    if len(weights) == 1 or total == 0:
        return [amount] + [ZERO] * (len(weights) - 1)
    parts = [quantize_money(amount * w / total) for w in weights[:-1]]
    parts.append(amount - sum(parts, ZERO))
    return parts


def _sign(x: Decimal) -> int:
    return (x > 0) - (x < 0)


class Ledger:
    """Lots, trades and bookings built from a history (use ``build_ledger``).

    Attributes:
        lots: Open lots by symbol, oldest first.
        trades: Every trade by id.
        bookings: Every realized amount, in time order.
        problems: (symbol, description) of each place the history does not explain itself, in order.
        period_start: When each symbol's current (or last) holding period began.
        options: The option terms seen per symbol.
        instruments: The instrument kind per symbol.
        underlyings: The underlying per symbol.
    """

    def __init__(self) -> None:
        self.lots: dict[str, deque[Lot]] = {}
        self.trades: dict[str, Trade] = {}
        self.bookings: list[Booking] = []
        self.problems: list[tuple[str, str]] = []
        self.period_start: dict[str, datetime] = {}
        self.options: dict[str, OptionTerms] = {}
        self.instruments: dict[str, InstrumentKind] = {}
        self.underlyings: dict[str, str] = {}
        self._last_trade: dict[str, str] = {}

    # ---------------------------------------------------------------- queries

    def quantity(self, symbol: str) -> Decimal:
        """The open signed quantity of ``symbol``."""
        return sum((lot.quantity for lot in self.lots.get(symbol, ())), ZERO)

    def open_symbols(self) -> list[str]:
        """Symbols with open lots, sorted."""
        return sorted(s for s, lots in self.lots.items() if lots)

    def trade_of(self, symbol: str) -> Trade | None:
        """The trade of the symbol's oldest open lot, else of its last opening."""
        lots = self.lots.get(symbol)
        trade_id = lots[0].trade_id if lots else self._last_trade.get(symbol)
        return None if trade_id is None else self.trades.get(trade_id)

    def closed_trades(self) -> list[Trade]:
        """Trades whose every lot is closed, newest close first."""
        done = [t for t in self.trades.values() if t.close_time is not None and t.open_lots == 0]
        return sorted(done, key=lambda t: (t.close_time, t.trade_id), reverse=True)

    # ---------------------------------------------------------------- replay

    def _book(self, time: datetime, symbol: str, trade_id: str, kind: BookingKind, amount: Decimal) -> None:
        if amount == 0:
            return
        self.bookings.append(Booking(time, symbol, self.underlyings.get(symbol, symbol), trade_id, kind, amount))
        trade = self.trades.get(trade_id)
        if trade is None:
            return
        if kind is BookingKind.GAIN:
            trade.gains += amount
        elif kind is BookingKind.COMMISSION:
            trade.commissions += amount
        elif kind is BookingKind.FEE:
            trade.fees += amount
        else:
            trade.dividends += amount

    def _note(self, symbol: str, tx: Transaction) -> None:
        self.underlyings.setdefault(symbol, tx.underlying_symbol or (tx.option.underlying_symbol if tx.option else symbol))
        if tx.option is not None:
            self.options[symbol] = tx.option
        if tx.instrument is not None:
            self.instruments[symbol] = tx.instrument

    def apply(self, tx: Transaction) -> None:
        """Replay one transaction (callers feed them oldest first)."""
        if tx.transaction_type is TransactionType.MONEY_MOVEMENT:
            if tx.symbol and "dividend" in tx.sub_type.lower():
                self._dividend(tx)
            return
        if not tx.symbol or tx.quantity <= 0:
            return
        self._note(tx.symbol, tx)
        removal = _REMOVALS.get(tx.sub_type.strip().lower())
        held = self.quantity(tx.symbol)
        if tx.action is not None and not (removal and tx.is_option):
            delta = tx.quantity * tx.action.sign
            closing_intent = tx.action.closing
        elif removal is not None:
            if held == 0:
                self.problems.append((tx.symbol, f"{tx.sub_type} of {tx.quantity} with no open position"))
                return
            delta = -_sign(held) * tx.quantity
            closing_intent = True
        else:
            self.problems.append((tx.symbol, f"cannot interpret {tx.transaction_type.name} {tx.sub_type!r}"))
            return
        multiplier = tx.multiplier
        if removal is not None and tx.is_option:
            price = abs(tx.value) / (tx.quantity * multiplier) if tx.value else ZERO
        elif tx.price is not None:
            price = tx.price
        else:
            price = abs(tx.value) / (tx.quantity * multiplier) if tx.value else ZERO
        closable = ZERO
        if held != 0 and _sign(held) != _sign(delta):
            closable = min(abs(delta), abs(held))
        opening = abs(delta) - closable
        if closing_intent is True and opening > 0:
            self.problems.append(
                (tx.symbol, f"{tx.sub_type or tx.action} of {tx.quantity} closes more than the {held} held")
            )
            opening = ZERO
        commission_parts = allocate(tx.commission, [closable, opening])
        fee_parts = allocate(tx.fees, [closable, opening])
        if closable > 0:
            reason = CloseReason[removal] if removal is not None and tx.is_option else CloseReason.CLOSED
            self._close(tx, closable * _sign(delta), price, multiplier, commission_parts[0], fee_parts[0], reason)
        if opening > 0:
            self._open(tx, opening * _sign(delta), price, multiplier, commission_parts[1], fee_parts[1])

    def _close(
        self,
        tx: Transaction,
        delta: Decimal,
        price: Decimal,
        multiplier: Decimal,
        commission: Decimal,
        fees: Decimal,
        reason: CloseReason,
    ) -> None:
        lots = self.lots[tx.symbol]
        remaining = abs(delta)
        pieces: list[tuple[Lot, Decimal]] = []
        while remaining > 0 and lots:
            lot = lots[0]
            take = min(remaining, abs(lot.quantity))
            pieces.append((lot, take))
            remaining -= take
            signed = take * _sign(lot.quantity)
            lot.quantity -= signed
            gain = (price - lot.price) * signed * lot.multiplier
            self._book(tx.executed_at, tx.symbol, lot.trade_id, BookingKind.GAIN, gain)
            if lot.quantity == 0:
                lots.popleft()
                trade = self.trades[lot.trade_id]
                trade.open_lots -= 1
                if trade.open_lots == 0:
                    trade.close_time = tx.executed_at
                    trade.close_reason = reason
        weights = [take for _, take in pieces]
        for (lot, _), part in zip(pieces, allocate(commission, weights)):
            self._book(tx.executed_at, tx.symbol, lot.trade_id, BookingKind.COMMISSION, part)
        for (lot, _), part in zip(pieces, allocate(fees, weights)):
            self._book(tx.executed_at, tx.symbol, lot.trade_id, BookingKind.FEE, part)

    def _open(
        self, tx: Transaction, delta: Decimal, price: Decimal, multiplier: Decimal, commission: Decimal, fees: Decimal
    ) -> None:
        trade_id = tx.order_id or f"tx-{tx.transaction_id}"
        underlying = self.underlyings[tx.symbol]
        trade = self.trades.get(trade_id)
        if trade is None:
            trade = self.trades[trade_id] = Trade(trade_id, underlying, tx.executed_at)
        elif trade.open_lots == 0:
            trade.close_time = None
            trade.close_reason = None
        option = tx.option
        previous = trade.legs.get(tx.symbol)
        quantity = float(delta) + (previous.quantity if previous else 0.0)
        trade.legs[tx.symbol] = Leg(
            quantity=quantity,
            is_option=tx.is_option,
            is_call=bool(option and option.is_call),
            strike=option.strike if option else 0.0,
            expiration=ny_date(option.expiration_time) if option else None,  # type: ignore[arg-type]
        )
        trade._strategy = None
        lots = self.lots.setdefault(tx.symbol, deque())
        if not lots:
            self.period_start[tx.symbol] = tx.executed_at
        lots.append(Lot(tx.symbol, underlying, delta, price, multiplier, tx.executed_at, trade_id))
        trade.open_lots += 1
        self._last_trade[tx.symbol] = trade_id
        self._book(tx.executed_at, tx.symbol, trade_id, BookingKind.COMMISSION, commission)
        self._book(tx.executed_at, tx.symbol, trade_id, BookingKind.FEE, fees)

    def _dividend(self, tx: Transaction) -> None:
        self.underlyings.setdefault(tx.symbol, tx.underlying_symbol or tx.symbol)
        lots = list(self.lots.get(tx.symbol, ()))
        if lots:
            for lot, part in zip(lots, allocate(tx.net_value or tx.value, [abs(lot.quantity) for lot in lots])):
                self._book(tx.executed_at, tx.symbol, lot.trade_id, BookingKind.DIVIDEND, part)
            return
        self._book(tx.executed_at, tx.symbol, self._last_trade.get(tx.symbol, ""), BookingKind.DIVIDEND, tx.net_value or tx.value)

    def expire_lapsed(self, now: datetime, held: Iterable[str]) -> None:
        """Close, as expired worthless, option lots past their expiration that the broker no longer holds.

        The broker posts expiration removals overnight; until then the history still shows the contract open.
        """
        still_held = set(held)
        for symbol in self.open_symbols():
            option = self.options.get(symbol)
            if option is None or symbol in still_held or option.expiration_time > now:
                continue
            held_quantity = self.quantity(symbol)
            tx = Transaction(
                transaction_id=f"expire-{symbol}",
                executed_at=option.expiration_time,
                transaction_type=TransactionType.RECEIVE_DELIVER,
                sub_type="Expiration",
                symbol=symbol,
                underlying_symbol=option.underlying_symbol,
                instrument=InstrumentKind.EQUITY_OPTION,
                quantity=abs(held_quantity),
                option=option,
            )
            self.apply(tx)

    def reconcile(self, positions: Iterable[HeldPosition]) -> tuple[str, str] | None:
        """The first (symbol, description) where the history disagrees with the broker's positions, or None."""
        if self.problems:
            return self.problems[0]
        broker = {p.symbol: p.quantity for p in positions}
        for symbol in sorted(set(broker) | set(self.open_symbols())):
            ours = self.quantity(symbol)
            theirs = broker.get(symbol, ZERO)
            if ours != theirs:
                return symbol, f"the history leaves {ours} open but the broker holds {theirs}"
        return None


def build_ledger(transactions: Iterable[Transaction]) -> Ledger:
    """Replay a history (any order; it is sorted oldest first by time, then id) into a ledger."""
    ledger = Ledger()
    for tx in sorted(transactions, key=lambda t: (t.executed_at, _id_key(t.transaction_id))):
        ledger.apply(tx)
    return ledger


def _id_key(transaction_id: str) -> tuple[int, int | str]:
    return (0, int(transaction_id)) if transaction_id.isdigit() else (1, transaction_id)
