"""The paper broker's demo book: which positions a demo account holds and how its history reads, from a date.

Everything here is a pure function of the as-of date (and the account number): the same day gives the same
account, and expirations roll forward with the calendar so the demo never holds an expired contract.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from services.broker.domain import occ
from services.broker.domain.expiry import NEW_YORK, fridays_after, monthlies_after
from services.broker.domain.model import InstrumentType, OptionKind, OptionSymbol, Transaction

PAPER_PREFIX = "PAPER"
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class DemoUnderlying:
    """An underlying the demo trades, with the reference figures its marks and metrics start from.

    Attributes:
        price: Reference price per share.
        volatility: Reference implied volatility (fraction) used for reference option marks.
        strike_step: Spacing of listed strikes.
        beta: Beta to SPY reported in market metrics.
        dividend_yield: Annual dividend yield (fraction).
    """

    symbol: str
    description: str
    price: Decimal
    volatility: Decimal
    strike_step: Decimal
    beta: Decimal
    dividend_yield: Decimal


DEMO_UNDERLYINGS: dict[str, DemoUnderlying] = {
    u.symbol: u
    for u in (
        DemoUnderlying("SPY", "SPDR S&P 500 ETF TRUST", Decimal("545.20"), Decimal("0.14"), Decimal("5"), Decimal("1.00"), Decimal("0.0122")),
        DemoUnderlying("QQQ", "INVESCO QQQ TRUST", Decimal("468.40"), Decimal("0.18"), Decimal("5"), Decimal("1.12"), Decimal("0.0057")),
        DemoUnderlying("AAPL", "APPLE INC", Decimal("190.10"), Decimal("0.24"), Decimal("5"), Decimal("1.27"), Decimal("0.0051")),
        DemoUnderlying("TSLA", "TESLA INC", Decimal("182.60"), Decimal("0.55"), Decimal("10"), Decimal("2.08"), Decimal("0")),
    )
}


@dataclass(frozen=True, slots=True)
class Holding:
    """One open demo position.

    Attributes:
        quantity: Signed: shares or contracts, negative for short.
        open_price: Per-share (or per option unit) price paid or received.
        opened_on: The trade date.
    """

    symbol: str
    underlying: str
    quantity: int
    open_price: Decimal
    opened_on: date
    option: OptionSymbol | None

    @property
    def multiplier(self) -> int:
        """100 for options, 1 for shares."""
        return 100 if self.option is not None else 1


def paper_account_number(user_id: str) -> str:
    """The demo account number of a user: ``PAPER`` and six characters derived from the user id."""
    digest = hashlib.sha256(f"tastyplat-paper:{user_id}".encode()).hexdigest().upper()
    return f"{PAPER_PREFIX}{digest[:6]}"


def listed_strike(underlying: DemoUnderlying, steps: int) -> Decimal:
    """The listed strike ``steps`` grid steps from the one nearest the reference price."""
    centre = (underlying.price / underlying.strike_step).quantize(Decimal(1), ROUND_HALF_UP) * underlying.strike_step
    return centre + underlying.strike_step * steps


def chain_expirations(as_of: date) -> list[tuple[date, str]]:
    """(expiration, expiration type) listed as of a date: four weeklies and three monthlies, ascending."""
    monthlies = monthlies_after(as_of, 3)
    days = sorted(set(fridays_after(as_of, 4)) | set(monthlies))
    return [(d, "Regular" if d in monthlies else "Weekly") for d in days]


def _option(symbol: str, expiry: date, kind: OptionKind, steps: int) -> OptionSymbol:
    return OptionSymbol(symbol, expiry, kind, listed_strike(DEMO_UNDERLYINGS[symbol], steps))


def demo_holdings(as_of: date) -> list[Holding]:
    """The demo positions as of a date: shares, and long and short options on SPY, QQQ, AAPL and TSLA."""
    m = monthlies_after(as_of, 3)
    w = fridays_after(as_of, 2)
    put, call = OptionKind.PUT, OptionKind.CALL
    options = [
        # (option, signed contracts, open price per share, days ago)
        (_option("SPY", m[0], put, -5), -2, Decimal("4.85"), 21),
        (_option("SPY", m[1], call, 4), 1, Decimal("7.20"), 16),
        (_option("SPY", w[0], call, 2), -1, Decimal("1.95"), 3),
        (_option("QQQ", w[1], put, -3), 3, Decimal("2.05"), 6),
        (_option("QQQ", m[0], put, -4), -2, Decimal("3.40"), 18),
        (_option("QQQ", m[0], put, -6), 2, Decimal("2.10"), 18),
        (_option("AAPL", m[0], call, 2), -1, Decimal("2.40"), 12),
        (_option("AAPL", m[2], call, 1), 2, Decimal("6.15"), 30),
        (_option("TSLA", m[1], put, -4), -1, Decimal("9.75"), 14),
        (_option("TSLA", m[1], call, 4), -1, Decimal("8.10"), 14),
        (_option("TSLA", w[1], put, -1), 1, Decimal("7.30"), 4),
    ]
    holdings = [
        Holding("SPY", "SPY", 100, Decimal("521.37"), as_of - timedelta(days=95), None),
        Holding("AAPL", "AAPL", 50, Decimal("182.50"), as_of - timedelta(days=60), None),
        Holding("TSLA", "TSLA", 10, Decimal("171.05"), as_of - timedelta(days=41), None),
    ]
    for option, quantity, price, days_ago in options:
        symbol = occ.format_occ(option.root, option.expiration_date, option.kind, option.strike)
        holdings.append(Holding(symbol, option.root, quantity, price, as_of - timedelta(days=days_ago), option))
    return holdings


def _executed(day: date, minute: int) -> datetime:
    # Demo fills land during the session, 10:00 New York time onwards.
    local = datetime.combine(day, time(10, 0), tzinfo=NEW_YORK) + timedelta(minutes=minute)
    return local.astimezone(timezone.utc)


def _fees(option: bool, quantity: int, opening: bool, selling: bool) -> tuple[Decimal, Decimal, Decimal]:
    """(commission, clearing, regulatory) as positive amounts, on tastytrade's published schedule."""
    if option:
        commission = Decimal(min(quantity, 10)) if opening else Decimal(0)
        clearing = Decimal("0.10") * quantity
        regulatory = (Decimal("0.0105") * quantity + (Decimal("0.0279") * quantity if selling else 0)).quantize(
            Decimal("0.001")
        )
        return commission, clearing, regulatory
    clearing = (Decimal("0.0008") * quantity).quantize(Decimal("0.001"))
    regulatory = Decimal("0.02") if selling else Decimal(0)
    return Decimal(0), clearing, regulatory


