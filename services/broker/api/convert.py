"""Translation at the edge: broker domain objects to and from ``tastyplat.broker.v1`` messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from google.protobuf import timestamp_pb2

from services.broker.domain import occ
from services.broker.domain.errors import FieldInvalid, FieldRequired
from services.broker.domain.expiry import close_on
from services.broker.domain.model import (
    Account,
    Balances,
    BrokerLink,
    Environment,
    ExerciseStyle,
    InstrumentType,
    LinkedAccount,
    LinkStatus,
    MarketMetrics,
    OptionChain,
    OptionKind,
    OptionSymbol,
    Position,
    QuantityDirection,
    Transaction,
)
from tastyplat.broker.v1 import broker_service_pb2 as pb
from tastyplat.type.v1 import money_pb2, option_pb2

NANO = Decimal("0.000000001")
_BILLION = 1_000_000_000
# Cash-settled index roots: European exercise (everything else Tastytrade lists on equities is American).
EUROPEAN_ROOTS = frozenset({"SPX", "SPXW", "XSP", "NDX", "NDXP", "RUT", "RUTW", "VIX", "VIXW", "DJX", "XEO"})

_INSTRUMENT = {
    InstrumentType.EQUITY: option_pb2.INSTRUMENT_TYPE_EQUITY,
    InstrumentType.EQUITY_OPTION: option_pb2.INSTRUMENT_TYPE_EQUITY_OPTION,
    InstrumentType.FUTURE: option_pb2.INSTRUMENT_TYPE_FUTURE,
    InstrumentType.FUTURE_OPTION: option_pb2.INSTRUMENT_TYPE_FUTURE_OPTION,
    InstrumentType.CRYPTOCURRENCY: option_pb2.INSTRUMENT_TYPE_CRYPTOCURRENCY,
    InstrumentType.INDEX: option_pb2.INSTRUMENT_TYPE_INDEX,
    InstrumentType.OTHER: option_pb2.INSTRUMENT_TYPE_OTHER,
}
_DIRECTION = {
    QuantityDirection.LONG: pb.QUANTITY_DIRECTION_LONG,
    QuantityDirection.SHORT: pb.QUANTITY_DIRECTION_SHORT,
    QuantityDirection.ZERO: pb.QUANTITY_DIRECTION_ZERO,
}
_AUTHORITY = {
    "owner": pb.AUTHORITY_LEVEL_OWNER,
    "trade-only": pb.AUTHORITY_LEVEL_TRADE_ONLY,
    "read-only": pb.AUTHORITY_LEVEL_READ_ONLY,
}
_MARGIN = {"Cash": pb.MARGIN_TYPE_CASH, "Margin": pb.MARGIN_TYPE_MARGIN}
_TRANSACTION_TYPE = {
    "Trade": pb.TRANSACTION_TYPE_TRADE,
    "Receive Deliver": pb.TRANSACTION_TYPE_RECEIVE_DELIVER,
    "Money Movement": pb.TRANSACTION_TYPE_MONEY_MOVEMENT,
}
TRANSACTION_TYPE_FILTER: dict[int, str] = {
    pb.TRANSACTION_TYPE_TRADE: "Trade",
    pb.TRANSACTION_TYPE_RECEIVE_DELIVER: "Receive Deliver",
    pb.TRANSACTION_TYPE_MONEY_MOVEMENT: "Money Movement",
    pb.TRANSACTION_TYPE_OTHER: "Other",
}
_ACTION = {
    "Buy to Open": pb.TRADE_ACTION_BUY_TO_OPEN,
    "Sell to Open": pb.TRADE_ACTION_SELL_TO_OPEN,
    "Buy to Close": pb.TRADE_ACTION_BUY_TO_CLOSE,
    "Sell to Close": pb.TRADE_ACTION_SELL_TO_CLOSE,
    "Buy": pb.TRADE_ACTION_BUY,
    "Sell": pb.TRADE_ACTION_SELL,
}
_SETTLEMENT = {"AM": pb.SETTLEMENT_TYPE_AM, "PM": pb.SETTLEMENT_TYPE_PM}


def _units_nanos(value: Decimal) -> tuple[int, int]:
    # google.type.Money semantics: units truncated toward zero, nanos with the same sign.
    exact = value.quantize(NANO, rounding=ROUND_HALF_EVEN)
    units = int(exact)
    nanos = int((exact - units) * _BILLION)
    return units, nanos


def money(value: Decimal, currency: str = "USD") -> money_pb2.Money:
    """A Decimal amount as ``tastyplat.type.v1.Money`` (rounded half-even to the nano)."""
    units, nanos = _units_nanos(value)
    return money_pb2.Money(currency_code=currency, units=units, nanos=nanos)


def decimal(value: Decimal) -> money_pb2.Decimal:
    """A Decimal as ``tastyplat.type.v1.Decimal``."""
    units, nanos = _units_nanos(value)
    return money_pb2.Decimal(units=units, nanos=nanos)


def from_money(message: money_pb2.Money | money_pb2.Decimal) -> Decimal:
    """The exact Decimal of a Money or Decimal message."""
    return Decimal(message.units) + Decimal(message.nanos) * NANO


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A timezone-aware datetime as a Timestamp."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _set_time(message: object, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(timestamp(value))


def environment_from(broker: int, environment: int) -> Environment:
    """The domain environment of a LinkAccount request.

    Raises:
        FieldRequired: ``broker`` is UNSPECIFIED.
        FieldInvalid: an unknown enum value.
    """
    if broker == pb.BROKER_UNSPECIFIED:
        raise FieldRequired("broker")
    if broker == pb.BROKER_PAPER:
        return Environment.PAPER
    if broker != pb.BROKER_TASTYTRADE:
        raise FieldInvalid("broker", f"unknown broker {broker}")
    if environment in (pb.BROKER_ENVIRONMENT_UNSPECIFIED, pb.BROKER_ENVIRONMENT_PRODUCTION):
        return Environment.PRODUCTION
    if environment == pb.BROKER_ENVIRONMENT_SANDBOX:
        return Environment.SANDBOX
    raise FieldInvalid("environment", f"unknown environment {environment}")


def _broker_of(environment: Environment) -> pb.Broker:
    return pb.BROKER_PAPER if environment is Environment.PAPER else pb.BROKER_TASTYTRADE


def _environment_of(environment: Environment) -> pb.BrokerEnvironment:
    return {
        Environment.PRODUCTION: pb.BROKER_ENVIRONMENT_PRODUCTION,
        Environment.SANDBOX: pb.BROKER_ENVIRONMENT_SANDBOX,
        Environment.PAPER: pb.BROKER_ENVIRONMENT_UNSPECIFIED,
    }[environment]


def broker_link(link: BrokerLink) -> pb.BrokerLink:
    """A link as the API shows it (never its credential)."""
    message = pb.BrokerLink(
        broker_link_id=link.link_id,
        broker=_broker_of(link.environment),
        environment=_environment_of(link.environment),
        state=pb.BROKER_LINK_STATE_ACTIVE
        if link.status is LinkStatus.ACTIVE
        else pb.BROKER_LINK_STATE_REAUTHORIZATION_REQUIRED,
        account_numbers=list(link.account_numbers),
    )
    _set_time(message, "create_time", link.created_at)
    return message


def account(linked: LinkedAccount) -> pb.Account:
    """A linked account."""
    data: Account = linked.account
    message = pb.Account(
        account_number=data.account_number,
        broker_link_id=linked.link_id,
        broker=_broker_of(linked.environment),
        nickname=data.nickname,
        account_type_name=data.account_type_name,
        margin_type=_MARGIN.get(data.margin_or_cash, pb.MARGIN_TYPE_UNSPECIFIED),
        authority_level=_AUTHORITY.get(data.authority_level, pb.AUTHORITY_LEVEL_UNSPECIFIED),
        closed=data.is_closed,
    )
    _set_time(message, "open_time", data.opened_at)
    return message


def balances(value: Balances) -> pb.Balances:
    """Balances, signed amounts as signed Money."""
    c = value.currency
    message = pb.Balances(
        account_number=value.account_number,
        cash_balance=money(value.cash_balance, c),
        net_liquidating_value=money(value.net_liquidating_value, c),
        equity_buying_power=money(value.equity_buying_power, c),
        derivative_buying_power=money(value.derivative_buying_power, c),
        day_trading_buying_power=money(value.day_trading_buying_power, c),
        maintenance_requirement=money(value.maintenance_requirement, c),
        maintenance_excess=money(value.maintenance_excess, c),
        long_equity_value=money(value.long_equity_value, c),
        short_equity_value=money(value.short_equity_value, c),
        long_derivative_value=money(value.long_derivative_value, c),
        short_derivative_value=money(value.short_derivative_value, c),
        cash_available_to_withdraw=money(value.cash_available_to_withdraw, c),
        pending_cash=money(value.pending_cash, c),
        margin_equity=money(value.margin_equity, c),
    )
    _set_time(message, "update_time", value.updated_at)
    return message


def option_contract(
    option: OptionSymbol, *, symbol: str, underlying: str, multiplier: Decimal, streamer_symbol: str, expires_at: datetime | None
) -> option_pb2.OptionContract:
    """An option's terms for the pricing models."""
    style = option_pb2.EXERCISE_STYLE_EUROPEAN if option.root in EUROPEAN_ROOTS else option_pb2.EXERCISE_STYLE_AMERICAN
    message = option_pb2.OptionContract(
        symbol=symbol,
        underlying_symbol=underlying,
        kind=option_pb2.OPTION_KIND_CALL if option.kind is OptionKind.CALL else option_pb2.OPTION_KIND_PUT,
        strike_price=float(option.strike),
        style=style,
        multiplier=float(multiplier),
        streamer_symbol=streamer_symbol,
    )
    _set_time(message, "expiration_time", expires_at or close_on(option.expiration_date))
    return message


