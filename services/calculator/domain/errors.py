"""Typed errors of the calculator; each leaf inherits a platform category that fixes its gRPC code."""

from __future__ import annotations

from collections.abc import Sequence

from services.platform.errors import DomainError, FieldViolation, InvalidArgument

__all__ = [
    "BatchTooLarge",
    "CalculatorError",
    "ColumnLengthMismatch",
    "FieldInvalid",
    "FieldRequired",
    "MalformedRequest",
    "NoConvergence",
    "PriceAboveMaximum",
    "PriceBelowIntrinsic",
    "UnderlyingPriceMismatch",
    "invalid_argument",
]


class CalculatorError(DomainError):
    """Base of every error the calculator raises on purpose (never raised itself)."""

    reason = "CALCULATOR_ERROR"


class FieldRequired(CalculatorError, InvalidArgument):
    """A required field or column is missing (an enum left UNSPECIFIED, an empty column, a zero multiplier)."""

    reason = "FIELD_REQUIRED"


class FieldInvalid(CalculatorError, InvalidArgument):
    """A field or batch element holds a value the model cannot take (NaN, infinite, out of range)."""

    reason = "FIELD_INVALID"


class BatchTooLarge(CalculatorError, InvalidArgument):
    """A batch holds more elements than the documented limit (the message and metadata name the limit)."""

    reason = "BATCH_TOO_LARGE"


class ColumnLengthMismatch(CalculatorError, InvalidArgument):
    """An input column's length is neither the batch length nor 1."""

    reason = "COLUMN_LENGTH_MISMATCH"


class PriceBelowIntrinsic(CalculatorError, InvalidArgument):
    """The option price is at or below intrinsic value, so no volatility reproduces it."""

    reason = "PRICE_BELOW_INTRINSIC"


class PriceAboveMaximum(CalculatorError, InvalidArgument):
    """The option price is at or above the no-arbitrage maximum, so no volatility reproduces it."""

    reason = "PRICE_ABOVE_MAXIMUM"


class NoConvergence(CalculatorError, InvalidArgument):
    """The price lies within rounding of a bound, so it does not pin down a volatility."""

    reason = "NO_CONVERGENCE"


class UnderlyingPriceMismatch(CalculatorError, InvalidArgument):
    """Two positions on one underlying give different underlying prices or betas."""

    reason = "UNDERLYING_PRICE_MISMATCH"


class MalformedRequest(CalculatorError, InvalidArgument):
    """The request bytes are not a valid serialized message of the RPC's request type."""

    reason = "MALFORMED_REQUEST"


# When one request has violations of several kinds, the error carries the first reason here that any of them
# has: shape problems before missing fields before bad values (each violation keeps its own reason).
_PRIORITY: tuple[type[CalculatorError], ...] = (
    ColumnLengthMismatch,
    FieldRequired,
    FieldInvalid,
    UnderlyingPriceMismatch,
    PriceBelowIntrinsic,
    PriceAboveMaximum,
    NoConvergence,
)


def invalid_argument(message: str, violations: Sequence[FieldViolation], **metadata: str) -> CalculatorError:
    """Build the error for a list of violations, each carrying its own ``reason``.

    The error's class (hence ``ErrorInfo.reason``) is the most structural reason among the violations:
    COLUMN_LENGTH_MISMATCH, then FIELD_REQUIRED, then FIELD_INVALID, then the others.

    Args:
        message: Human summary for the status message.
        violations: The violations to send; at least one.
        **metadata: ``ErrorInfo.metadata`` entries.

    Returns:
        The error to raise (``FieldInvalid`` when no violation names a known reason).
    """
    reasons = {v.reason for v in violations}
    cls = next((c for c in _PRIORITY if c.reason in reasons), FieldInvalid)
    return cls(message, field_violations=violations, metadata=metadata)
