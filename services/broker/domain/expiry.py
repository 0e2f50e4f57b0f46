"""Expiry conventions: equity options stop trading at 16:00 New York time; time to expiry is ACT/365."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from services.broker.domain.errors import ContractExpired

NEW_YORK = ZoneInfo("America/New_York")
EQUITY_OPTION_CLOSE = time(16, 0)
SECONDS_PER_YEAR = 365 * 24 * 60 * 60


def close_on(expiration_date: date, close: time = EQUITY_OPTION_CLOSE) -> datetime:
    """The expiry instant (UTC) for a date: the New York close, so 20:00 UTC in summer, 21:00 in winter."""
    return datetime.combine(expiration_date, close, tzinfo=NEW_YORK).astimezone(timezone.utc)


def time_to_expiry(expires_at: datetime, now: datetime) -> float:
    """Years from ``now`` to ``expires_at`` counted ACT/365 (actual seconds over 365 days of seconds).

    Args:
        expires_at: The contract's expiry instant (timezone-aware).
        now: The valuation instant (timezone-aware).

    Raises:
        ValueError: Either instant is naive.
        ContractExpired: ``now`` is at or after the expiry, so no positive time remains.
    """
    if expires_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("time_to_expiry needs timezone-aware instants")
    seconds = (expires_at - now).total_seconds()
    if seconds <= 0:
        raise ContractExpired(f"the contract expired at {expires_at.isoformat()}")
    return seconds / SECONDS_PER_YEAR


def third_friday(year: int, month: int) -> date:
    """The third Friday of a month: the standard monthly equity option expiration."""
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def fridays_after(day: date, count: int) -> list[date]:
    """The next ``count`` Fridays strictly after ``day`` (weekly expirations)."""
    first = day + timedelta(days=(4 - day.weekday()) % 7 or 7)
    return [first + timedelta(weeks=i) for i in range(count)]


def monthlies_after(day: date, count: int) -> list[date]:
    """The next ``count`` third-Friday expirations strictly after ``day``."""
    found: list[date] = []
    year, month = day.year, day.month
    while len(found) < count:
        candidate = third_friday(year, month)
        if candidate > day:
            found.append(candidate)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found
