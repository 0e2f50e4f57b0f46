"""History: the ticks stored, candle intervals, candles, and the page tokens of GetHistory."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from enum import Enum

from services.marketdata.domain.errors import FieldInvalid, PageTokenInvalid, TimeRangeInvalid
from services.platform.errors import FieldViolation

__all__ = ["Candle", "CandleInterval", "HistoryQuery", "HistoryTick", "decode_page_token", "encode_page_token"]

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


class CandleInterval(Enum):
    """Candle length in seconds."""

    ONE_MINUTE = 60
    FIVE_MINUTES = 300
    ONE_HOUR = 3600
    ONE_DAY = 86400

    @property
    def nanos(self) -> int:
        """The length in nanoseconds."""
        return self.value * 1_000_000_000


@dataclass(frozen=True, slots=True)
class HistoryTick:
    """One stored tick: a trade (price and size) or a quote (its mid, size 0)."""

    symbol: str
    time_ns: int
    price: float
    size: float
    is_trade: bool


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLC bar; volume is the traded size in the bar."""

    start_ns: int
    open_price: float
    high_price: float
    low_price: float
    close_price: float
    volume: float
    tick_count: int


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A validated GetHistory request."""

    symbol: str
    interval: CandleInterval
    start_ns: int | None
    end_ns: int
    page_size: int

    @classmethod
    def build(
        cls, symbol: str, interval: CandleInterval, start_ns: int | None, end_ns: int, page_size: int
    ) -> HistoryQuery:
        """Validate and normalise the request's values.

        Raises:
            TimeRangeInvalid: `start_ns` is not before `end_ns`.
            FieldInvalid: `page_size` is negative.
        """
        if start_ns is not None and start_ns >= end_ns:
            message = "start_time must be before end_time"
            raise TimeRangeInvalid(message, field_violations=[FieldViolation("start_time", message, "TIME_RANGE_INVALID")])
        if page_size < 0:
            message = f"page_size must not be negative, got {page_size}"
            raise FieldInvalid(message, field_violations=[FieldViolation("page_size", message, "FIELD_INVALID")])
        size = DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
        return cls(symbol, interval, start_ns, end_ns, size)

    def fingerprint(self) -> str:
        """A short digest of what makes two pages part of the same query."""
        text = f"{self.symbol}|{self.interval.name}|{self.start_ns}|{self.end_ns}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_page_token(query: HistoryQuery, next_start_ns: int) -> str:
    """The token of the page starting at candle `next_start_ns` of `query`."""
    raw = json.dumps({"q": query.fingerprint(), "n": next_start_ns}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(query: HistoryQuery, token: str) -> int:
    """The candle start a token resumes at.

    Raises:
        PageTokenInvalid: the token is malformed or was issued for another query.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        fingerprint, next_start = data["q"], data["n"]
        if not isinstance(next_start, int) or not isinstance(fingerprint, str):
            raise ValueError("bad types")
    except (ValueError, KeyError, TypeError) as error:
        message = "page_token is not a token issued by GetHistory"
        raise PageTokenInvalid(message, field_violations=[FieldViolation("page_token", message)]) from error
    if fingerprint != query.fingerprint():
        message = "page_token was issued for a different query (symbol, interval or range)"
        raise PageTokenInvalid(message, field_violations=[FieldViolation("page_token", message)])
    return next_start
