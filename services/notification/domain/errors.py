"""Typed errors of the notification service; each leaf inherits a platform category that fixes its gRPC code."""

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
    "AuthenticationRequired",
    "ChannelDisabled",
    "ChannelLimitExceeded",
    "ChannelNotFound",
    "ContactNotVerified",
    "DatabaseUnavailable",
    "EmailInvalid",
    "FieldInvalid",
    "FieldRequired",
    "NotificationError",
    "PageTokenInvalid",
    "PhoneNumberInvalid",
    "ProviderUnavailable",
    "TestThrottled",
]


class NotificationError(DomainError):
    """Base of every error the notification service raises on purpose."""


class _FieldError(NotificationError, FieldError):
    """An INVALID_ARGUMENT about one request field of the notification service."""


class FieldRequired(_FieldError):
    """A required field is empty (or an enum is UNSPECIFIED)."""

    reason = "FIELD_REQUIRED"

    def __init__(self, field: str, description: str = "is required") -> None:
        super().__init__(field, description)


class FieldInvalid(_FieldError):
    """A field's value is out of range or malformed."""

    reason = "FIELD_INVALID"


class PhoneNumberInvalid(_FieldError):
    """A phone number is not E.164."""

    reason = "PHONE_NUMBER_INVALID"


class EmailInvalid(_FieldError):
    """An e-mail address is not valid."""

    reason = "EMAIL_INVALID"


class PageTokenInvalid(_FieldError):
    """A page token was not issued for this query."""

    reason = "PAGE_TOKEN_INVALID"


class AuthenticationRequired(NotificationError, Unauthenticated):
    """The call carries no valid access token."""

    reason = "AUTHENTICATION_REQUIRED"

    def __init__(self, message: str = "a valid access token is required") -> None:
        super().__init__(message)


class ContactNotVerified(NotificationError, FailedPrecondition):
    """The destination is not a verified contact (or a registered device) of the caller."""

    reason = "CONTACT_NOT_VERIFIED"

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is not a verified contact of yours; verify it in your notification preferences first"
        )


class ChannelNotFound(NotificationError, NotFound):
    """No such channel of the caller."""

    reason = "CHANNEL_NOT_FOUND"

    def __init__(self, channel_id: str) -> None:
        super().__init__(f"channel {channel_id[:64]!r} not found")


class ChannelDisabled(NotificationError, FailedPrecondition):
    """The channel is disabled (the provider rejected it permanently)."""

    reason = "CHANNEL_DISABLED"

    def __init__(self, channel_id: str) -> None:
        super().__init__(f"channel {channel_id[:64]!r} is disabled")


class ChannelLimitExceeded(NotificationError, ResourceExhausted):
    """The caller has the maximum number of channels."""

    reason = "CHANNEL_LIMIT_EXCEEDED"

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} channels per user", metadata={"limit": str(limit)})


class TestThrottled(NotificationError, ResourceExhausted):
    """Too many test notifications recently."""

    reason = "TEST_THROTTLED"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"too many test notifications; retry in {retry_after:.0f} s", retry_after=max(0.0, retry_after)
        )


class ProviderUnavailable(NotificationError, Unavailable):
    """The provider failed after retries."""

    reason = "PROVIDER_UNAVAILABLE"

    def __init__(self, detail: str) -> None:
        super().__init__(f"the provider failed: {detail[:200]}")


class DatabaseUnavailable(NotificationError, Unavailable):
    """PostgreSQL cannot be reached or failed."""

    reason = "DATABASE_UNAVAILABLE"

    def __init__(self, message: str = "the notification database is unavailable") -> None:
        super().__init__(message)
