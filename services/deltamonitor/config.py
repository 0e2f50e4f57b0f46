"""Settings of the delta monitor (``DELTAMONITOR_*``), read once at start-up."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import ClassVar

from services.deltamonitor.app import AppSettings
from services.deltamonitor.domain.book import BookSettings
from services.platform.settings import InvalidSettingError, Secret, ServerSettings, env

__all__ = ["DeltaMonitorSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeltaMonitorSettings(ServerSettings):
    """Everything the delta monitor can be told; required values stop start-up when missing (distributed mode).

    Attributes:
        database_url: PostgreSQL DSN (distributed mode; embedded mode uses the embedded database).
        db_schema: Schema holding the service's tables.
        rabbitmq_url: AMQP URL of the bus (distributed mode).
        broker_target: ``host:port`` of the broker service (positions, betas).
        user_target: ``host:port`` of the user service (JWKS for access tokens).
        jwt_issuer: Expected ``iss`` of access tokens.
        jwt_audience: Expected ``aud`` of access tokens.
        pricer: ``core_ext`` (the compiled kernel) or ``numpy`` (European closed form, explicit choice only).
        parallel_ticks: Let a tick's American pricing use core_ext's threads (``TASTYPLAT_CORE_THREADS``); off,
            each tick is priced on the event loop's thread alone, which keeps the alert latency's tail short on a
            busy machine (see ``CoreExtPricer``).
        risk_free_rate: Rate used for pricing and the Whalley-Wilmott discount.
        default_stale_after_seconds: Staleness limit of watches that leave it unset; 0 disables.
        calendar: exchange-calendars name of the market whose hours gate stale alerts.
        tick_patterns: Bus topic patterns of the market data quote and Greeks events.
        watch_limit: Watches per user.
        streams_per_user: Open StreamAlerts per user.
        heartbeat_seconds: Heartbeat period of idle alert streams.
        stale_check_seconds: Period of the stale-data check.
        vol_of_vol_points: Assumed daily standard deviation of implied vol (vol points) for forecasts.
        ownership: ``leases`` (replicas share the watched accounts by partition leases in PostgreSQL; a
            replica that stops renewing loses its partitions to the others) or ``all`` (this process evaluates
            every watch: embedded mode, or one replica by choice).
        lease_seconds: How long a partition lease lasts without renewal (renewed every third of it); a killed
            replica's accounts are taken over within about this long.
        gc_freeze: Move the objects alive after start-up (watches, positions, the book) out of the garbage
            collector's reach, so full collections stop walking them between ticks: measured in
            benchmarks/deltamonitor, alert p99 52-57 ms -> 21-22 ms at 4,500 ticks/s.
    """

    env_prefix: ClassVar[str] = "DELTAMONITOR_"
    port: int = env("PORT", default=8086, ge=0, le=65535)
    database_url: Secret = env("DATABASE_URL", help="PostgreSQL DSN, e.g. postgresql://user:pw@host:5432/db")
    db_schema: str = env("DB_SCHEMA", default="deltamonitor")
    rabbitmq_url: Secret = env("RABBITMQ_URL", help="AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/")
    broker_target: str = env("BROKER_TARGET", help="host:port of the broker service")
    user_target: str = env("USER_TARGET", help="host:port of the user service")
    jwt_issuer: str = env("JWT_ISSUER", default="https://user.tastyplat")
    jwt_audience: str = env("JWT_AUDIENCE", default="tastyplat")
    pricer: str = env("PRICER", default="core_ext")
    parallel_ticks: bool = env("PARALLEL_TICKS", default=False)
    risk_free_rate: float = env("RISK_FREE_RATE", default=0.045, ge=-0.1, le=1.0)
    default_stale_after_seconds: float = env("DEFAULT_STALE_AFTER_SECONDS", default=120.0, ge=0.0)
    calendar: str = env("CALENDAR", default="XNYS")
    tick_patterns: tuple[str, ...] = env("TICK_PATTERNS", default=("marketdata.quotes.*", "marketdata.greeks.*"))
    watch_limit: int = env("WATCH_LIMIT", default=200, ge=1)
    streams_per_user: int = env("STREAMS_PER_USER", default=5, ge=1)
    heartbeat_seconds: float = env("HEARTBEAT_SECONDS", default=15.0, ge=0.05)
    stale_check_seconds: float = env("STALE_CHECK_SECONDS", default=5.0, ge=0.05)
    vol_of_vol_points: float = env("VOL_OF_VOL_POINTS", default=1.0, ge=0.0)
    ownership: str = env("OWNERSHIP", default="leases", help="leases or all")
    lease_seconds: float = env("LEASE_SECONDS", default=10.0, ge=0.3, le=600.0)
    gc_freeze: bool = env("GC_FREEZE", default=True)

    def __post_init__(self) -> None:
        if self.ownership not in ("leases", "all"):
            raise InvalidSettingError(type(self).variable_name("ownership"), f"expected leases or all, got {self.ownership!r}")

    def app_settings(self) -> AppSettings:
        """The application's behaviour settings."""
        return AppSettings(
            book=BookSettings(
                rate=self.risk_free_rate,
                default_stale_after=timedelta(seconds=self.default_stale_after_seconds),
                vol_of_vol_points=self.vol_of_vol_points,
            ),
            watch_limit=self.watch_limit,
            streams_per_user=self.streams_per_user,
            heartbeat_seconds=self.heartbeat_seconds,
            stale_check_seconds=self.stale_check_seconds,
            lease_seconds=self.lease_seconds if self.ownership == "leases" else None,
        )
