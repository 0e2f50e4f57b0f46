"""Typed market data errors, each tied to a gRPC category and an ErrorInfo reason."""

from __future__ import annotations

from services.platform.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

__all__ = [
    "CacheUnavailable",
    "DatabaseUnavailable",
    "FeedNotAuthorized",
    "FeedUnavailable",
    "FieldInvalid",
    "FieldRequired",
    "MarketDataError",
    "NotAnOptionSymbol",
    "PageTokenInvalid",
    "QuoteNotFound",
    "TimeRangeInvalid",
    "TooManyStreams",
    "TooManySymbols",
    "UnknownSymbol",
]


class MarketDataError(DomainError):
    """Base of every market data error."""

    reason = "MARKETDATA_ERROR"


class FieldRequired(MarketDataError, InvalidArgument):
    """A required request field is empty."""

    reason = "FIELD_REQUIRED"


class FieldInvalid(MarketDataError, InvalidArgument):
    """A request field has a value that cannot be used."""

    reason = "FIELD_INVALID"


class NotAnOptionSymbol(MarketDataError, InvalidArgument):
    """A symbol that must name an option is neither OCC nor dxFeed option form."""

    reason = "FIELD_INVALID"


class TooManySymbols(MarketDataError, InvalidArgument):
    """A request names more symbols than one call may follow."""

    reason = "TOO_MANY_SYMBOLS"


class TimeRangeInvalid(MarketDataError, InvalidArgument):
    """The start of a time range is not before its end."""

    reason = "TIME_RANGE_INVALID"


class PageTokenInvalid(MarketDataError, InvalidArgument):
    """A page token was not issued for this query."""

    reason = "PAGE_TOKEN_INVALID"


class QuoteNotFound(MarketDataError, NotFound):
    """No quote has been seen for the symbol."""

    reason = "QUOTE_NOT_FOUND"


class UnknownSymbol(MarketDataError, NotFound):
    """The simulator does not quote this symbol."""

    reason = "SYMBOL_NOT_FOUND"


class TooManyStreams(MarketDataError, ResourceExhausted):
    """The caller has too many open streams."""

    reason = "TOO_MANY_STREAMS"


class FeedUnavailable(MarketDataError, Unavailable):
    """The market data feed is down beyond the reconnect budget."""

    reason = "FEED_UNAVAILABLE"


class CacheUnavailable(MarketDataError, Unavailable):
    """The latest-value cache cannot be reached."""

    reason = "CACHE_UNAVAILABLE"


class DatabaseUnavailable(MarketDataError, Unavailable):
    """The history store cannot be reached."""

    reason = "DATABASE_UNAVAILABLE"


class FeedNotAuthorized(MarketDataError, FailedPrecondition):
    """DXLink refused the quote token even after a fresh one was fetched."""

    reason = "FEED_UNAUTHORIZED"
