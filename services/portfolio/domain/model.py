"""The portfolio's domain model: transactions, positions, market inputs and the money rules."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

__all__ = [
    "NEW_YORK",
    "Action",
    "InstrumentKind",
    "HeldPosition",
    "MarketInputs",
    "OptionTerms",
    "Transaction",
    "TransactionType",
    "day_end",
    "ny_date",
    "quantize_money",
]

NEW_YORK = ZoneInfo("America/New_York")
ZERO = Decimal(0)
_CENT_FINE = Decimal("0.0001")


class InstrumentKind(enum.IntEnum):
    """The kind of instrument (values mirror tastyplat.type.v1.InstrumentType)."""

    EQUITY = 1
    EQUITY_OPTION = 2
    FUTURE = 3
    FUTURE_OPTION = 4
    CRYPTOCURRENCY = 5
    INDEX = 6
    OTHER = 7


class TransactionType(enum.IntEnum):
    """The broad class of a transaction (values mirror tastyplat.broker.v1.TransactionType)."""

    TRADE = 1
    RECEIVE_DELIVER = 2
    MONEY_MOVEMENT = 3
    OTHER = 4


class Action(enum.IntEnum):
    """What a trade did (values mirror tastyplat.broker.v1.TradeAction)."""

    BUY_TO_OPEN = 1
    SELL_TO_OPEN = 2
    BUY_TO_CLOSE = 3
    SELL_TO_CLOSE = 4
    BUY = 5
    SELL = 6

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells."""
        return 1 if self in (Action.BUY_TO_OPEN, Action.BUY_TO_CLOSE, Action.BUY) else -1

    @property
    def closing(self) -> bool | None:
        """True for *_TO_CLOSE, False for *_TO_OPEN, None when the action does not say."""
        if self in (Action.BUY_TO_CLOSE, Action.SELL_TO_CLOSE):
            return True
        if self in (Action.BUY_TO_OPEN, Action.SELL_TO_OPEN):
            return False
        return None


@dataclass(frozen=True, slots=True)
class OptionTerms:
    """The terms of a listed option that pricing needs.

    Attributes:
        symbol: OCC symbol.
        underlying_symbol: The underlying.
        is_call: Call or put.
        strike: Strike per share.
        expiration_time: When it expires (aware).
        american: American exercise (else European).
        multiplier: Shares per contract.
        streamer_symbol: The dxFeed symbol.
    """

    symbol: str
    underlying_symbol: str
    is_call: bool
    strike: float
    expiration_time: datetime
    american: bool = True
    multiplier: float = 100.0
    streamer_symbol: str = ""


@dataclass(frozen=True, slots=True)
class Transaction:
    """One history entry, with the broker's signs (credit positive, debit negative).

    Attributes:
        transaction_id: The broker's id.
        executed_at: Execution time (aware).
        transaction_type: Trade, receive/deliver, money movement or other.
        sub_type: The broker's sub-type ("Sell to Open", "Assignment", "Expiration", "Dividend", ...).
        action: What the trade did, or None (money movements; some deliveries).
        symbol: The instrument ("" for pure money movements).
        underlying_symbol: Its underlying.
        instrument: Its kind, or None.
        quantity: Unsigned quantity (0 for money movements).
        price: Fill price per share, when there is one.
        value: Gross value, signed.
        commission: Commission, signed (negative when paid).
        fees: Clearing + regulatory + other fees, signed.
        net_value: Net value, signed.
        order_id: The order that produced it ("" when none).
        description: The broker's description.
        option: The option's terms, for option transactions.
    """

    transaction_id: str
    executed_at: datetime
    transaction_type: TransactionType
    sub_type: str = ""
    action: Action | None = None
    symbol: str = ""
    underlying_symbol: str = ""
    instrument: InstrumentKind | None = None
    quantity: Decimal = ZERO
    price: Decimal | None = None
    value: Decimal = ZERO
    commission: Decimal = ZERO
    fees: Decimal = ZERO
    net_value: Decimal = ZERO
    order_id: str = ""
    description: str = ""
    option: OptionTerms | None = None

    @property
    def multiplier(self) -> Decimal:
        """Shares per unit of quantity: the option's multiplier, else 1."""
        if self.option is not None:
            return Decimal(str(self.option.multiplier)).normalize()
        if self.instrument in (InstrumentKind.EQUITY_OPTION, InstrumentKind.FUTURE_OPTION):
            return Decimal(100)
        return Decimal(1)

    @property
    def is_option(self) -> bool:
        """Whether the instrument is an option."""
        return self.option is not None or self.instrument in (InstrumentKind.EQUITY_OPTION, InstrumentKind.FUTURE_OPTION)


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """An open position as the broker reports it, with its marks.

    Attributes:
        symbol: The instrument.
        underlying_symbol: Its underlying.
        instrument: Its kind.
        quantity: Signed quantity (short negative).
        multiplier: Shares per unit of quantity.
        mark_price: Current mark per share, or None when the broker has none.
        close_price: Previous close per share, or None.
        average_open_price: The broker's average open price per share.
        open_time: When the broker says it was opened, or None.
        option: The option's terms, for options.
        streamer_symbol: The dxFeed symbol.
    """

    symbol: str
    underlying_symbol: str
    instrument: InstrumentKind
    quantity: Decimal
    multiplier: Decimal
    mark_price: Decimal | None
    close_price: Decimal | None = None
    average_open_price: Decimal | None = None
    open_time: datetime | None = None
    option: OptionTerms | None = None
    streamer_symbol: str = ""


@dataclass(frozen=True, slots=True)
class MarketInputs:
    """What pricing needs beyond the positions.

    Attributes:
        prices: Price per share of underlyings (and the benchmark).
        betas: Broker betas to SPY by symbol (missing ones are absent).
        dividend_yields: Annual dividend yields by symbol.
        rate: Risk-free rate.
        implied_volatilities: Option implied vols by option symbol, where known (dxFeed or solved from marks).
        broker_greeks: dxFeed per-share Greeks by option symbol: (delta, gamma, theta, vega, rho, volatility).
        volatility_indices: The broker's 30-day IV index by underlying (fallback vol).
        estimated_betas: Betas estimated from price history, by symbol.
    """

    prices: dict[str, float]
    betas: dict[str, float] = field(default_factory=dict)
    dividend_yields: dict[str, float] = field(default_factory=dict)
    rate: float = 0.0
    implied_volatilities: dict[str, float] = field(default_factory=dict)
    broker_greeks: dict[str, tuple[float, float, float, float, float, float]] = field(default_factory=dict)
    volatility_indices: dict[str, float] = field(default_factory=dict)
    estimated_betas: dict[str, float] = field(default_factory=dict)


def quantize_money(amount: Decimal, quantum: Decimal = _CENT_FINE) -> Decimal:
    """Round a derived amount (an allocation) half-even; broker amounts are never rounded."""
    return amount.quantize(quantum, rounding=ROUND_HALF_EVEN)


def ny_date(when: datetime) -> object:
    """The New York calendar date of an instant (the trading day P&L is booked on)."""
    return when.astimezone(NEW_YORK).date()


def day_end(day: object) -> datetime:
    """16:00 New York time on ``day`` (a ``datetime.date``), as an aware datetime."""
    from datetime import date as _date

    assert isinstance(day, _date)
    return datetime.combine(day, time(16, 0), tzinfo=NEW_YORK)


def years_between(start: datetime, end: datetime) -> float:
    """ACT/365 years from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    return (end - start) / timedelta(days=365)
