"""Typed broker errors: one base, leaves named for what happened, each in a platform category (gRPC code)."""

from __future__ import annotations

from services.platform.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)


class BrokerError(DomainError):
    """Base of every error the broker service raises on purpose (never raised itself)."""

    reason = "BROKER_ERROR"


class AuthenticationRequired(BrokerError, Unauthenticated):
    """The call carries no verified identity."""

    reason = "AUTHENTICATION_REQUIRED"


class BrokerUnauthorized(BrokerError, FailedPrecondition):
    """Tastytrade refused the linked credential (bad or revoked refresh token); the user must link again."""

    reason = "BROKER_UNAUTHORIZED"


class BrokerForbidden(BrokerError, FailedPrecondition):
    """Tastytrade accepted the credential but its grant lacks the scope the request needs."""

    reason = "BROKER_FORBIDDEN"


class BrokerRateLimited(BrokerError, ResourceExhausted):
    """Tastytrade answered 429 after our retries; ``retry_after`` says when to try again."""

    reason = "BROKER_RATE_LIMITED"


class RequestBudgetExhausted(BrokerRateLimited):
    """The platform's outbound request budget to Tastytrade has no slot within the wait allowed."""


class BrokerUnavailable(BrokerError, Unavailable):
    """Tastytrade is down or unreachable (5xx, timeouts, connection errors) after the retries allowed."""

    reason = "BROKER_UNAVAILABLE"


class CircuitOpen(BrokerUnavailable):
    """The circuit breaker is open: Tastytrade failed repeatedly, so calls fail fast until it recovers."""


class BrokerBadResponse(BrokerError, Unavailable):
    """Tastytrade answered with a body that does not match the documented format."""

    reason = "BROKER_BAD_RESPONSE"


class BrokerRejected(BrokerError, FailedPrecondition):
    """Tastytrade rejected a request we built (400, or 406 for the API version)."""

    reason = "BROKER_REJECTED"


class AccountNotFound(BrokerError, NotFound):
    """The account is not linked by the caller (another user's account answers the same)."""

    reason = "ACCOUNT_NOT_FOUND"

    def __init__(self, account_number: str) -> None:
        super().__init__(f"account {account_number[:40]} not found", metadata={"account_number": account_number[:40]})


class BrokerLinkNotFound(BrokerError, NotFound):
    """The caller has no broker link with that id."""

    reason = "BROKER_LINK_NOT_FOUND"

    def __init__(self, link_id: str) -> None:
        super().__init__(f"broker link {link_id[:64]} not found")


class SymbolNotFound(BrokerError, NotFound):
    """The broker lists no instrument or option chain for the symbol."""

    reason = "SYMBOL_NOT_FOUND"


class AccountAlreadyLinked(BrokerError, AlreadyExists):
    """An account discovered through a new link is already linked by another user."""

    reason = "ACCOUNT_ALREADY_LINKED"


class NoLinkedAccount(BrokerError, FailedPrecondition):
    """The caller has no linked account to query the broker with."""

    reason = "NO_LINKED_ACCOUNT"


class ContractExpired(BrokerError, FailedPrecondition):
    """The option has expired, so it has no time to expiry to give a model."""

    reason = "CONTRACT_EXPIRED"


class EnvironmentNotConfigured(BrokerError, FailedPrecondition):
    """The requested broker environment is not enabled on this deployment."""

    reason = "BROKER_ENVIRONMENT_NOT_CONFIGURED"


class CredentialUnreadable(BrokerError, FailedPrecondition):
    """A stored credential cannot be decrypted (unknown key version, tampered ciphertext); link again."""

    reason = "BROKER_CREDENTIAL_UNREADABLE"


class _FieldError(BrokerError, InvalidArgument):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field_violations=[FieldViolation(field, message, self.reason)])
        self.field = field


class FieldRequired(_FieldError):
    """A required request field is empty or unspecified."""

    reason = "FIELD_REQUIRED"

    def __init__(self, field: str, message: str | None = None) -> None:
        super().__init__(field, message or f"{field} is required")


class FieldInvalid(_FieldError):
    """A request field has a value the RPC cannot take."""

    reason = "FIELD_INVALID"


class PageTokenInvalid(_FieldError):
    """The page token was not issued for this query."""

    reason = "PAGE_TOKEN_INVALID"

    def __init__(self) -> None:
        super().__init__("page_token", "page_token was not issued for this query")


class TimeRangeInvalid(_FieldError):
    """``start_time`` is after ``end_time``."""

    reason = "TIME_RANGE_INVALID"

    def __init__(self) -> None:
        super().__init__("start_time", "start_time is after end_time")


class TooManySymbols(_FieldError):
    """More symbols than one request may name."""

    reason = "TOO_MANY_SYMBOLS"

    def __init__(self, count: int, limit: int) -> None:
        super().__init__("symbols", f"{count} symbols requested; at most {limit} per request")
