"""Tastytrade Open API wire formats: the data/items envelope, pagination, dasherized keys, string decimals.

Every parser takes JSON decoded with ``parse_float=Decimal`` and returns domain objects, or raises
``BrokerBadResponse`` naming the field that does not match the documented shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from services.broker.domain import occ
from services.broker.domain.errors import BrokerBadResponse
from services.broker.domain.expiry import close_on
from services.broker.domain.model import (
    Account,
    Balances,
    ChainExpiration,
    ChainStrike,
    ExerciseStyle,
    InstrumentType,
    MarketMetrics,
    OptionChain,
    Position,
    QuantityDirection,
    Transaction,
)
from services.broker.domain.money import apply_effect, signed_quantity, to_decimal

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    """The pagination block of a paginated list."""

    page_offset: int
    total_pages: int
    total_items: int | None


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An OAuth access token and its lifetime in seconds."""

    value: str
    expires_in: float

    def __repr__(self) -> str:
        return f"AccessToken(value=<redacted>, expires_in={self.expires_in})"


def _object(value: object, where: str) -> JsonObject:
    if not isinstance(value, dict):
        raise BrokerBadResponse(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _required(obj: JsonObject, key: str) -> Any:
    if key not in obj or obj[key] is None:
        raise BrokerBadResponse(f"missing field {key!r}")
    return obj[key]


def _str(obj: JsonObject, key: str) -> str:
    value = _required(obj, key)
    if not isinstance(value, str):
        raise BrokerBadResponse(f"{key}: expected a string, got {type(value).__name__}")
    return value


def _opt_str(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BrokerBadResponse(f"{key}: expected a string, got {type(value).__name__}")
    return value


def _bool(obj: JsonObject, key: str, default: bool | None = None) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise BrokerBadResponse(f"{key}: expected a boolean, got {value!r}")
    return value


def _int(obj: JsonObject, key: str) -> int:
    value = _required(obj, key)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BrokerBadResponse(f"{key}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError as exc:
        raise BrokerBadResponse(f"{key}: {value!r} is not an integer") from exc


def _dec(obj: JsonObject, key: str) -> Decimal:
    return to_decimal(_required(obj, key), field=key)


def _opt_dec(obj: JsonObject, key: str) -> Decimal | None:
    value = obj.get(key)
    return None if value is None else to_decimal(value, field=key)


def _signed(obj: JsonObject, key: str, *, required: bool = True) -> Decimal:
    """A money field with its ``-effect`` sign applied; absent optional fields count as zero."""
    if not required and obj.get(key) is None:
        return Decimal(0)
    return apply_effect(_dec(obj, key), _opt_str(obj, f"{key}-effect"), field=key)


def parse_datetime(value: object, key: str) -> datetime:
    """Parse an ISO-8601 timestamp with offset (``2023-06-08T16:30:18.889+00:00`` or ``...Z``)."""
    if not isinstance(value, str):
        raise BrokerBadResponse(f"{key}: expected an ISO-8601 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BrokerBadResponse(f"{key}: {value!r} is not an ISO-8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise BrokerBadResponse(f"{key}: {value!r} has no UTC offset")
    return parsed.astimezone(timezone.utc)


def _dt(obj: JsonObject, key: str) -> datetime:
    return parse_datetime(_required(obj, key), key)


def _opt_dt(obj: JsonObject, key: str) -> datetime | None:
    value = obj.get(key)
    return None if value is None else parse_datetime(value, key)


def _date(obj: JsonObject, key: str) -> date:
    value = _required(obj, key)
    if not isinstance(value, str):
        raise BrokerBadResponse(f"{key}: expected a YYYY-MM-DD date, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BrokerBadResponse(f"{key}: {value!r} is not a YYYY-MM-DD date") from exc


def _where(key: str, index: int, exc: BrokerBadResponse) -> BrokerBadResponse:
    return BrokerBadResponse(f"{key}[{index}]: {exc.message}")


def data_of(body: object) -> JsonObject:
    """The ``data`` object of a response envelope."""
    envelope = _object(body, "response")
    return _object(_required(envelope, "data"), "data")


def items_of(body: object) -> list[JsonObject]:
    """The ``data.items`` list of a list response (an empty list is ``{"data":{"items":[]}}``)."""
    items = _required(data_of(body), "items")
    if not isinstance(items, list):
        raise BrokerBadResponse(f"data.items: expected a list, got {type(items).__name__}")
    return [_object(item, f"data.items[{i}]") for i, item in enumerate(items)]


def page_of(body: object) -> Page | None:
    """The pagination block, or None for an unpaginated list."""
    block = _object(body, "response").get("pagination")
    if block is None:
        return None
    block = _object(block, "pagination")
    page = Page(_int(block, "page-offset"), _int(block, "total-pages"), block.get("total-items"))
    if page.page_offset < 0 or page.total_pages < 0:
        raise BrokerBadResponse(f"pagination: negative offsets {page}")
    return page


def error_of(body: object) -> tuple[str, str]:
    """The (code, message) of an error body, in tastytrade's envelope or the RFC 6749 OAuth shape."""
    if not isinstance(body, dict):
        return "", ""
    error = body.get("error")
    if isinstance(error, dict):
        code = str(error.get("code", ""))
        message = str(error.get("message", ""))
        details = error.get("errors")
        if isinstance(details, list):
            parts = [
                f"{d.get('code') or d.get('domain')}: {d.get('message') or d.get('reason')}"
                for d in details
                if isinstance(d, dict)
            ]
            if parts:
                message = f"{message} ({'; '.join(parts)})" if message else "; ".join(parts)
        return code, message
    if isinstance(error, str):
        return error, str(body.get("error_description", ""))
    return "", ""


def parse_token(body: object) -> AccessToken:
    """The ``/oauth/token`` answer: ``access_token`` and ``expires_in`` (900 s when absent, as the SDK assumes)."""
    obj = _object(body, "token response")
    value = _str(obj, "access_token")
    if not value:
        raise BrokerBadResponse("access_token is empty")
    token_type = obj.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise BrokerBadResponse(f"token_type {token_type!r} is not Bearer")
    expires_in = obj.get("expires_in", 900)
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, Decimal)) or expires_in <= 0:
        raise BrokerBadResponse(f"expires_in {expires_in!r} is not a positive number of seconds")
    return AccessToken(value, float(expires_in))


def parse_account_item(item: JsonObject) -> Account:
    """One item of ``/customers/me/accounts``: ``{"account": {...}, "authority-level": ...}``."""
    inner = _object(_required(item, "account"), "account")
    account = parse_account(inner)
    authority = item.get("authority-level", "owner")
    return Account(
        account.account_number,
        account.nickname,
        account.account_type_name,
        account.margin_or_cash,
        account.is_closed,
        account.opened_at,
        authority if isinstance(authority, str) else "owner",
        account.is_futures_approved,
    )


def parse_account(obj: JsonObject) -> Account:
    """An account object (``/customers/me/accounts/{n}`` or the inner ``account`` of a list item)."""
    return Account(
        account_number=_str(obj, "account-number"),
        nickname=_opt_str(obj, "nickname") or "",
        account_type_name=_opt_str(obj, "account-type-name") or "",
        margin_or_cash=_opt_str(obj, "margin-or-cash") or "",
        is_closed=_bool(obj, "is-closed", False),
        opened_at=_opt_dt(obj, "opened-at"),
        is_futures_approved=_bool(obj, "is-futures-approved", False),
    )


def parse_accounts(body: object) -> list[Account]:
    """The account list."""
    accounts = []
    for index, item in enumerate(items_of(body)):
        try:
            accounts.append(parse_account_item(item))
        except BrokerBadResponse as exc:
            raise _where("accounts", index, exc) from exc
    return accounts


def parse_balances(body: object, currency: str) -> Balances:
    """``/accounts/{n}/balances[/USD]``."""
    data = data_of(body)
    try:
        return Balances(
            account_number=_str(data, "account-number"),
            currency=_opt_str(data, "currency") or currency,
            cash_balance=_dec(data, "cash-balance"),
            net_liquidating_value=_dec(data, "net-liquidating-value"),
            equity_buying_power=_dec(data, "equity-buying-power"),
            derivative_buying_power=_dec(data, "derivative-buying-power"),
            day_trading_buying_power=_dec(data, "day-trading-buying-power"),
            maintenance_requirement=_dec(data, "maintenance-requirement"),
            maintenance_excess=_dec(data, "maintenance-excess"),
            margin_equity=_dec(data, "margin-equity"),
            long_equity_value=_dec(data, "long-equity-value"),
            short_equity_value=_dec(data, "short-equity-value"),
            long_derivative_value=_dec(data, "long-derivative-value"),
            short_derivative_value=_dec(data, "short-derivative-value"),
            cash_available_to_withdraw=_dec(data, "cash-available-to-withdraw"),
            pending_cash=_signed(data, "pending-cash"),
            updated_at=_opt_dt(data, "updated-at"),
        )
    except BrokerBadResponse as exc:
        raise BrokerBadResponse(f"balances: {exc.message}") from exc


def parse_position(item: JsonObject) -> Position:
    """One position: unsigned ``quantity`` made signed by ``quantity-direction``."""
    symbol = _str(item, "symbol")
    instrument_type = InstrumentType.from_broker(_str(item, "instrument-type"))
    try:
        direction = QuantityDirection(_str(item, "quantity-direction"))
    except ValueError as exc:
        raise BrokerBadResponse(f"quantity-direction {item['quantity-direction']!r} is not Long, Short or Zero") from exc
    broker_quantity = _dec(item, "quantity")
    if broker_quantity < 0:
        raise BrokerBadResponse(f"quantity {broker_quantity} is negative; the API sends it unsigned")
    option = occ.try_parse_occ(symbol) if instrument_type is InstrumentType.EQUITY_OPTION else None
    if instrument_type is InstrumentType.EQUITY_OPTION and option is None:
        raise BrokerBadResponse(f"symbol {symbol!r} is not an OCC option symbol")
    expires_at = _opt_dt(item, "expires-at")
    if expires_at is None and option is not None:
        expires_at = close_on(option.expiration_date)
    mark = _opt_dec(item, "mark-price")
    if mark is None:
        mark = _opt_dec(item, "mark")
    return Position(
        account_number=_str(item, "account-number"),
        symbol=symbol,
        instrument_type=instrument_type,
        underlying_symbol=_str(item, "underlying-symbol"),
        quantity=signed_quantity(broker_quantity, direction),
        broker_quantity=broker_quantity,
        direction=direction,
        multiplier=_dec(item, "multiplier"),
        average_open_price=_dec(item, "average-open-price"),
        close_price=_dec(item, "close-price"),
        mark=mark,
        realized_day_gain=_signed(item, "realized-day-gain", required=False),
        realized_today=_signed(item, "realized-today", required=False),
        expires_at=expires_at,
        option=option,
        streamer_symbol=_opt_str(item, "streamer-symbol") or (occ.streamer_symbol(option) if option else symbol),
        created_at=_opt_dt(item, "created-at"),
        updated_at=_opt_dt(item, "updated-at"),
    )


def parse_positions(body: object) -> list[Position]:
    """The position list."""
    positions = []
    for index, item in enumerate(items_of(body)):
        try:
            positions.append(parse_position(item))
        except BrokerBadResponse as exc:
            raise _where("positions", index, exc) from exc
    return positions


def parse_transaction(item: JsonObject) -> Transaction:
    """One transaction, every money field signed by its ``-effect``."""
    raw_type = _opt_str(item, "instrument-type")
    symbol = _opt_str(item, "symbol")
    order_id = item.get("order-id")
    return Transaction(
        id=_int(item, "id"),
        account_number=_str(item, "account-number"),
        transaction_type=_str(item, "transaction-type"),
        transaction_sub_type=_str(item, "transaction-sub-type"),
        description=_opt_str(item, "description") or "",
        executed_at=_dt(item, "executed-at"),
        transaction_date=_date(item, "transaction-date"),
        symbol=symbol,
        instrument_type=InstrumentType.from_broker(raw_type) if raw_type else None,
        underlying_symbol=_opt_str(item, "underlying-symbol"),
        action=_opt_str(item, "action"),
        quantity=_opt_dec(item, "quantity"),
        price=_opt_dec(item, "price"),
        value=_signed(item, "value"),
        net_value=_signed(item, "net-value"),
        commission=_signed(item, "commission", required=False),
        clearing_fees=_signed(item, "clearing-fees", required=False),
        regulatory_fees=_signed(item, "regulatory-fees", required=False),
        proprietary_index_option_fees=_signed(item, "proprietary-index-option-fees", required=False),
        order_id=int(order_id) if isinstance(order_id, int) and not isinstance(order_id, bool) else None,
        is_estimated_fee=_bool(item, "is-estimated-fee", False),
        option=occ.try_parse_occ(symbol) if symbol and raw_type == InstrumentType.EQUITY_OPTION.value else None,
    )


def parse_transactions(items: list[JsonObject]) -> list[Transaction]:
    """A list of transaction items (from all pages)."""
    transactions = []
    for index, item in enumerate(items):
        try:
            transactions.append(parse_transaction(item))
        except BrokerBadResponse as exc:
            raise _where("transactions", index, exc) from exc
    return transactions


def _parse_strike(obj: JsonObject) -> ChainStrike:
    return ChainStrike(
        strike_price=_dec(obj, "strike-price"),
        call_symbol=_str(obj, "call"),
        call_streamer_symbol=_str(obj, "call-streamer-symbol"),
        put_symbol=_str(obj, "put"),
        put_streamer_symbol=_str(obj, "put-streamer-symbol"),
    )


def _parse_expiration(obj: JsonObject) -> ChainExpiration:
    expiration_date = _date(obj, "expiration-date")
    strikes = _required(obj, "strikes")
    if not isinstance(strikes, list):
        raise BrokerBadResponse("strikes: expected a list")
    return ChainExpiration(
        expiration_date=expiration_date,
        expiration_type=_str(obj, "expiration-type"),
        settlement_type=_str(obj, "settlement-type"),
        days_to_expiration=_int(obj, "days-to-expiration"),
        expires_at=close_on(expiration_date),
        strikes=tuple(_parse_strike(_object(s, "strike")) for s in strikes),
    )


def _exercise_style(chain: JsonObject) -> ExerciseStyle:
    # The nested chain does not state the style; cash-settled index deliverables mean European (SPX, XSP),
    # everything else Tastytrade lists on equities and ETFs is American.
    deliverables = chain.get("deliverables") or []
    for deliverable in deliverables if isinstance(deliverables, list) else []:
        if isinstance(deliverable, dict) and (
            deliverable.get("instrument-type") == "Index" or deliverable.get("deliverable-type") == "Cash"
        ):
            return ExerciseStyle.EUROPEAN
    return ExerciseStyle.AMERICAN


def parse_nested_chains(body: object) -> list[OptionChain]:
    """``/option-chains/{symbol}/nested``: one chain per root, expirations, strikes."""
    chains = []
    for index, item in enumerate(items_of(body)):
        try:
            expirations = _required(item, "expirations")
            if not isinstance(expirations, list):
                raise BrokerBadResponse("expirations: expected a list")
            chains.append(
                OptionChain(
                    underlying_symbol=_str(item, "underlying-symbol"),
                    root_symbol=_str(item, "root-symbol"),
                    option_chain_type=_str(item, "option-chain-type"),
                    shares_per_contract=_int(item, "shares-per-contract"),
                    exercise_style=_exercise_style(item),
                    expirations=tuple(_parse_expiration(_object(e, "expiration")) for e in expirations),
                )
            )
        except BrokerBadResponse as exc:
            raise _where("option-chains", index, exc) from exc
    return chains


def _percent(obj: JsonObject, key: str) -> Decimal | None:
    # Units trap: historical and 30-day implied volatilities come as percent numbers (21.87), unlike the
    # IV index, ranks and percentiles, which are fractions.
    value = _opt_dec(obj, key)
    return None if value is None else value / 100


def _opt_int(obj: JsonObject, key: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key)


def parse_market_metrics(body: object) -> list[MarketMetrics]:
    """``/market-metrics?symbols=...``: dividend yield and beta as reported (fractions)."""
    metrics = []
    for index, item in enumerate(items_of(body)):
        try:
            metrics.append(
                MarketMetrics(
                    symbol=_str(item, "symbol"),
                    dividend_yield=_opt_dec(item, "dividend-yield"),
                    beta=_opt_dec(item, "beta"),
                    implied_volatility_index=_opt_dec(item, "implied-volatility-index"),
                    updated_at=_opt_dt(item, "updated-at"),
                    beta_updated_at=_opt_dt(item, "beta-updated-at"),
                    implied_volatility_rank=_opt_dec(item, "implied-volatility-index-rank"),
                    implied_volatility_percentile=_opt_dec(item, "implied-volatility-percentile"),
                    historical_volatility_30_day=_percent(item, "historical-volatility-30-day"),
                    liquidity_rating=_opt_int(item, "liquidity-rating"),
                )
            )
        except BrokerBadResponse as exc:
            raise _where("market-metrics", index, exc) from exc
    return metrics


def parse_risk_free_rate(body: object) -> Decimal:
    """``/margin-requirements-public-configuration``: ``{"data":{"risk-free-rate":"0.055"}}``."""
    rate = _dec(data_of(body), "risk-free-rate")
    if not Decimal("-0.5") < rate < Decimal("1"):
        raise BrokerBadResponse(f"risk-free-rate {rate} is not a plausible annual fraction")
    return rate
