"""Throttling of repeated failures (logins per account and per client address, reset requests).

Theory of operation: each key (``account:<email>``, ``address:<ip>``) has a record counting failures in a
sliding window that starts with the first failure. Reaching ``max_failures`` locks the key for a lockout
that doubles with each consecutive lockout, capped at ``max_lockout``; the count then starts again. A quiet
period (one ``window`` after the lock or the window ended) forgets the key entirely. A successful login
clears the account's record but never the address's, so an attacker cannot reset the address counter by
logging in to an account of their own between guesses. Keys for accounts that do not exist are throttled the
same way, so the throttle does not reveal which accounts exist.

Transitions (``after_failure``)::

    state                          event     next
    -----------------------------  --------  -------------------------------------------------
    none / forgotten               failure   failures=1, window starts now
    counting, failures+1 < max     failure   failures+1
    counting, failures+1 == max    failure   locked until now + lockout(n), failures=0, lockouts=n
    locked (now < locked_until)    failure   unchanged (the caller was refused before checking)
    any                            success   none (account keys only)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["FailureRecord", "ThrottlePolicy", "account_key", "address_key"]


def account_key(email: str) -> str:
    """Throttle key for a login e-mail (canonical form, whether or not the account exists)."""
    return f"account:{email}"


def address_key(address: str) -> str:
    """Throttle key for a client address; IPv6 clients are keyed by their /64, which one host controls."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address[:128]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"address:{ip}"


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """Failures of one key.

    Attributes:
        failures: Failures in the current window.
        window_start: First failure of the current window.
        locked_until: End of the current lockout, or None.
        lockouts: Consecutive lockouts so far (the next one lasts twice as long).
    """

    failures: int
    window_start: datetime
    locked_until: datetime | None = None
    lockouts: int = 0


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many failures a key may have and what a lockout costs.

    Attributes:
        max_failures: Failures within ``window`` that lock the key.
        window: Length of the counting window.
        base_lockout: First lockout; each consecutive one doubles.
        max_lockout: Longest lockout.
    """

    max_failures: int
    window: timedelta
    base_lockout: timedelta
    max_lockout: timedelta

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("max_failures must be >= 1")
        if min(self.window, self.base_lockout, self.max_lockout) <= timedelta(0):
            raise ValueError("window and lockouts must be positive")

    def retry_after(self, record: FailureRecord | None, now: datetime) -> float | None:
        """Seconds until the key may try again, or None if it may try now."""
        if record is None or record.locked_until is None or now >= record.locked_until:
            return None
        return (record.locked_until - now).total_seconds()

    def is_forgotten(self, record: FailureRecord, now: datetime) -> bool:
        """Whether the record is old enough to drop (no lock, window and quiet period over)."""
        last = max(record.window_start, record.locked_until or record.window_start)
        return now >= last + self.window

    def after_failure(self, record: FailureRecord | None, now: datetime) -> FailureRecord:
        """Return the record after one more failure at ``now`` (see the module's table)."""
        if record is not None and self.retry_after(record, now) is not None:
            return record
        if record is None or self.is_forgotten(record, now):
            record = FailureRecord(failures=0, window_start=now)
        elif now >= record.window_start + self.window:
            record = FailureRecord(failures=0, window_start=now, lockouts=record.lockouts)
        failures = record.failures + 1
        if failures < self.max_failures:
            return FailureRecord(failures, record.window_start, None, record.lockouts)
        lockouts = record.lockouts + 1
        lockout = min(self.base_lockout * (2 ** min(lockouts - 1, 30)), self.max_lockout)
        return FailureRecord(failures=0, window_start=now, locked_until=now + lockout, lockouts=lockouts)
