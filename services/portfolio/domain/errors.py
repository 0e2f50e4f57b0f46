"""Typed errors of the portfolio service; each leaf inherits a platform category that fixes its gRPC code."""

from __future__ import annotations

from services.platform.errors import (
    DomainError,
    FailedPrecondition,
    FieldError,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AccountNotFound",
    "AuthenticationRequired",
    "BenchmarkPriceMissing",
    "BrokerUnavailable",
    "DatabaseUnavailable",
    "FieldInvalid",
    "FieldRequired",
    "GridTooLarge",
    "HistoryIncomplete",
    "MarketDataUnavailable",
    "PageTokenInvalid",
    "PortfolioError",
    "TimeRangeInvalid",
]


class PortfolioError(DomainError):
    """Base of every error the portfolio service raises on purpose."""


class _FieldError(PortfolioError, FieldError):
    """An INVALID_ARGUMENT about one request field of the portfolio service."""


class FieldRequired(_FieldError):
    """A required field is empty."""

    reason = "FIELD_REQUIRED"

    def __init__(self, field: str, description: str = "is required") -> None:
        super().__init__(field, description)


class FieldInvalid(_FieldError):
    """A field's value is out of range or malformed."""

    reason = "FIELD_INVALID"


class TimeRangeInvalid(_FieldError):
    """``start_time`` is after ``end_time``."""

    reason = "TIME_RANGE_INVALID"

    def __init__(self) -> None:
        super().__init__("start_time", "is after end_time")


class PageTokenInvalid(_FieldError):
    """A page token was not issued for this query."""

    reason = "PAGE_TOKEN_INVALID"

    def __init__(self) -> None:
        super().__init__("page_token", "was not issued for this query")


class GridTooLarge(PortfolioError, InvalidArgument):
    """A scenario grid exceeds the limits."""

    reason = "GRID_TOO_LARGE"


class AccountNotFound(PortfolioError, NotFound):
    """No such account of the caller (another user's account answers the same)."""

    reason = "ACCOUNT_NOT_FOUND"

    def __init__(self, account_number: str) -> None:
        super().__init__(f"account {account_number!r} not found", metadata={"account_number": account_number})


class HistoryIncomplete(PortfolioError, FailedPrecondition):
    """The transaction history does not explain the positions held; lots cannot be built."""

    reason = "HISTORY_INCOMPLETE"

    def __init__(self, symbol: str, detail: str) -> None:
        super().__init__(f"the transaction history does not reconcile for {symbol}: {detail}", metadata={"symbol": symbol})
        self.symbol = symbol


class BenchmarkPriceMissing(PortfolioError, FailedPrecondition):
    """No price is known for the beta-weighting benchmark."""

    reason = "BENCHMARK_PRICE_MISSING"

    def __init__(self, symbol: str) -> None:
        super().__init__(f"no price is known for the benchmark {symbol}", metadata={"symbol": symbol})


class AuthenticationRequired(PortfolioError, Unauthenticated):
    """No valid access token."""

    reason = "AUTHENTICATION_REQUIRED"

    def __init__(self, message: str = "an access token is required: 'authorization: Bearer <token>'") -> None:
        super().__init__(message)


class BrokerUnavailable(PortfolioError, Unavailable):
    """The broker service cannot be reached and nothing cached can answer."""

    reason = "BROKER_UNAVAILABLE"


class MarketDataUnavailable(PortfolioError, Unavailable):
    """The market data service cannot be reached, or has no price for a symbol the answer needs."""

    reason = "MARKET_DATA_UNAVAILABLE"


class DatabaseUnavailable(PortfolioError, Unavailable):
    """The portfolio database cannot be reached."""

    reason = "DATABASE_UNAVAILABLE"
