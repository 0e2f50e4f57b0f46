"""Broker value objects: accounts, balances, positions, transactions, option chains, market metrics, links.

Money and prices are ``Decimal`` with their sign already applied (a debit is negative); quantities on
positions are signed (short is negative) with the broker's unsigned figure and direction kept beside them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


class Environment(enum.StrEnum):
    """Which broker a link talks to."""

    PRODUCTION = "production"
    SANDBOX = "sandbox"
    PAPER = "paper"


class InstrumentType(enum.StrEnum):
    """Instrument kinds, valued by Tastytrade's ``instrument-type`` strings."""

    EQUITY = "Equity"
    EQUITY_OPTION = "Equity Option"
    FUTURE = "Future"
    FUTURE_OPTION = "Future Option"
    CRYPTOCURRENCY = "Cryptocurrency"
    INDEX = "Index"
    OTHER = "Other"

    @classmethod
    def from_broker(cls, value: str) -> InstrumentType:
        """Map a Tastytrade ``instrument-type`` string; unknown kinds (bonds, warrants, ...) become OTHER."""
        try:
            return cls(value)
        except ValueError:
            return cls.OTHER


class QuantityDirection(enum.StrEnum):
    """Tastytrade's ``quantity-direction``: quantities arrive unsigned and this says which side."""

    LONG = "Long"
    SHORT = "Short"
    ZERO = "Zero"


class OptionKind(enum.StrEnum):
    """Call or put, valued by the OCC letter."""

    CALL = "C"
    PUT = "P"


class ExerciseStyle(enum.StrEnum):
    """When an option may be exercised: equity and ETF options are American, cash-settled index options European."""

    AMERICAN = "American"
    EUROPEAN = "European"


class LinkStatus(enum.StrEnum):
    """Whether a stored credential still works."""

    ACTIVE = "active"
    NEEDS_RELINK = "needs_relink"


@dataclass(frozen=True, slots=True)
class OptionSymbol:
    """The terms encoded in an OCC option symbol such as ``SPY   240419C00500000``."""

    root: str
    expiration_date: date
    kind: OptionKind
    strike: Decimal


@dataclass(frozen=True, slots=True)
class Account:
    """A brokerage account the caller can see."""

    account_number: str
    nickname: str
    account_type_name: str
    margin_or_cash: str
    is_closed: bool
    opened_at: datetime | None
    authority_level: str = "owner"
    is_futures_approved: bool = False


@dataclass(frozen=True, slots=True)
class Balances:
    """An account's balances in one currency, signs applied."""

    account_number: str
    currency: str
    cash_balance: Decimal
    net_liquidating_value: Decimal
    equity_buying_power: Decimal
    derivative_buying_power: Decimal
    day_trading_buying_power: Decimal
    maintenance_requirement: Decimal
    maintenance_excess: Decimal
    margin_equity: Decimal
    long_equity_value: Decimal
    short_equity_value: Decimal
    long_derivative_value: Decimal
    short_derivative_value: Decimal
    cash_available_to_withdraw: Decimal
    pending_cash: Decimal
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Position:
    """An open position.

    Attributes:
        quantity: Signed quantity: positive long, negative short.
        broker_quantity: The unsigned figure the broker sent, kept with ``direction`` for traceability.
        average_open_price: Per-unit open price (per share, or per option unit, not per contract).
        mark: Per-unit current mark when known (``include-marks`` or the paper price source), else None.
        option: The option terms parsed from the OCC symbol, for equity options only.
        expires_at: The contract's expiry instant when the broker states it.
    """

    account_number: str
    symbol: str
    instrument_type: InstrumentType
    underlying_symbol: str
    quantity: Decimal
    broker_quantity: Decimal
    direction: QuantityDirection
    multiplier: Decimal
    average_open_price: Decimal
    close_price: Decimal
    mark: Decimal | None
    realized_day_gain: Decimal
    realized_today: Decimal
    expires_at: datetime | None
    option: OptionSymbol | None
    streamer_symbol: str
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Transaction:
    """A transaction in the account history, every money field signed (debits negative)."""

    id: int
    account_number: str
    transaction_type: str
    transaction_sub_type: str
    description: str
    executed_at: datetime
    transaction_date: date
    symbol: str | None
    instrument_type: InstrumentType | None
    underlying_symbol: str | None
    action: str | None
    quantity: Decimal | None
    price: Decimal | None
    value: Decimal
    net_value: Decimal
    commission: Decimal
    clearing_fees: Decimal
    regulatory_fees: Decimal
    proprietary_index_option_fees: Decimal
    order_id: int | None
    is_estimated_fee: bool = False
    option: OptionSymbol | None = None