class _History:
    def __init__(self, account_number: str) -> None:
        self.account_number = account_number
        self.rows: list[Transaction] = []
        self._next_id = int(hashlib.sha256(account_number.encode()).hexdigest()[:6], 16) * 1000

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def money(self, day: date, minute: int, sub_type: str, description: str, amount: Decimal, symbol: str | None = None) -> None:
        self.rows.append(
            Transaction(
                id=self._id(), account_number=self.account_number, transaction_type="Money Movement",
                transaction_sub_type=sub_type, description=description, executed_at=_executed(day, minute),
                transaction_date=day, symbol=symbol,
                instrument_type=InstrumentType.EQUITY if symbol else None, underlying_symbol=symbol,
                action=None, quantity=None, price=None, value=amount, net_value=amount,
                commission=Decimal(0), clearing_fees=Decimal(0), regulatory_fees=Decimal(0),
                proprietary_index_option_fees=Decimal(0), order_id=None, is_estimated_fee=False,
            )
        )

    def trade(self, day: date, minute: int, symbol: str, underlying: str, option: OptionSymbol | None, action: str, quantity: int, price: Decimal) -> None:
        selling = action.startswith("Sell")
        multiplier = 100 if option else 1
        commission, clearing, regulatory = _fees(option is not None, quantity, action.endswith("Open"), selling)
        value = price * quantity * multiplier * (1 if selling else -1)
        net = value - commission - clearing - regulatory
        if option is not None:
            kind = "Call" if option.kind is OptionKind.CALL else "Put"
            what = f"{underlying} {option.expiration_date:%m/%d/%y} {kind} {option.strike}"
        else:
            what = underlying
        description = f"{'Sold' if selling else 'Bought'} {quantity} {what} @ {price}"
        self.rows.append(
            Transaction(
                id=self._id(), account_number=self.account_number, transaction_type="Trade",
                transaction_sub_type=action, description=description, executed_at=_executed(day, minute),
                transaction_date=day, symbol=symbol,
                instrument_type=InstrumentType.EQUITY_OPTION if option else InstrumentType.EQUITY,
                underlying_symbol=underlying, action=action, quantity=Decimal(quantity), price=price,
                value=value, net_value=net, commission=-commission, clearing_fees=-clearing,
                regulatory_fees=-regulatory, proprietary_index_option_fees=Decimal(0),
                order_id=self._next_id + 500_000, is_estimated_fee=False, option=option,
            )
        )

    def expiration(self, day: date, symbol: str, underlying: str, option: OptionSymbol, quantity: int) -> None:
        self.rows.append(
            Transaction(
                id=self._id(), account_number=self.account_number, transaction_type="Receive Deliver",
                transaction_sub_type="Expiration", description="Removal of option due to expiration",
                executed_at=datetime.combine(day, time(16, 0), tzinfo=NEW_YORK).astimezone(timezone.utc)
                + timedelta(hours=1),
                transaction_date=day, symbol=symbol, instrument_type=InstrumentType.EQUITY_OPTION,
                underlying_symbol=underlying, action="Buy to Close", quantity=Decimal(quantity), price=None,
                value=Decimal(0), net_value=Decimal(0), commission=Decimal(0), clearing_fees=Decimal(0),
                regulatory_fees=Decimal(0), proprietary_index_option_fees=Decimal(0), order_id=None,
                is_estimated_fee=False, option=option,
            )
        )


