"""DXLink message builders and the COMPACT/FULL FEED_DATA decoder, as Tastytrade's dxFeed endpoint speaks them.

Field lists are the ones the `tastytrade` SDK 13.2.3 requests, in its order; values arrive in the order a
channel's FEED_SETUP asked for (or the order of the server's FEED_CONFIG when it sends one), so decoding
goes by name through that list, never by a fixed position. Doubles may be the strings "NaN", "Infinity",
"-Infinity"; `index` is a 64-bit integer above 2**53.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from services.marketdata.domain.events import (
    FeedEvent,
    GreeksEvent,
    ProfileEvent,
    QuoteEvent,
    SummaryEvent,
    TradeEvent,
)

__all__ = [
    "CHANNELS",
    "DXLINK_VERSION",
    "EVENT_FIELDS",
    "ProtocolError",
    "auth",
    "channel_request",
    "decode_feed_data",
    "feed_setup",
    "feed_subscription",
    "keepalive",
    "setup",
]

DXLINK_VERSION = "0.1-DXF-JS/0.3.0"

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "Quote": (
        "eventSymbol", "eventTime", "sequence", "timeNanoPart", "bidTime", "bidExchangeCode",
        "askTime", "askExchangeCode", "bidPrice", "askPrice", "bidSize", "askSize",
    ),
    "Trade": (
        "eventSymbol", "eventTime", "time", "timeNanoPart", "sequence", "exchangeCode", "dayId",
        "tickDirection", "extendedTradingHours", "price", "change", "size", "dayVolume", "dayTurnover",
    ),
    "Greeks": (
        "eventSymbol", "eventTime", "eventFlags", "index", "time", "sequence", "price", "volatility",
        "delta", "gamma", "theta", "rho", "vega",
    ),
    "Summary": (
        "eventSymbol", "eventTime", "dayId", "dayClosePriceType", "prevDayId", "prevDayClosePriceType",
        "openInterest", "dayOpenPrice", "dayHighPrice", "dayLowPrice", "dayClosePrice",
        "prevDayClosePrice", "prevDayVolume",
    ),
    "Profile": (
        "eventSymbol", "eventTime", "description", "shortSaleRestriction", "tradingStatus",
        "haltStartTime", "haltEndTime", "exDividendDayId", "statusReason", "high52WeekPrice",
        "low52WeekPrice", "beta", "shares", "highLimitPrice", "lowLimitPrice", "earningsPerShare",
        "exDividendAmount", "dividendFrequency", "freeFloat",
    ),
}  # fmt: skip

# One channel per event type, with the ids the tastytrade SDK uses (the order of its MAP_EVENTS).
CHANNELS: dict[str, int] = {"Greeks": 3, "Profile": 5, "Quote": 7, "Summary": 9, "Trade": 15}

_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class ProtocolError(Exception):
    """A DXLink message that does not follow the protocol."""


def setup(keepalive_timeout: float, accept_keepalive_timeout: float) -> dict[str, Any]:
    """The client's SETUP message (channel 0)."""
    return {
        "type": "SETUP",
        "channel": 0,
        "keepaliveTimeout": keepalive_timeout,
        "acceptKeepaliveTimeout": accept_keepalive_timeout,
        "version": DXLINK_VERSION,
    }


def auth(token: str) -> dict[str, Any]:
    """AUTH with an API quote token."""
    return {"type": "AUTH", "channel": 0, "token": token}


def keepalive() -> dict[str, Any]:
    """The application-level KEEPALIVE (DXLink ignores websocket pings)."""
    return {"type": "KEEPALIVE", "channel": 0}


def channel_request(channel: int) -> dict[str, Any]:
    """Open a FEED channel with the AUTO contract."""
    return {"type": "CHANNEL_REQUEST", "channel": channel, "service": "FEED", "parameters": {"contract": "AUTO"}}


def feed_setup(channel: int, event_type: str, aggregation_period: float) -> dict[str, Any]:
    """Ask for COMPACT data with this client's field list for `event_type`."""
    return {
        "type": "FEED_SETUP",
        "channel": channel,
        "acceptAggregationPeriod": aggregation_period,
        "acceptDataFormat": "COMPACT",
        "acceptEventFields": {event_type: list(EVENT_FIELDS[event_type])},
    }


def feed_subscription(
    channel: int, event_type: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> dict[str, Any]:
    """FEED_SUBSCRIPTION adding and/or removing symbols of one event type."""
    message: dict[str, Any] = {"type": "FEED_SUBSCRIPTION", "channel": channel}
    if add:
        message["add"] = [{"symbol": symbol, "type": event_type} for symbol in add]
    if remove:
        message["remove"] = [{"symbol": symbol, "type": event_type} for symbol in remove]
    return message


def _double(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        special = _SPECIAL_DOUBLES.get(value)
        if special is not None:
            return special
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"not a double: {value!r}") from None


def _int(value: Any) -> int:
    if value is None or value == "NaN":
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"not an integer: {value!r}") from None


