"""The paper broker: a deterministic demo account served through the same BrokerSession port as Tastytrade.

Marks come from a ``MarkSource``. ``ReferenceMarks`` starts from reference prices and prices options with
Black-Scholes-Merton at the reference volatility; the market simulator (issue 6, marketdata) moves its
underlying prices through ``set_underlying_price`` so the demo's marks follow the simulated market.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from services.broker.domain import occ
from services.broker.domain.errors import AccountNotFound, FieldInvalid, SymbolNotFound
from services.broker.domain.expiry import NEW_YORK, close_on
from services.broker.domain.model import (
    Account,
    Balances,
    BreakerSnapshot,
    ChainExpiration,
    ChainStrike,
    Credential,
    Environment,
    ExerciseStyle,
    InstrumentType,
    MarketMetrics,
    OptionChain,
    OptionKind,
    Position,
    QuantityDirection,
    Transaction,
)
from services.broker.domain.paper import (
    CENT,
    DEMO_UNDERLYINGS,
    PAPER_PREFIX,
    DemoUnderlying,
    Holding,
    chain_expirations,
    demo_history,
    demo_holdings,
    listed_strike,
)
from services.broker.ports import MarkSource
from services.platform.clock import Clock

DEFAULT_RISK_FREE_RATE = Decimal("0.0425")


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def reference_option_price(
    *, spot: float, strike: float, years: float, volatility: float, rate: float, dividend_yield: float, call: bool
) -> float:
    """European Black-Scholes-Merton value, used only to give demo positions plausible marks."""
    if years <= 0:
        return max(spot - strike, 0.0) if call else max(strike - spot, 0.0)
    vol_sqrt_t = volatility * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate - dividend_yield + volatility * volatility / 2) * years) / vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    carry, discount = math.exp(-dividend_yield * years), math.exp(-rate * years)
    if call:
        return spot * carry * _norm_cdf(d1) - strike * discount * _norm_cdf(d2)
    return strike * discount * _norm_cdf(-d2) - spot * carry * _norm_cdf(-d1)


class ReferenceMarks:
    """MarkSource from reference prices; a price feed moves them with ``set_underlying_price``.

    Args:
        clock: Valuation time for option marks.
        underlyings: Reference figures per symbol.
        rate: Risk-free rate for option marks.
    """

    def __init__(
        self,
        clock: Clock,
        underlyings: dict[str, DemoUnderlying] | None = None,
        rate: Decimal = DEFAULT_RISK_FREE_RATE,
    ) -> None:
        self._clock = clock
        self._underlyings = dict(underlyings or DEMO_UNDERLYINGS)
        self._prices = {s: u.price for s, u in self._underlyings.items()}
        self._rate = float(rate)

    def set_underlying_price(self, symbol: str, price: Decimal) -> None:
        """Move an underlying (the market simulator calls this on each tick)."""
        if symbol not in self._underlyings:
            return
        if not price.is_finite() or price <= 0:
            raise ValueError(f"price of {symbol} must be positive and finite, got {price}")
        self._prices[symbol] = price

    def underlying_price(self, symbol: str) -> Decimal | None:
        """The current price of a followed underlying."""
        return self._prices.get(symbol)

    def option_mark(self, occ_symbol: str) -> Decimal | None:
        """A mid for an option on a followed underlying, to the cent (at least one cent before expiry)."""
        option = occ.try_parse_occ(occ_symbol)
        if option is None or option.root not in self._underlyings:
            return None
        under = self._underlyings[option.root]
        years = (close_on(option.expiration_date) - self._clock.now()).total_seconds() / (365 * 86400)
        value = reference_option_price(
            spot=float(self._prices[option.root]),
            strike=float(option.strike),
            years=max(years, 0.0),
            volatility=float(under.volatility),
            rate=self._rate,
            dividend_yield=float(under.dividend_yield),
            call=option.kind is OptionKind.CALL,
        )
        mark = Decimal(repr(value)).quantize(CENT, ROUND_HALF_UP)
        return max(mark, CENT) if years > 0 else mark


def _mark_of(holding: Holding, marks: MarkSource) -> Decimal | None:
    return marks.option_mark(holding.symbol) if holding.option else marks.underlying_price(holding.symbol)


class PaperSession:
    """BrokerSession over the demo book of one paper account.

    Args:
        account_number: The demo account (``PAPER...``).
        clock: Today's date (the book rolls with it) and timestamps.
        marks: Where marks come from.
        risk_free_rate: The rate the paper broker publishes.
    """

    def __init__(self, account_number: str, *, clock: Clock, marks: MarkSource, risk_free_rate: Decimal) -> None:
        if not account_number.startswith(PAPER_PREFIX):
            raise FieldInvalid("account_number", f"{account_number[:40]!r} is not a paper account")
        self._account_number = account_number
        self._clock = clock
        self._marks = marks
        self._rate = risk_free_rate
        self._book: tuple[date, list[Holding], list[Transaction]] | None = None

    def _today(self) -> date:
        return self._clock.now().astimezone(NEW_YORK).date()

    def _current_book(self) -> tuple[list[Holding], list[Transaction]]:
        today = self._today()
        if self._book is None or self._book[0] != today:
            holdings = demo_holdings(today)
            self._book = (today, holdings, demo_history(self._account_number, today, holdings))
        return self._book[1], self._book[2]

    def _check(self, account_number: str) -> None:
        if account_number != self._account_number:
            raise AccountNotFound(account_number)

    async def list_accounts(self) -> list[Account]:
        """The one demo account."""
        opened = datetime.combine(self._today() - timedelta(days=120), datetime.min.time(), tzinfo=timezone.utc)
        return [Account(self._account_number, "Paper demo", "Individual", "Margin", False, opened, "owner", False)]

    async def get_balances(self, account_number: str, currency: str = "USD") -> Balances:
        """Balances computed from the book at current marks (maintenance on a simplified Reg T schedule)."""
        self._check(account_number)
        if currency != "USD":
            raise FieldInvalid("currency", "the paper broker keeps USD only")
        holdings, history = self._current_book()
        cash = sum((t.net_value for t in history), Decimal(0))
        long_eq = short_eq = long_der = short_der = maintenance = Decimal(0)
        for holding in holdings:
            mark = _mark_of(holding, self._marks) or holding.open_price
            value = mark * abs(holding.quantity) * holding.multiplier
            if holding.option is None:
                if holding.quantity > 0:
                    long_eq += value
                    maintenance += value / 4
                else:
                    short_eq += value
                    maintenance += value * Decimal("0.3")
            elif holding.quantity > 0:
                long_der += value
            else:
                short_der += value
                spot = self._marks.underlying_price(holding.underlying) or holding.option.strike
                # Reg T naked option: premium + 20 % of the underlying - out-of-the-money amount, floor 10 %.
                otm = max(spot - holding.option.strike, Decimal(0)) if holding.option.kind is OptionKind.PUT else max(
                    holding.option.strike - spot, Decimal(0)
                )
                per_share = max(Decimal("0.2") * spot - otm, Decimal("0.1") * spot) + mark
                maintenance += per_share * abs(holding.quantity) * holding.multiplier
        net_liq = cash + long_eq + long_der - short_eq - short_der
        maintenance = maintenance.quantize(CENT)
        excess = max(net_liq - maintenance, Decimal(0)).quantize(CENT)
        return Balances(
            account_number=account_number,
            currency="USD",
            cash_balance=cash.quantize(Decimal("0.001")),
            net_liquidating_value=net_liq.quantize(Decimal("0.001")),
            equity_buying_power=(excess * 2).quantize(CENT),
            derivative_buying_power=excess,
            day_trading_buying_power=Decimal(0),
            maintenance_requirement=maintenance,
            maintenance_excess=excess,
            margin_equity=net_liq.quantize(Decimal("0.001")),
            long_equity_value=long_eq.quantize(CENT),
            short_equity_value=short_eq.quantize(CENT),
            long_derivative_value=long_der.quantize(CENT),
            short_derivative_value=short_der.quantize(CENT),
            cash_available_to_withdraw=min(excess, max(cash, Decimal(0))).quantize(CENT),
            pending_cash=Decimal(0),
            updated_at=self._clock.now(),
        )

    async def list_positions(self, account_number: str) -> list[Position]:
        """The demo positions with marks from the mark source."""
        self._check(account_number)
        holdings, _ = self._current_book()
        positions = []
        for holding in holdings:
            opened = datetime.combine(holding.opened_on, datetime.min.time(), tzinfo=NEW_YORK).astimezone(timezone.utc)
            direction = QuantityDirection.LONG if holding.quantity > 0 else QuantityDirection.SHORT
            positions.append(
                Position(
                    account_number=account_number,
                    symbol=holding.symbol,
                    instrument_type=InstrumentType.EQUITY_OPTION if holding.option else InstrumentType.EQUITY,
                    underlying_symbol=holding.underlying,
                    quantity=Decimal(holding.quantity),
                    broker_quantity=Decimal(abs(holding.quantity)),
                    direction=direction,
                    multiplier=Decimal(holding.multiplier),
                    average_open_price=holding.open_price,
                    close_price=_mark_of(holding, self._marks) or holding.open_price,
                    mark=_mark_of(holding, self._marks),
                    realized_day_gain=Decimal(0),
                    realized_today=Decimal(0),
                    expires_at=close_on(holding.option.expiration_date) if holding.option else None,
                    option=holding.option,
                    streamer_symbol=occ.streamer_symbol(holding.option) if holding.option else holding.symbol,
                    created_at=opened + timedelta(hours=14, minutes=45),
                    updated_at=opened + timedelta(hours=14, minutes=45),
                )
            )
        return positions

    async def list_transactions(
        self, account_number: str, *, start_date: date | None = None, end_date: date | None = None
    ) -> list[Transaction]:
        """The demo history, newest first, within the dates given."""
        self._check(account_number)
        _, history = self._current_book()
        return [
            t
            for t in history
            if (start_date is None or t.transaction_date >= start_date)
            and (end_date is None or t.transaction_date <= end_date)
        ]

    async def get_option_chain(self, underlying_symbol: str) -> list[OptionChain]:
        """A nested chain for the demo underlyings: 13 strikes around the reference price, 4 weeklies, 3 monthlies."""
        under = DEMO_UNDERLYINGS.get(underlying_symbol)
        if under is None:
            raise SymbolNotFound(f"the paper broker lists no options on {underlying_symbol[:32]}")
        today = self._today()
        expirations = []
        for expiry, expiration_type in chain_expirations(today):
            strikes = []
            for steps in range(-6, 7):
                strike = listed_strike(under, steps)
                call = occ.format_occ(under.symbol, expiry, OptionKind.CALL, strike)
                put = occ.format_occ(under.symbol, expiry, OptionKind.PUT, strike)
                strikes.append(
                    ChainStrike(
                        strike,
                        call,
                        occ.streamer_symbol(occ.parse_occ(call)),
                        put,
                        occ.streamer_symbol(occ.parse_occ(put)),
                    )
                )
            expirations.append(
                ChainExpiration(expiry, expiration_type, "PM", (expiry - today).days, close_on(expiry), tuple(strikes))
            )
        return [OptionChain(under.symbol, under.symbol, "Standard", 100, ExerciseStyle.AMERICAN, tuple(expirations))]

    async def get_market_metrics(self, symbols: Sequence[str]) -> list[MarketMetrics]:
        """Reference metrics for the demo underlyings, in request order; other symbols are omitted."""
        now = self._clock.now()
        return [
            MarketMetrics(
                symbol=u.symbol,
                dividend_yield=u.dividend_yield,
                beta=u.beta,
                implied_volatility_index=u.volatility,
                updated_at=now,
                beta_updated_at=now,
                implied_volatility_rank=Decimal("0.35"),
                implied_volatility_percentile=Decimal("0.42"),
                historical_volatility_30_day=(u.volatility * Decimal("0.9")).quantize(Decimal("0.0001")),
                liquidity_rating=4,
            )
            for s in dict.fromkeys(symbols)
            if (u := DEMO_UNDERLYINGS.get(s)) is not None
        ]

    async def get_risk_free_rate(self) -> Decimal:
        """The configured rate."""
        return self._rate

    async def aclose(self) -> None:
        """Nothing to release."""


class PaperConnector:
    """BrokerConnector for the paper environment; the credential's refresh token names the demo account.

    Args:
        clock: Clock for the books and marks.
        marks: The mark source shared by every demo account.
        risk_free_rate: The rate the paper broker publishes.
    """

    def __init__(self, *, clock: Clock, marks: MarkSource, risk_free_rate: Decimal = DEFAULT_RISK_FREE_RATE) -> None:
        self._clock = clock
        self._marks = marks
        self._rate = risk_free_rate

    @property
    def environment(self) -> Environment:
        """PAPER."""
        return Environment.PAPER

    def open_session(self, credential: Credential) -> PaperSession:
        """A session on the demo account named by the credential."""
        return PaperSession(credential.refresh_token, clock=self._clock, marks=self._marks, risk_free_rate=self._rate)

    def health(self) -> BreakerSnapshot:
        """Always closed: the paper broker is in-process."""
        return BreakerSnapshot(Environment.PAPER, "closed", 0, None, float("inf"), "in-process")

    async def aclose(self) -> None:
        """Nothing to close."""
