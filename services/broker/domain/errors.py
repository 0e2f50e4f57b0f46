"""Typed broker errors: one base, leaves named for what happened, each with its ErrorInfo reason."""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error the broker service raises on purpose.

    Attributes:
        reason: The UPPER_SNAKE ``ErrorInfo.reason`` the platform's error table maps to a gRPC code.
        metadata: Extra ``ErrorInfo.metadata`` (short strings only, never secrets).
    """

    reason: str = "BROKER_ERROR"

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})


class BrokerUnauthorized(BrokerError):
    """Tastytrade refused the linked credential (bad or revoked refresh token, rejected access token)."""

    reason = "BROKER_UNAUTHORIZED"


class BrokerForbidden(BrokerError):
    """Tastytrade accepted the credential but it lacks the authority (scope) for the request."""

    reason = "BROKER_FORBIDDEN"


class BrokerRateLimited(BrokerError):
    """Tastytrade answered 429, or our own request budget is spent; retry later."""

    reason = "BROKER_RATE_LIMITED"


class RequestBudgetExhausted(BrokerRateLimited):
    """The platform's outbound request budget to Tastytrade has no token left within the wait allowed."""


class BrokerUnavailable(BrokerError):
    """Tastytrade is down or unreachable (5xx, timeouts, connection errors) after the retries allowed."""

    reason = "BROKER_UNAVAILABLE"


class CircuitOpen(BrokerUnavailable):
    """The circuit breaker is open: Tastytrade failed repeatedly, so calls fail fast until it recovers."""


class BrokerRejected(BrokerError):
    """Tastytrade rejected the request as malformed (400) or in an unsupported API version (406)."""

    reason = "BROKER_REJECTED"


class BrokerBadResponse(BrokerError):
    """Tastytrade answered with a body that does not match the documented format."""

    reason = "BROKER_BAD_RESPONSE"


class AccountNotFound(BrokerError):
    """The account is not linked to the caller, or Tastytrade does not know it."""

    reason = "ACCOUNT_NOT_FOUND"


class SymbolNotFound(BrokerError):
    """Tastytrade does not know the instrument or has no option chain for it."""

    reason = "SYMBOL_NOT_FOUND"


class InvalidArgument(BrokerError):
    """A request field is missing or malformed.

    Attributes:
        field: The request field at fault, for ``BadRequest.field_violations``.
    """

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(message, metadata={"field": field})
        self.field = field
        if reason is not None:
            self.reason = reason


class ContractExpired(BrokerError):
    """The option has expired, so it has no time to expiry to give a model."""

    reason = "CONTRACT_EXPIRED"


class EnvironmentNotConfigured(BrokerError):
    """The requested broker environment (production, sandbox, paper) is not enabled on this deployment."""

    reason = "BROKER_ENVIRONMENT_NOT_CONFIGURED"


class SecretUnreadable(BrokerError):
    """A stored credential cannot be decrypted (wrong key version, tampered ciphertext)."""

    reason = "BROKER_CREDENTIAL_UNREADABLE"
