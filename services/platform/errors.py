"""Typed domain exceptions: the categories every service's errors inherit from (pure Python, no grpc).

A service declares one base for its domain (``class BrokerError(DomainError)``) and leaves named for what
happened, each also inheriting one category that fixes its gRPC code::

    class AccountNotFound(BrokerError, NotFound):
        reason = "ACCOUNT_NOT_FOUND"

The category -> gRPC code table lives in ``services.platform.error_mapping``; domain code never sees grpc.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "Aborted",
    "AlreadyExists",
    "DeadlineExceeded",
    "DomainError",
    "FailedPrecondition",
    "FieldError",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "NotImplementedYet",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "is_valid_reason",
]

# google.rpc.ErrorInfo.reason: UPPER_SNAKE_CASE, at most 63 characters.
_REASON = re.compile(r"^[A-Z][A-Z0-9_]{0,61}[A-Z0-9]$")


def is_valid_reason(reason: str) -> bool:
    """Tell whether ``reason`` is a valid ``ErrorInfo.reason`` (UPPER_SNAKE_CASE, 2..63 characters)."""
    return bool(_REASON.match(reason))


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request, sent as ``google.rpc.BadRequest.FieldViolation``.

    Attributes:
        field: Path to the field in the request, proto field names joined by dots
            (``legs[2].strike``).
        description: What is wrong with it, for a human.
        reason: Optional UPPER_SNAKE code for the violation (``ErrorInfo``-style), empty when none.
    """

    field: str
    description: str
    reason: str = ""


class DomainError(Exception):
    """Base of every typed domain exception; raise a category subclass, never this class directly.

    Attributes:
        reason: UPPER_SNAKE ``ErrorInfo.reason``; a class attribute that an instance may override.
        message: The human message sent to the client as the status message.
        metadata: String pairs sent as ``ErrorInfo.metadata`` (ids, limits: nothing secret).
        field_violations: Bad request fields, sent as ``BadRequest`` (meaningful for InvalidArgument).
        retry_after: Seconds after which a retry may succeed, sent as ``RetryInfo``; None when unknown.
    """

    reason: ClassVar[str] = "DOMAIN_ERROR"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        reason = cls.__dict__.get("reason")
        if reason is not None and not (isinstance(reason, str) and is_valid_reason(reason)):
            raise TypeError(f"{cls.__qualname__}.reason must be UPPER_SNAKE_CASE, got {reason!r}")

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[FieldViolation] = (),
        retry_after: float | None = None,
    ) -> None:
        """Create the error.

        Args:
            message: Human message for the client; say what was wrong and with which value.
            reason: Overrides the class's ``reason`` for this instance (UPPER_SNAKE_CASE).
            metadata: ``ErrorInfo.metadata``; keys and values are converted to ``str``.
            field_violations: ``BadRequest`` field violations.
            retry_after: Seconds before a retry may succeed (``RetryInfo.retry_delay``).

        Raises:
            ValueError: ``reason`` is not UPPER_SNAKE_CASE or ``retry_after`` is negative.
        """
        super().__init__(message)
        if reason is not None:
            if not is_valid_reason(reason):
                raise ValueError(f"reason must be UPPER_SNAKE_CASE, got {reason!r}")
            self.reason = reason  # type: ignore[misc]  # per-instance override of the ClassVar
        if retry_after is not None and not retry_after >= 0.0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
        self.message = message
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in (metadata or {}).items()}
        self.field_violations: list[FieldViolation] = list(field_violations)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class InvalidArgument(DomainError):
    """The request itself is wrong, whatever the system's state (INVALID_ARGUMENT)."""

    reason = "INVALID_ARGUMENT"


class FieldError(InvalidArgument):
    """An INVALID_ARGUMENT about one request field, carrying the matching BadRequest violation.

    A service's field errors inherit it next to their service base::

        class _FieldError(BrokerError, FieldError): ...
        class FieldRequired(_FieldError):
            reason = "FIELD_REQUIRED"
    """

    def __init__(self, field: str, description: str) -> None:
        """Create the error: the message is ``"<field>: <description>"``.

        Args:
            field: Path of the field in the request (``legs[2].strike``).
            description: What is wrong with it.
        """
        super().__init__(
            f"{field}: {description}",
            field_violations=[FieldViolation(field=field, description=description, reason=self.reason)],
        )
        self.field = field


class NotFound(DomainError):
    """A named resource does not exist or is not visible to the caller (NOT_FOUND)."""

    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """The resource the request creates already exists (ALREADY_EXISTS)."""

    reason = "ALREADY_EXISTS"


class PermissionDenied(DomainError):
    """The caller is known but may not do this (PERMISSION_DENIED)."""

    reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    """The caller's credentials are missing, invalid or expired (UNAUTHENTICATED)."""

    reason = "UNAUTHENTICATED"


class FailedPrecondition(DomainError):
    """The system is not in the state the request needs; retrying as is will not help (FAILED_PRECONDITION)."""

    reason = "FAILED_PRECONDITION"


class ResourceExhausted(DomainError):
    """A quota, rate limit or size limit was hit (RESOURCE_EXHAUSTED)."""

    reason = "RESOURCE_EXHAUSTED"


class Unavailable(DomainError):
    """A dependency is down for now; the call may be retried (UNAVAILABLE)."""

    reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """The work did not finish in the time it was given (DEADLINE_EXCEEDED)."""

    reason = "DEADLINE_EXCEEDED"


class Aborted(DomainError):
    """A concurrency conflict (stale version, lost race); retry the whole read-modify-write (ABORTED)."""

    reason = "ABORTED"


class NotImplementedYet(DomainError):
    """An RPC of the contract whose behaviour a later issue delivers (UNIMPLEMENTED)."""

    reason = "NOT_IMPLEMENTED_YET"

    def __init__(self, issue: int, subject: str) -> None:
        """Create the error naming the issue that will implement the RPC.

        Args:
            issue: Number of the issue that implements it.
            subject: That issue's subject, e.g. ``"Live data: the Tastytrade integration"``.
        """
        super().__init__(
            f"not implemented yet: issue #{issue} ({subject})",
            metadata={"issue": str(issue)},
        )
        self.issue = issue
        self.subject = subject
