"""Per-call context carried in contextvars: the request id and the caller's deadline."""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar

__all__ = [
    "current_deadline",
    "current_request_id",
    "new_request_id",
    "remaining_time",
    "sanitize_request_id",
    "set_call_context",
]

_request_id: ContextVar[str | None] = ContextVar("tastyplat_request_id", default=None)
# Absolute time.monotonic() by which the current inbound call must end; None when it has no deadline.
_deadline: ContextVar[float | None] = ContextVar("tastyplat_deadline", default=None)

# A client-supplied id is echoed into logs and trailers, so accept only a short, inert token.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def new_request_id() -> str:
    """Return a fresh request id (a uuid4 in its 36-character form)."""
    return str(uuid.uuid4())


def sanitize_request_id(candidate: str | bytes | None) -> str | None:
    """Return ``candidate`` if it is usable as a request id, else None.

    Usable means 1..128 characters of ``[A-Za-z0-9._:-]`` starting with a letter or digit: anything else
    (control characters, JSON, very long values) would let a client forge or flood log lines.
    """
    if isinstance(candidate, bytes):
        try:
            candidate = candidate.decode("ascii")
        except UnicodeDecodeError:
            return None
    if candidate is None or not _SAFE_ID.match(candidate):
        return None
    return candidate


def set_call_context(request_id: str, time_remaining: float | None) -> None:
    """Record the current call's request id and deadline (the server interceptor calls this per call)."""
    _request_id.set(request_id)
    _deadline.set(None if time_remaining is None else time.monotonic() + time_remaining)


def current_request_id() -> str | None:
    """Return the request id of the call being served in this context, or None outside a call."""
    return _request_id.get()


def current_deadline() -> float | None:
    """Return the inbound call's deadline as a ``time.monotonic()`` value, or None when it has none."""
    return _deadline.get()


def remaining_time() -> float | None:
    """Return the seconds left before the inbound call's deadline (may be <= 0), or None when it has none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()