def position(value: Position) -> pb.Position:
    """A position: the unsigned quantity and its direction, as the contract documents."""
    message = pb.Position(
        account_number=value.account_number,
        symbol=value.symbol,
        instrument_type=_INSTRUMENT[value.instrument_type],
        underlying_symbol=value.underlying_symbol,
        quantity=decimal(value.broker_quantity),
        quantity_direction=_DIRECTION[value.direction],
        multiplier=float(value.multiplier),
        average_open_price=money(value.average_open_price),
        close_price=money(value.close_price),
        realized_day_gain=money(value.realized_day_gain),
        streamer_symbol=value.streamer_symbol,
    )
    if value.mark is not None:
        message.mark_price.CopyFrom(money(value.mark))
    if value.option is not None:
        message.option.CopyFrom(
            option_contract(
                value.option,
                symbol=value.symbol,
                underlying=value.underlying_symbol,
                multiplier=value.multiplier,
                streamer_symbol=value.streamer_symbol,
                expires_at=value.expires_at,
            )
        )
    _set_time(message, "open_time", value.created_at)
    _set_time(message, "update_time", value.updated_at)
    return message


def transaction(value: Transaction) -> pb.Transaction:
    """A transaction, money fields signed."""
    message = pb.Transaction(
        transaction_id=str(value.id),
        account_number=value.account_number,
        symbol=value.symbol or "",
        instrument_type=_INSTRUMENT[value.instrument_type] if value.instrument_type else option_pb2.INSTRUMENT_TYPE_UNSPECIFIED,
        underlying_symbol=value.underlying_symbol or "",
        transaction_type=_TRANSACTION_TYPE.get(value.transaction_type, pb.TRANSACTION_TYPE_OTHER),
        transaction_sub_type=value.transaction_sub_type,
        action=_ACTION.get(value.action or "", pb.TRADE_ACTION_UNSPECIFIED),
        description=value.description,
        quantity=decimal(value.quantity if value.quantity is not None else Decimal(0)),
        value=money(value.value),
        commission=money(value.commission),
        clearing_fees=money(value.clearing_fees),
        regulatory_fees=money(value.regulatory_fees),
        proprietary_index_option_fees=money(value.proprietary_index_option_fees),
        net_value=money(value.net_value),
        estimated_fee=value.is_estimated_fee,
        order_id=str(value.order_id) if value.order_id is not None else "",
    )
    if value.price is not None:
        message.price.CopyFrom(money(value.price))
    _set_time(message, "execute_time", value.executed_at)
    if value.option is not None and value.symbol:
        message.option.CopyFrom(
            option_contract(
                value.option,
                symbol=value.symbol,
                underlying=value.underlying_symbol or value.option.root,
                multiplier=Decimal(100),
                streamer_symbol=occ.streamer_symbol(value.option),
                expires_at=None,
            )
        )
    return message


