"""Settings of the portfolio service (``PORTFOLIO_*``), read once at start-up."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from services.platform.settings import Secret, ServerSettings, env
from services.portfolio.app import AppSettings

__all__ = ["PortfolioSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PortfolioSettings(ServerSettings):
    """Everything the portfolio service can be told; required values stop start-up when missing.

    Attributes:
        database_url: PostgreSQL DSN (risk limits, alerts, snapshots).
        db_schema: Schema holding the service's tables.
        rabbitmq_url: AMQP URL of the bus (risk alerts).
        broker_target: ``host:port`` of the broker service.
        marketdata_target: ``host:port`` of the market data service.
        user_target: ``host:port`` of the user service (JWKS).
        jwt_issuer: Expected ``iss`` of access tokens.
        jwt_audience: Expected ``aud`` of access tokens.
        benchmark: Default beta-weighting benchmark.
        snapshot_interval_seconds: Least time between recorded snapshots of an account.
        risk_check_seconds: Period of the risk monitor.
    """

    env_prefix: ClassVar[str] = "PORTFOLIO_"
    port: int = env("PORT", default=8083, ge=0, le=65535)
    database_url: Secret = env("DATABASE_URL", help="PostgreSQL DSN, e.g. postgresql://user:pw@host:5432/db")
    db_schema: str = env("DB_SCHEMA", default="portfolio")
    rabbitmq_url: Secret = env("RABBITMQ_URL", help="AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/")
    broker_target: str = env("BROKER_TARGET", help="host:port of the broker service")
    marketdata_target: str = env("MARKETDATA_TARGET", help="host:port of the market data service")
    user_target: str = env("USER_TARGET", help="host:port of the user service")
    jwt_issuer: str = env("JWT_ISSUER", default="https://user.tastyplat")
    jwt_audience: str = env("JWT_AUDIENCE", default="tastyplat")
    benchmark: str = env("BENCHMARK", default="SPY")
    snapshot_interval_seconds: float = env("SNAPSHOT_INTERVAL_SECONDS", default=300.0, ge=0.0)
    risk_check_seconds: float = env("RISK_CHECK_SECONDS", default=60.0, ge=0.05)

    def app_settings(self) -> AppSettings:
        """The application's behaviour settings."""
        return AppSettings(
            benchmark=self.benchmark,
            snapshot_interval_seconds=self.snapshot_interval_seconds,
            risk_check_seconds=self.risk_check_seconds,
        )
