"""Builders for delta monitor tests: positions, watches and a book on the NumPy pricer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.domain.book import Book, BookSettings
from services.deltamonitor.domain.model import (
    AdaptiveBand,
    HeldPosition,
    Metric,
    Severity,
    StaticBand,
    Target,
    UnderlyingTarget,
    Watch,
)

NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
EXPIRY = datetime(2024, 4, 19, 20, 0, tzinfo=UTC)
ACCOUNT = "5WW00001"
USER = "user-1"
OPTION = "SPY   240419C00480000"
STREAMER = ".SPY240419C480"


def call_position(quantity: float = 10.0, account: str = ACCOUNT, strike: float = 480.0, underlying: str = "SPY",
                  symbol: str = OPTION, streamer: str = STREAMER) -> HeldPosition:
    """A long call position."""
    return HeldPosition(account, symbol, underlying, quantity, 100.0, True, True, strike, EXPIRY, True, streamer)


def shares(quantity: float, account: str = ACCOUNT, symbol: str = "SPY") -> HeldPosition:
    """A share position."""
    return HeldPosition(account, symbol, symbol, quantity, 1.0)


def watch(
    band: StaticBand | AdaptiveBand = StaticBand(-100.0, 300.0),
    *,
    watch_id: str = "w1",
    target: Target = UnderlyingTarget("SPY"),
    metric: Metric = Metric.SHARES,
    hysteresis: float = 0.2,
    cooldown: timedelta = timedelta(0),
    stale_after: timedelta | None = None,
    account: str = ACCOUNT,
    benchmark: str = "",
) -> Watch:
    """A watch of USER."""
    return Watch(watch_id, USER, account, "", target, metric, benchmark, band, hysteresis, cooldown, stale_after,
                 Severity.WARNING, NOW, NOW)


def book(watches: list[Watch], positions: list[HeldPosition], **settings: object) -> Book:
    """A book on the NumPy pricer with the option's IV known."""
    b = Book(watches, positions, pricer=NumpyBlackScholesPricer(), settings=BookSettings(**settings))  # type: ignore[arg-type]
    b.on_greeks(STREAMER, 0.15, NOW)
    return b
