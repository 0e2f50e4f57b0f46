"""Typed errors of the reporting service; each leaf inherits a platform category that fixes its gRPC code."""

from __future__ import annotations

from services.platform.errors import (
    DomainError,
    FailedPrecondition,
    FieldError,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AccountNotFound",
    "AuthenticationRequired",
    "BrokerUnavailable",
    "CsvNeedsOneSection",
    "FieldInvalid",
    "FieldRequired",
    "HistoryIncomplete",
    "PortfolioUnavailable",
    "ReportingError",
    "TimeRangeInvalid",
    "TooManyReports",
]


class ReportingError(DomainError):
    """Base of every error the reporting service raises on purpose."""


class _FieldError(ReportingError, FieldError):
    """An INVALID_ARGUMENT about one request field of the reporting service."""


class FieldRequired(_FieldError):
    """A required field is empty or an enum is UNSPECIFIED."""

    reason = "FIELD_REQUIRED"

    def __init__(self, field: str, description: str = "is required") -> None:
        super().__init__(field, description)


class FieldInvalid(_FieldError):
    """A field's value is not allowed."""

    reason = "FIELD_INVALID"


class TimeRangeInvalid(_FieldError):
    """``start_time`` is after ``end_time``."""

    reason = "TIME_RANGE_INVALID"

    def __init__(self) -> None:
        super().__init__("start_time", "is after end_time")


class CsvNeedsOneSection(_FieldError):
    """A CSV report names no section or several."""

    reason = "CSV_NEEDS_ONE_SECTION"

    def __init__(self, count: int) -> None:
        super().__init__("sections", f"a CSV report holds exactly one section, {count} given")


class AccountNotFound(ReportingError, NotFound):
    """No such account of the caller."""

    reason = "ACCOUNT_NOT_FOUND"

    def __init__(self, account_number: str) -> None:
        super().__init__(f"account {account_number!r} not found", metadata={"account_number": account_number})


class HistoryIncomplete(ReportingError, FailedPrecondition):
    """The history does not reconcile with the positions (as the portfolio service reports it)."""

    reason = "HISTORY_INCOMPLETE"


class TooManyReports(ReportingError, ResourceExhausted):
    """The caller has too many reports in progress."""

    reason = "TOO_MANY_REPORTS"


class AuthenticationRequired(ReportingError, Unauthenticated):
    """No valid access token."""

    reason = "AUTHENTICATION_REQUIRED"

    def __init__(self, message: str = "an access token is required: 'authorization: Bearer <token>'") -> None:
        super().__init__(message)


class BrokerUnavailable(ReportingError, Unavailable):
    """The broker service cannot answer."""

    reason = "BROKER_UNAVAILABLE"


class PortfolioUnavailable(ReportingError, Unavailable):
    """The portfolio (or delta monitor) service cannot answer."""

    reason = "PORTFOLIO_UNAVAILABLE"