def demo_history(account_number: str, as_of: date, holdings: list[Holding]) -> list[Transaction]:
    """The demo account's history, newest first: the deposit, the trades that opened every holding, closed
    round trips, expirations, dividends and margin interest. Cash is the sum of the net values."""
    history = _History(account_number)
    start = as_of - timedelta(days=120)
    history.money(start, 0, "Deposit", "ACH DEPOSIT", Decimal("100000.00"))
    rng = random.Random(account_number)
    day = start + timedelta(days=2)
    while day < as_of - timedelta(days=1):
        if day.weekday() < 5:
            symbol = rng.choice(sorted(DEMO_UNDERLYINGS))
            under = DEMO_UNDERLYINGS[symbol]
            expiry = fridays_after(day, rng.randint(1, 5))[-1]
            if expiry < as_of:
                kind = rng.choice([OptionKind.PUT, OptionKind.CALL])
                steps = rng.randint(2, 6) * (-1 if kind is OptionKind.PUT else 1)
                option = OptionSymbol(symbol, expiry, kind, listed_strike(under, steps))
                occ_symbol = occ.format_occ(option.root, expiry, kind, option.strike)
                contracts = rng.randint(1, 3)
                premium = (under.price * under.volatility * Decimal(rng.uniform(0.004, 0.012))).quantize(CENT)
                history.trade(day, rng.randint(0, 300), occ_symbol, symbol, option, "Sell to Open", contracts, premium)
                if rng.random() < 0.6:
                    close_day = min(day + timedelta(days=rng.randint(1, 6)), expiry)
                    exit_price = max((premium * Decimal(rng.uniform(0.2, 1.4))).quantize(CENT), CENT)
                    history.trade(close_day, rng.randint(0, 300), occ_symbol, symbol, option, "Buy to Close", contracts, exit_price)
                else:
                    history.expiration(expiry, occ_symbol, symbol, option, contracts)
        day += timedelta(days=rng.randint(2, 5))
    for holding in holdings:
        action = ("Buy" if holding.quantity > 0 else "Sell") + " to Open"
        history.trade(holding.opened_on, 45, holding.symbol, holding.underlying, holding.option, action, abs(holding.quantity), holding.open_price)
    for months_ago, per_share in ((2, Decimal("1.7466")), (1, Decimal("0.25"))):
        paid = as_of - timedelta(days=30 * months_ago + 3)
        symbol, shares = ("SPY", 100) if per_share > 1 else ("AAPL", 50)
        history.money(paid, 400, "Dividend", f"{symbol} CASH DIVIDEND", (per_share * shares).quantize(CENT), symbol)
    history.money(as_of - timedelta(days=as_of.day), 420, "Balance Adjustment", "MARGIN INTEREST", Decimal("-7.82"))
    return sorted(history.rows, key=lambda t: (t.executed_at, t.id), reverse=True)
