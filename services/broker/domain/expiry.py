"""Expiry conventions: equity options stop trading at 16:00 New York time; time to expiry is ACT/365."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
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
