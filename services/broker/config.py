"""Settings of the broker service (``BROKER_*`` environment variables), read once in ``__main__``."""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from services.platform.settings import InvalidSettingError, MissingSettingError, Secret, ServerSettings, env

__all__ = ["BrokerSettings"]

_STORAGES = ("postgres", "memory")
_ENVIRONMENTS = ("production", "sandbox", "paper")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BrokerSettings(ServerSettings):
    """Everything the broker service reads from its environment.

    Attributes:
        port: gRPC port (``BROKER_PORT``, default 8081).
        storage: ``postgres`` (default) or ``memory`` (``BROKER_STORAGE``); never chosen silently.
        database_url: PostgreSQL DSN (``BROKER_DATABASE_URL``), required with postgres storage.
        database_schema: Schema of the service's tables (``BROKER_DATABASE_SCHEMA``).
        secret_keys: AES-256-GCM keys sealing refresh tokens, ``<version>:<base64>[,...]``
            (``BROKER_SECRET_KEYS``); the highest version seals.
        environments: Brokers served, comma separated from production, sandbox, paper (``BROKER_ENVIRONMENTS``).
        auto_link_paper: Give a user with no link the paper demo account on first use (``BROKER_AUTO_LINK_PAPER``).
        tastytrade_client_id: OAuth client id (``BROKER_TASTYTRADE_CLIENT_ID``), sent with refreshes when set.
        tastytrade_client_secret: OAuth client secret of the platform's application
            (``BROKER_TASTYTRADE_CLIENT_SECRET``), required when production or sandbox is enabled.
        tastytrade_production_url, tastytrade_sandbox_url: Host overrides (tests point them at a fake).
        tastytrade_user_agent: ``<product>/<version>`` sent to Tastytrade (it answers 401 without one).
        tastytrade_timeout_seconds: Per-attempt HTTP timeout.
        tastytrade_max_attempts: Attempts per request on 429, 5xx and timeouts (first included).
        tastytrade_initial_backoff_seconds, tastytrade_max_backoff_seconds: Exponential backoff bounds.
        tastytrade_breaker_failures: Consecutive failures that open the circuit.
        tastytrade_breaker_reset_seconds: How long the circuit stays open before a probe.
        tastytrade_requests_per_second, tastytrade_burst: The shared request budget.
        tastytrade_budget_wait_seconds: Longest a request waits for budget.
        tastytrade_rate_limit_pause_seconds: How long every request pauses after a 429.
        paper_risk_free_rate: The rate the paper broker publishes.
        stale_after_seconds: Age up to which last good balances/positions are served while Tastytrade is down.
        history_ttl_seconds: How long a fetched history serves further pages of the same query.
        jwt_issuer, jwt_audience: What callers' access tokens must carry (the user service's values).
        user_service_target: ``host:port`` of the user service, whose ``GetJwks`` publishes the token keys.
    """

    env_prefix: ClassVar[str] = "BROKER_"
    port: int = env("PORT", default=8081, ge=0, le=65535, help="listen port")
    storage: str = env("STORAGE", default="postgres", help="postgres or memory")
    database_url: Secret | None = env("DATABASE_URL", default=None, help="PostgreSQL DSN")
    database_schema: str = env("DATABASE_SCHEMA", default="broker_service")
    secret_keys: Secret = env("SECRET_KEYS", help="<version>:<base64 32-byte key>[,...]; sealing refresh tokens")
    environments: tuple[str, ...] = env("ENVIRONMENTS", default=("production",), help="production,sandbox,paper")
    auto_link_paper: bool = env("AUTO_LINK_PAPER", default=False)
    tastytrade_client_id: str | None = env("TASTYTRADE_CLIENT_ID", default=None)
    tastytrade_client_secret: Secret | None = env("TASTYTRADE_CLIENT_SECRET", default=None)
    tastytrade_production_url: str | None = env("TASTYTRADE_PRODUCTION_URL", default=None)
    tastytrade_sandbox_url: str | None = env("TASTYTRADE_SANDBOX_URL", default=None)
    tastytrade_user_agent: str = env("TASTYTRADE_USER_AGENT", default="tastyplat/0.1.0")
    tastytrade_timeout_seconds: float = env("TASTYTRADE_TIMEOUT_SECONDS", default=10.0, ge=0.1)
    tastytrade_max_attempts: int = env("TASTYTRADE_MAX_ATTEMPTS", default=4, ge=1, le=10)
    tastytrade_initial_backoff_seconds: float = env("TASTYTRADE_INITIAL_BACKOFF_SECONDS", default=0.25, ge=0.0)
    tastytrade_max_backoff_seconds: float = env("TASTYTRADE_MAX_BACKOFF_SECONDS", default=4.0, ge=0.0)
    tastytrade_breaker_failures: int = env("TASTYTRADE_BREAKER_FAILURES", default=5, ge=1)
    tastytrade_breaker_reset_seconds: float = env("TASTYTRADE_BREAKER_RESET_SECONDS", default=30.0, ge=0.1)
    tastytrade_requests_per_second: float = env("TASTYTRADE_REQUESTS_PER_SECOND", default=10.0, ge=0.1)
    tastytrade_burst: float = env("TASTYTRADE_BURST", default=20.0, ge=1.0)
    tastytrade_budget_wait_seconds: float = env("TASTYTRADE_BUDGET_WAIT_SECONDS", default=2.0, ge=0.0)
    tastytrade_rate_limit_pause_seconds: float = env("TASTYTRADE_RATE_LIMIT_PAUSE_SECONDS", default=2.0, ge=0.0)
    paper_risk_free_rate: str = env("PAPER_RISK_FREE_RATE", default="0.0425")
    stale_after_seconds: float = env("STALE_AFTER_SECONDS", default=900.0, ge=0.0)
    history_ttl_seconds: float = env("HISTORY_TTL_SECONDS", default=60.0, ge=0.0)
    jwt_issuer: str = env("JWT_ISSUER", default="https://user.tastyplat")
    jwt_audience: str = env("JWT_AUDIENCE", default="tastyplat")
    user_service_target: str = env("USER_SERVICE_TARGET", default="127.0.0.1:8084")

    def __post_init__(self) -> None:
        def name(field: str) -> str:
            return type(self).variable_name(field)

        if self.storage not in _STORAGES:
            raise InvalidSettingError(name("storage"), f"expected one of {', '.join(_STORAGES)}, got {self.storage!r}")
        if self.storage == "postgres" and self.database_url is None:
            raise MissingSettingError(name("database_url"), "PostgreSQL DSN, required when BROKER_STORAGE=postgres")
        unknown = [e for e in self.environments if e not in _ENVIRONMENTS]
        if unknown or not self.environments:
            raise InvalidSettingError(name("environments"), f"expected some of {', '.join(_ENVIRONMENTS)}, got {self.environments!r}")
        if {"production", "sandbox"} & set(self.environments) and self.tastytrade_client_secret is None:
            raise MissingSettingError(
                name("tastytrade_client_secret"), "the OAuth client secret, required when production or sandbox is enabled"
            )
        if self.auto_link_paper and "paper" not in self.environments:
            raise InvalidSettingError(name("auto_link_paper"), "needs paper among BROKER_ENVIRONMENTS")
        try:
            rate = Decimal(self.paper_risk_free_rate)
            if not rate.is_finite() or not Decimal("-0.5") < rate < 1:
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            raise InvalidSettingError(name("paper_risk_free_rate"), "expected an annual fraction such as 0.0425") from None