@dataclass(frozen=True, slots=True)
class ChainStrike:
    """One strike of an expiration: the call and put OCC symbols and their streamer symbols."""

    strike_price: Decimal
    call_symbol: str
    call_streamer_symbol: str
    put_symbol: str
    put_streamer_symbol: str


@dataclass(frozen=True, slots=True)
class ChainExpiration:
    """One expiration of a nested chain.

    Attributes:
        expires_at: When the contracts stop trading: 16:00 New York time on the expiration date for
            equity options (the convention used for time to expiry).
    """

    expiration_date: date
    expiration_type: str
    settlement_type: str
    days_to_expiration: int
    expires_at: datetime
    strikes: tuple[ChainStrike, ...]


@dataclass(frozen=True, slots=True)
class OptionChain:
    """A nested option chain for one root (SPX and SPXW come back as two chains)."""

    underlying_symbol: str
    root_symbol: str
    option_chain_type: str
    shares_per_contract: int
    exercise_style: ExerciseStyle
    expirations: tuple[ChainExpiration, ...]


@dataclass(frozen=True, slots=True)
class MarketMetrics:
    """The subset of Tastytrade's market metrics the models use.

    Every volatility, yield, rank and percentile is a fraction (0.2 = 20 %); the broker's percent-valued
    fields (``historical-volatility-30-day``) are divided by 100 when parsed.

    Attributes:
        dividend_yield: Annual dividend yield, None when not reported.
        beta: Beta against SPY, None when not reported.
        implied_volatility_index: 30-day at-the-money IV, None when not reported.
        implied_volatility_rank: IV rank over the last year, None when not reported.
        implied_volatility_percentile: IV percentile over the last year, None when not reported.
        historical_volatility_30_day: 30-day historical volatility, None when not reported.
        liquidity_rating: The broker's 0..5 rating, None when not reported.
    """

    symbol: str
    dividend_yield: Decimal | None
    beta: Decimal | None
    implied_volatility_index: Decimal | None
    updated_at: datetime | None
    beta_updated_at: datetime | None = None
    implied_volatility_rank: Decimal | None = None
    implied_volatility_percentile: Decimal | None = None
    historical_volatility_30_day: Decimal | None = None
    liquidity_rating: int | None = None


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """Inputs a pricing model needs for one contract, all taken from the broker.

    Attributes:
        risk_free_rate: Annual rate as a fraction, from ``/margin-requirements-public-configuration``.
        dividend_yield: Annual continuous yield as a fraction, from market metrics (0 when none is paid).
        beta: Beta of the underlying, from market metrics; None when the broker reports none.
        time_to_expiry: Years to expiry, ACT/365 from now to the contract's ``expires-at``.
    """

    underlying_symbol: str
    risk_free_rate: float
    dividend_yield: float
    beta: float | None
    time_to_expiry: float
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """An AES-256-GCM envelope (format, key version, nonce, ciphertext and tag) and its key version."""

    key_version: int
    envelope: bytes

    def __repr__(self) -> str:
        return f"SealedSecret(key_version={self.key_version}, envelope=<{len(self.envelope)} bytes>)"


@dataclass(frozen=True, slots=True)
class Credential:
    """What a link needs to reach the broker: the OAuth refresh token and, optionally, the grant's own client
    secret (None means the platform's OAuth application)."""

    refresh_token: str
    client_secret: str | None = None

    def __repr__(self) -> str:
        return "Credential(refresh_token=<redacted>, client_secret=<redacted>)"


@dataclass(frozen=True, slots=True)
class BrokerLink:
    """A user's stored broker credential (sealed) and the accounts it was last seen to reach.

    Attributes:
        request_id: The client's idempotency key for LinkAccount, when it sent one.
    """

    link_id: str
    user_id: str
    environment: Environment
    secret: SealedSecret
    status: LinkStatus
    created_at: datetime
    updated_at: datetime
    account_numbers: tuple[str, ...] = ()
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class LinkedAccount:
    """An account reachable through a link, as last listed by the broker."""

    user_id: str
    link_id: str
    environment: Environment
    account: Account
    linked_at: datetime


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What health reports about one broker host."""

    environment: Environment
    state: str
    consecutive_failures: int
    opened_for_seconds: float | None
    budget_tokens: float
    detail: str = field(default="")
