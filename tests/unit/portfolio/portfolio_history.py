"""Builders for hand-written transaction histories (shared by the portfolio unit tests)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from services.portfolio.domain.model import Action, InstrumentKind, OptionTerms, Transaction, TransactionType

_ids = itertools.count(1000)

D = Decimal


def at(day: str, hour: int = 15) -> datetime:
    """``day`` (YYYY-MM-DD) at ``hour``:00 UTC (10:00/11:00 New York)."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def option(symbol: str, underlying: str, is_call: bool, strike: float, expiry: str, american: bool = True) -> OptionTerms:
    """Option terms expiring at 16:00 New York (20:00 UTC in summer) on ``expiry``."""
    return OptionTerms(symbol, underlying, is_call, strike, at(expiry, 20), american, 100.0)


def trade(
    when: datetime,
    symbol: str,
    action: Action,
    quantity: str,
    price: str,
    *,
    underlying: str | None = None,
    terms: OptionTerms | None = None,
    commission: str = "0",
    fees: str = "0",
    order: str = "",
    sub_type: str | None = None,
    kind: TransactionType = TransactionType.TRADE,
) -> Transaction:
    """A fill with the broker's signs: value = price x quantity x multiplier, credit for sells."""
    multiplier = D(100) if terms else D(1)
    value = D(price) * D(quantity) * multiplier * (-action.sign)
    net = value + D(commission) + D(fees)
    return Transaction(
        transaction_id=str(next(_ids)),
        executed_at=when,
        transaction_type=kind,
        sub_type=sub_type or action.name.replace("_", " ").title(),
        action=action,
        symbol=symbol,
        underlying_symbol=underlying or (terms.underlying_symbol if terms else symbol),
        instrument=InstrumentKind.EQUITY_OPTION if terms else InstrumentKind.EQUITY,
        quantity=D(quantity),
        price=D(price),
        value=value,
        commission=D(commission),
        fees=D(fees),
        net_value=net,
        order_id=order,
        option=terms,
    )


def removal(when: datetime, terms: OptionTerms, sub_type: str, quantity: str) -> Transaction:
    """An option leaving the account (Expiration, Assignment, Exercise) as a Receive Deliver at zero value."""
    return Transaction(
        transaction_id=str(next(_ids)),
        executed_at=when,
        transaction_type=TransactionType.RECEIVE_DELIVER,
        sub_type=sub_type,
        symbol=terms.symbol,
        underlying_symbol=terms.underlying_symbol,
        instrument=InstrumentKind.EQUITY_OPTION,
        quantity=D(quantity),
        option=terms,
    )


def dividend(when: datetime, symbol: str, amount: str) -> Transaction:
    """A cash dividend on ``symbol``."""
    return Transaction(
        transaction_id=str(next(_ids)),
        executed_at=when,
        transaction_type=TransactionType.MONEY_MOVEMENT,
        sub_type="Dividend",
        symbol=symbol,
        underlying_symbol=symbol,
        instrument=InstrumentKind.EQUITY,
        value=D(amount),
        net_value=D(amount),
    )