def _time_ns(*millis: Any, received_ns: int) -> int:
    best = max((_int(ms) for ms in millis), default=0)
    return best * 1_000_000 if best > 0 else received_ns


def _build(event_type: str, get: Mapping[str, Any], received_ns: int) -> FeedEvent:
    symbol = get.get("eventSymbol")
    if not isinstance(symbol, str) or not symbol:
        raise ProtocolError(f"{event_type} event without eventSymbol")
    if event_type == "Quote":
        return QuoteEvent(
            symbol=symbol,
            bid_price=_double(get.get("bidPrice")),
            ask_price=_double(get.get("askPrice")),
            bid_size=_double(get.get("bidSize")),
            ask_size=_double(get.get("askSize")),
            time_ns=_time_ns(get.get("bidTime"), get.get("askTime"), get.get("eventTime"), received_ns=received_ns),
        )
    if event_type == "Trade":
        return TradeEvent(
            symbol=symbol,
            price=_double(get.get("price")),
            size=_double(get.get("size")),
            day_volume=_double(get.get("dayVolume")),
            time_ns=_time_ns(get.get("time"), get.get("eventTime"), received_ns=received_ns),
        )
    if event_type == "Greeks":
        return GreeksEvent(
            symbol=symbol,
            price=_double(get.get("price")),
            volatility=_double(get.get("volatility")),
            delta=_double(get.get("delta")),
            gamma=_double(get.get("gamma")),
            theta=_double(get.get("theta")),
            rho=_double(get.get("rho")),
            vega=_double(get.get("vega")),
            time_ns=_time_ns(get.get("time"), get.get("eventTime"), received_ns=received_ns),
        )
    if event_type == "Summary":
        return SummaryEvent(
            symbol=symbol,
            day_open_price=_double(get.get("dayOpenPrice")),
            day_high_price=_double(get.get("dayHighPrice")),
            day_low_price=_double(get.get("dayLowPrice")),
            day_close_price=_double(get.get("dayClosePrice")),
            prev_day_close_price=_double(get.get("prevDayClosePrice")),
            open_interest=_double(get.get("openInterest")),
            time_ns=_time_ns(get.get("eventTime"), received_ns=received_ns),
        )
    if event_type == "Profile":
        return ProfileEvent(
            symbol=symbol,
            description=str(get.get("description") or ""),
            trading_status=str(get.get("tradingStatus") or "UNDEFINED"),
            high_52_week_price=_double(get.get("high52WeekPrice")),
            low_52_week_price=_double(get.get("low52WeekPrice")),
            beta=_double(get.get("beta")),
            time_ns=_time_ns(get.get("eventTime"), received_ns=received_ns),
        )
    raise ProtocolError(f"unsupported event type {event_type!r}")


def decode_feed_data(
    data: Any, fields: Mapping[str, Sequence[str]], *, received_ns: int
) -> list[FeedEvent]:
    """Decode the `data` of one FEED_DATA message.

    Args:
        data: COMPACT (`["Quote", [v1, v2, ...]]`, possibly several type/values pairs, several events
            concatenated per values list) or FULL (`[{"eventType": "Quote", "eventSymbol": ...}, ...]`).
        fields: The field list of each event type on this channel, in the order values arrive.
        received_ns: Receipt time, used when an event carries no time of its own.

    Raises:
        ProtocolError: the data does not match the configured fields.
    """
    if not isinstance(data, list) or not data:
        raise ProtocolError("FEED_DATA without data")
    events: list[FeedEvent] = []
    if isinstance(data[0], dict):
        for item in data:
            if not isinstance(item, dict):
                raise ProtocolError("FULL data mixes objects and values")
            event_type = item.get("eventType")
            if event_type in EVENT_FIELDS:
                events.append(_build(event_type, item, received_ns))
        return events
    if len(data) % 2:
        raise ProtocolError("COMPACT data must be event type / values pairs")
    for pair_index in range(0, len(data), 2):
        event_type, values = data[pair_index], data[pair_index + 1]
        if not isinstance(event_type, str) or not isinstance(values, list):
            raise ProtocolError("COMPACT data must be event type / values pairs")
        names = fields.get(event_type)
        if names is None:
            if event_type in EVENT_FIELDS:
                raise ProtocolError(f"{event_type} data on a channel not set up for it")
            continue
        width = len(names)
        if width == 0 or len(values) % width:
            raise ProtocolError(f"{event_type}: {len(values)} values do not divide into events of {width} fields")
        for start in range(0, len(values), width):
            record = dict(zip(names, values[start : start + width], strict=True))
            events.append(_build(event_type, record, received_ns))
    return events
