"""Typed errors of the user service; each leaf inherits a platform category that fixes its gRPC code."""

from __future__ import annotations

from services.platform.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    FieldError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AuthenticationRequired",
    "ContactAlreadyVerified",
    "ContactMissing",
    "DatabaseUnavailable",
    "EmailInvalid",
    "EmailTaken",
    "FieldInvalid",
    "FieldRequired",
    "InvalidCredentials",
    "LastAdmin",
    "LoginThrottled",
    "PageTokenInvalid",
    "PasswordTooWeak",
    "PhoneNumberInvalid",
    "RefreshTokenInvalid",
    "RefreshTokenReused",
    "ResetThrottled",
    "ResetTokenInvalid",
    "RoleRequired",
    "TimeZoneInvalid",
    "UpdateMaskInvalid",
    "UserError",
    "UserNotFound",
    "VerificationCodeInvalid",
    "VerificationThrottled",
]


class UserError(DomainError):
    """Base of every error the user service raises on purpose."""


class _FieldError(UserError, FieldError):
    """An INVALID_ARGUMENT about one request field of the user service."""


class FieldRequired(_FieldError):
    """A required field is empty (or an enum is UNSPECIFIED)."""

    reason = "FIELD_REQUIRED"

    def __init__(self, field: str, description: str = "is required") -> None:
        super().__init__(field, description)


class FieldInvalid(_FieldError):
    """A field's value is out of range or malformed."""

    reason = "FIELD_INVALID"


class EmailInvalid(_FieldError):
    """An e-mail address is not a valid address."""

    reason = "EMAIL_INVALID"


class PasswordTooWeak(_FieldError):
    """A new password breaks the password policy."""

    reason = "PASSWORD_TOO_WEAK"


class PhoneNumberInvalid(_FieldError):
    """A phone number is not in E.164 form."""

    reason = "PHONE_NUMBER_INVALID"


class TimeZoneInvalid(_FieldError):
    """A time zone is not an IANA zone name."""

    reason = "TIME_ZONE_INVALID"


class UpdateMaskInvalid(_FieldError):
    """An update mask names a field that does not exist or is output only."""

    reason = "UPDATE_MASK_INVALID"


class PageTokenInvalid(_FieldError):
    """A page token was not issued for this query."""

    reason = "PAGE_TOKEN_INVALID"


class EmailTaken(UserError, AlreadyExists):
    """A user with this login e-mail address exists already."""

    reason = "EMAIL_TAKEN"

    def __init__(self) -> None:
        super().__init__("a user with this e-mail address exists")


class InvalidCredentials(UserError, Unauthenticated):
    """Unknown e-mail or wrong password; deliberately the same error for both."""

    reason = "INVALID_CREDENTIALS"

    def __init__(self) -> None:
        super().__init__("invalid e-mail or password")


class LoginThrottled(UserError, ResourceExhausted):
    """Too many failed logins for this account or client address."""

    reason = "LOGIN_THROTTLED"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"too many failed logins; retry in {retry_after:.0f} s", retry_after=max(0.0, retry_after)
        )


class AuthenticationRequired(UserError, Unauthenticated):
    """The call needs a verified identity and has none (missing, malformed, expired or revoked token)."""

    reason = "AUTHENTICATION_REQUIRED"

    def __init__(self, message: str = "a valid access token is required") -> None:
        super().__init__(message)


class RefreshTokenInvalid(UserError, Unauthenticated):
    """The refresh token is unknown, expired or revoked."""

    reason = "REFRESH_TOKEN_INVALID"

    def __init__(self, message: str = "the refresh token is invalid, expired or revoked") -> None:
        super().__init__(message)


class RefreshTokenReused(UserError, Unauthenticated):
    """An already used refresh token came back: its whole family is now revoked."""

    reason = "REFRESH_TOKEN_REUSED"

    def __init__(self) -> None:
        super().__init__("the refresh token was already used; the session is revoked, log in again")


class UserNotFound(UserError, NotFound):
    """No such user, or another user's id named by a caller who is not an admin."""

    reason = "USER_NOT_FOUND"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} not found")


class RoleRequired(UserError, PermissionDenied):
    """The caller lacks the role this call needs."""

    reason = "ROLE_REQUIRED"

    def __init__(self, role: str) -> None:
        super().__init__(f"this call needs the {role} role", metadata={"role": role})


class LastAdmin(UserError, FailedPrecondition):
    """The change would take the admin role away from the admin making it."""

    reason = "LAST_ADMIN"

    def __init__(self) -> None:
        super().__init__("an admin cannot remove their own admin role")


class ContactMissing(UserError, FailedPrecondition):
    """No phone number / e-mail address is set for the channel to verify."""

    reason = "CONTACT_MISSING"

    def __init__(self, channel: str) -> None:
        super().__init__(f"no {channel} contact is set", metadata={"channel": channel})


class ContactAlreadyVerified(UserError, FailedPrecondition):
    """The contact to verify is verified already."""

    reason = "CONTACT_ALREADY_VERIFIED"

    def __init__(self, channel: str) -> None:
        super().__init__(f"the {channel} contact is verified already", metadata={"channel": channel})


class VerificationThrottled(UserError, ResourceExhausted):
    """Too many codes sent to this contact, or too many wrong codes entered."""

    reason = "VERIFICATION_THROTTLED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retry_after=max(0.0, retry_after))


class VerificationCodeInvalid(UserError, FailedPrecondition):
    """The verification code is wrong, expired or was never sent."""

    reason = "VERIFICATION_CODE_INVALID"

    def __init__(self) -> None:
        super().__init__("the verification code is wrong or expired")


class ResetThrottled(UserError, ResourceExhausted):
    """Too many password reset requests from this client address."""

    reason = "RESET_THROTTLED"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"too many password reset requests; retry in {retry_after:.0f} s", retry_after=max(0.0, retry_after)
        )


class ResetTokenInvalid(UserError, Unauthenticated):
    """The password reset token is unknown, used or expired."""

    reason = "RESET_TOKEN_INVALID"

    def __init__(self) -> None:
        super().__init__("the password reset token is invalid, used or expired")


class DatabaseUnavailable(UserError, Unavailable):
    """The user database cannot be reached; the call may be retried."""

    reason = "DATABASE_UNAVAILABLE"

    def __init__(self, message: str = "the user database is unavailable") -> None:
        super().__init__(message)