def option_chain(chain: OptionChain) -> pb.OptionChain:
    """A nested chain, expirations and strikes ascending."""
    style = (
        option_pb2.EXERCISE_STYLE_EUROPEAN
        if chain.exercise_style is ExerciseStyle.EUROPEAN
        else option_pb2.EXERCISE_STYLE_AMERICAN
    )
    message = pb.OptionChain(
        underlying_symbol=chain.underlying_symbol,
        root_symbol=chain.root_symbol,
        option_chain_type=chain.option_chain_type,
        multiplier=float(chain.shares_per_contract),
        style=style,
    )
    for expiration in sorted(chain.expirations, key=lambda e: e.expiration_date):
        item = message.expirations.add(
            expiration_type=expiration.expiration_type,
            settlement_type=_SETTLEMENT.get(expiration.settlement_type, pb.SETTLEMENT_TYPE_UNSPECIFIED),
            days_to_expiration=expiration.days_to_expiration,
        )
        item.expiration_time.CopyFrom(timestamp(expiration.expires_at))
        for strike in sorted(expiration.strikes, key=lambda s: s.strike_price):
            item.strikes.add(
                strike_price=float(strike.strike_price),
                call_symbol=strike.call_symbol,
                call_streamer_symbol=strike.call_streamer_symbol,
                put_symbol=strike.put_symbol,
                put_streamer_symbol=strike.put_streamer_symbol,
            )
    return message


