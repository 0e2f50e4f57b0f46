"""Market data values: the events a feed delivers and the merged updates the service hands out."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

__all__ = [
    "FeedEvent",
    "FeedKind",
    "GreeksEvent",
    "GreeksUpdate",
    "ProfileEvent",
    "QuoteEvent",
    "QuoteUpdate",
    "SummaryEvent",
    "TradeEvent",
    "datetime_of",
    "time_ns_of",
]

NAN = math.nan
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_ns_of(moment: datetime) -> int:
    """Nanoseconds since the Unix epoch of an aware datetime, exactly (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def datetime_of(time_ns: int) -> datetime:
    """The aware UTC datetime of nanoseconds since the Unix epoch (to the microsecond)."""
    return _EPOCH + timedelta(microseconds=time_ns // 1000)


class FeedKind(Enum):
    """Where the events come from."""

    DXFEED = "dxfeed"
    SIMULATOR = "simulator"


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    """Best bid and offer of one symbol (dxFeed Quote). Missing values are NaN."""

    symbol: str
    bid_price: float
    ask_price: float
    bid_size: float
    ask_size: float
    time_ns: int


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """Last trade of one symbol (dxFeed Trade)."""

    symbol: str
    price: float
    size: float
    day_volume: float
    time_ns: int


@dataclass(frozen=True, slots=True)
class GreeksEvent:
    """dxFeed's Greeks of one option: per share, theta per day, vega per vol point, rho per 1 %."""

    symbol: str
    price: float
    volatility: float
    delta: float
    gamma: float
    theta: float
    rho: float
    vega: float
    time_ns: int


@dataclass(frozen=True, slots=True)
class SummaryEvent:
    """Daily summary of one symbol (dxFeed Summary)."""

    symbol: str
    day_open_price: float
    day_high_price: float
    day_low_price: float
    day_close_price: float
    prev_day_close_price: float
    open_interest: float
    time_ns: int


@dataclass(frozen=True, slots=True)
class ProfileEvent:
    """Static and status information of one symbol (dxFeed Profile)."""

    symbol: str
    description: str
    trading_status: str
    high_52_week_price: float
    low_52_week_price: float
    beta: float
    time_ns: int


FeedEvent = QuoteEvent | TradeEvent | GreeksEvent | SummaryEvent | ProfileEvent


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _none_to_nan(value: Any) -> float:
    return NAN if value is None else float(value)


@dataclass(frozen=True, slots=True)
class QuoteUpdate:
    """The merged latest market of one symbol: its quote plus its last trade. Missing values are NaN."""

    symbol: str
    bid_price: float
    ask_price: float
    last_price: float
    bid_size: float
    ask_size: float
    day_volume: float
    time_ns: int

    @property
    def mark_price(self) -> float:
        """The mid of a two-sided market, else the last price (NaN when neither exists)."""
        bid, ask = self.bid_price, self.ask_price
        if bid > 0.0 and ask > 0.0 and ask >= bid:
            return (bid + ask) * 0.5
        return self.last_price

    def to_json(self) -> dict[str, Any]:
        """The JSON form used on the bus and in the cache (NaN becomes null)."""
        return {
            "symbol": self.symbol,
            "bid_price": _nan_to_none(self.bid_price),
            "ask_price": _nan_to_none(self.ask_price),
            "last_price": _nan_to_none(self.last_price),
            "mark_price": _nan_to_none(self.mark_price),
            "bid_size": _nan_to_none(self.bid_size),
            "ask_size": _nan_to_none(self.ask_size),
            "day_volume": _nan_to_none(self.day_volume),
            "time_unix_nanos": self.time_ns,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuoteUpdate:
        """Inverse of `to_json`."""
        return cls(
            symbol=str(data["symbol"]),
            bid_price=_none_to_nan(data.get("bid_price")),
            ask_price=_none_to_nan(data.get("ask_price")),
            last_price=_none_to_nan(data.get("last_price")),
            bid_size=_none_to_nan(data.get("bid_size")),
            ask_size=_none_to_nan(data.get("ask_size")),
            day_volume=_none_to_nan(data.get("day_volume")),
            time_ns=int(data["time_unix_nanos"]),
        )

    def encode(self) -> bytes:
        """Compact JSON bytes of `to_json`."""
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def decode(cls, payload: bytes) -> QuoteUpdate:
        """Inverse of `encode`."""
        return cls.from_json(json.loads(payload))


_GREEKS_FIELDS = (
    "underlying_price",
    "option_price",
    "broker_volatility",
    "broker_delta",
    "broker_gamma",
    "broker_theta",
    "broker_vega",
    "broker_rho",
    "model_volatility",
    "model_price",
    "model_delta",
    "model_gamma",
    "model_theta",
    "model_vega",
    "model_rho",
    "model_vanna",
    "model_charm",
)


@dataclass(frozen=True, slots=True)
class GreeksUpdate:
    """An option's Greeks from dxFeed (`broker_*`) and from the platform's model (`model_*`), side by side.

    Units as dxFeed's: per share, theta per calendar day, vega per vol point, rho per percentage point;
    volatilities are fractions. A value nobody could compute is NaN.
    """

    symbol: str
    underlying_price: float
    option_price: float
    broker_volatility: float
    broker_delta: float
    broker_gamma: float
    broker_theta: float
    broker_vega: float
    broker_rho: float
    model_volatility: float
    model_price: float
    model_delta: float
    model_gamma: float
    model_theta: float
    model_vega: float
    model_rho: float
    model_vanna: float
    model_charm: float
    time_ns: int

    @property
    def delta_difference(self) -> float:
        """Model delta minus dxFeed delta (NaN when either is missing)."""
        return self.model_delta - self.broker_delta

    def to_json(self) -> dict[str, Any]:
        """The JSON form used on the bus and in the cache (NaN becomes null)."""
        data: dict[str, Any] = {"symbol": self.symbol, "time_unix_nanos": self.time_ns}
        for name in _GREEKS_FIELDS:
            data[name] = _nan_to_none(getattr(self, name))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GreeksUpdate:
        """Inverse of `to_json`."""
        values = {name: _none_to_nan(data.get(name)) for name in _GREEKS_FIELDS}
        return cls(symbol=str(data["symbol"]), time_ns=int(data["time_unix_nanos"]), **values)

    def encode(self) -> bytes:
        """Compact JSON bytes of `to_json`."""
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def decode(cls, payload: bytes) -> GreeksUpdate:
        """Inverse of `encode`."""
        return cls.from_json(json.loads(payload))
