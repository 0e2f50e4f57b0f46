"""Market hours and holidays from ``exchange-calendars`` (XNYS by default), answered from a session table."""

from __future__ import annotations

import bisect
import warnings
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

__all__ = ["ExchangeCalendar"]

_SPAN = timedelta(days=400)


class ExchangeCalendar:
    """Whether an exchange is open: regular sessions, early closes and holidays of the maintained calendar.

    The sessions are loaded once into sorted arrays of open/close instants, so a check is a binary search,
    not a pandas call; the table is rebuilt when asked about a time beyond it.
    """

    def __init__(self, name: str = "XNYS", *, around: datetime) -> None:
        """Load the calendar ``name`` for the year and more around ``around``.

        Raises:
            exchange_calendars.errors.InvalidCalendarName: an unknown calendar.
        """
        self.name = name
        self._load(around)

    def _load(self, around: datetime) -> None:
        # exchange-calendars 4.13 reads Series.values, which pandas 3.1 deprecates with a Pandas4Warning; the
        # values it reads are UTC instants either way, so the warning is silenced for this call only.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", getattr(pd.errors, "Pandas4Warning", FutureWarning))
            import exchange_calendars

            start = (around - timedelta(days=10)).date().isoformat()
            end = (around + _SPAN).date().isoformat()
            calendar = exchange_calendars.get_calendar(self.name, start=start, end=end)
            schedule = calendar.schedule
            opens = schedule["open"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
            closes = schedule["close"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
        self._opens = [int(v) for v in opens]
        self._closes = [int(v) for v in closes]
        self._first = self._opens[0] - 86_400 * 10**9
        self._last = self._closes[-1] + 86_400 * 10**9

    def is_open(self, when: datetime) -> bool:
        """Tell whether the exchange is in a trading session at ``when`` (timezone-aware)."""
        nanos = int(when.timestamp() * 1e9)
        if not self._first <= nanos <= self._last:
            self._load(when)
        index = bisect.bisect_right(self._opens, nanos) - 1
        return index >= 0 and nanos < self._closes[index]