def market_metrics(value: MarketMetrics) -> pb.MarketMetrics:
    """Metrics as fractions; absent figures are 0 except beta, which is left unset."""

    def f(number: Decimal | None) -> float:
        return float(number) if number is not None else 0.0

    message = pb.MarketMetrics(
        symbol=value.symbol,
        dividend_yield=f(value.dividend_yield),
        implied_volatility_index=f(value.implied_volatility_index),
        implied_volatility_rank=f(value.implied_volatility_rank),
        implied_volatility_percentile=f(value.implied_volatility_percentile),
        historical_volatility_30_day=f(value.historical_volatility_30_day),
        liquidity_rating=value.liquidity_rating or 0,
    )
    if value.beta is not None:
        message.beta = float(value.beta)
    _set_time(message, "beta_update_time", value.beta_updated_at)
    _set_time(message, "update_time", value.updated_at)
    return message


def transaction_types(values: Sequence[int]) -> tuple[str, ...]:
    """The domain type filters of a ListTransactions request.

    Raises:
        FieldInvalid: a filter is UNSPECIFIED or unknown.
    """
    out = []
    for index, value in enumerate(values):
        name = TRANSACTION_TYPE_FILTER.get(value)
        if name is None:
            raise FieldInvalid(f"transaction_types[{index}]", "transaction type filters must be set")
        out.append(name)
    return tuple(dict.fromkeys(out))
