"""Typed errors of the delta monitor; each leaf inherits a platform category that fixes its gRPC code."""

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
    "AlertNotFound",
    "AuthenticationRequired",
    "BandInvalid",
    "DatabaseUnavailable",
    "DeltaMonitorError",
    "FieldInvalid",
    "FieldRequired",
    "PageTokenInvalid",
    "TargetNotHeld",
    "TimeRangeInvalid",
    "TooManyStreams",
    "UpdateMaskInvalid",
    "WatchLimitExceeded",
    "WatchNotFound",
]


class DeltaMonitorError(DomainError):
    """Base of every error the delta monitor raises on purpose."""


class _FieldError(DeltaMonitorError, FieldError):
    """An INVALID_ARGUMENT about one request field of the deltamonitor service."""


class FieldRequired(_FieldError):
    """A required field is empty (or an enum is UNSPECIFIED)."""

    reason = "FIELD_REQUIRED"

    def __init__(self, field: str, description: str = "is required") -> None:
        super().__init__(field, description)


class FieldInvalid(_FieldError):
    """A field's value is out of range or malformed."""

    reason = "FIELD_INVALID"


class BandInvalid(_FieldError):
    """A band is inconsistent: lower >= upper, a NaN bound, a non-positive multiplier..."""

    reason = "BAND_INVALID"


class UpdateMaskInvalid(_FieldError):
    """An update mask path is not a field of Watch, or is output only or immutable."""

    reason = "UPDATE_MASK_INVALID"


class PageTokenInvalid(_FieldError):
    """A page token was not issued for this query."""

    reason = "PAGE_TOKEN_INVALID"


class TimeRangeInvalid(_FieldError):
    """``start_time`` is after ``end_time``."""

    reason = "TIME_RANGE_INVALID"


class AuthenticationRequired(DeltaMonitorError, Unauthenticated):
    """The call carries no valid access token."""

    reason = "AUTHENTICATION_REQUIRED"

    def __init__(self, message: str = "a valid access token is required") -> None:
        super().__init__(message)


class WatchNotFound(DeltaMonitorError, NotFound):
    """No such watch of the caller (another user's watch answers the same)."""

    reason = "WATCH_NOT_FOUND"

    def __init__(self, watch_id: str) -> None:
        super().__init__(f"watch {watch_id[:64]!r} not found")


class AlertNotFound(DeltaMonitorError, NotFound):
    """No such alert of the caller."""

    reason = "ALERT_NOT_FOUND"

    def __init__(self, alert_id: str) -> None:
        super().__init__(f"alert {alert_id[:64]!r} not found")


class AccountNotFound(DeltaMonitorError, NotFound):
    """The account is not one of the caller's."""

    reason = "ACCOUNT_NOT_FOUND"

    def __init__(self, account_number: str) -> None:
        super().__init__(f"account {account_number[:64]!r} not found")


class TargetNotHeld(DeltaMonitorError, FailedPrecondition):
    """The account holds no position in the watched symbol or underlying."""

    reason = "TARGET_NOT_HELD"

    def __init__(self, account_number: str, target: str) -> None:
        super().__init__(
            f"account {account_number[:64]!r} holds no position in {target[:64]!r}",
            metadata={"account_number": account_number[:64], "target": target[:64]},
        )


class WatchLimitExceeded(DeltaMonitorError, ResourceExhausted):
    """The caller has the maximum number of watches."""

    reason = "WATCH_LIMIT_EXCEEDED"

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} watches per user", metadata={"limit": str(limit)})


class TooManyStreams(DeltaMonitorError, ResourceExhausted):
    """The caller has too many open alert streams."""

    reason = "TOO_MANY_STREAMS"

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} open alert streams per user", metadata={"limit": str(limit)})


class DatabaseUnavailable(DeltaMonitorError, Unavailable):
    """PostgreSQL cannot be reached or failed; the call may be retried."""

    reason = "DATABASE_UNAVAILABLE"

    def __init__(self, message: str = "the alert database is unavailable") -> None:
        super().__init__(message)
