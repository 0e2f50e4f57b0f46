"""Settings of the reporting service (``REPORTING_*``), read once at start-up."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from services.platform.settings import ServerSettings, env
from services.reporting.app import ReportingSettings

__all__ = ["ReportingServiceSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportingServiceSettings(ServerSettings):
    """Everything the reporting service can be told; required values stop start-up when missing.

    Attributes:
        portfolio_target: ``host:port`` of the portfolio service.
        broker_target: ``host:port`` of the broker service.
        deltamonitor_target: ``host:port`` of the delta monitor.
        user_target: ``host:port`` of the user service (JWKS).
        jwt_issuer: Expected ``iss`` of access tokens.
        jwt_audience: Expected ``aud`` of access tokens.
        archive_dir: Where reports are built and kept for retries (a private temporary directory when empty).
        archive_ttl_seconds: How long a report stays available to a retry.
        reports_per_user: Reports one user may have in progress.
    """

    env_prefix: ClassVar[str] = "REPORTING_"
    port: int = env("PORT", default=8088, ge=0, le=65535)
    portfolio_target: str = env("PORTFOLIO_TARGET", help="host:port of the portfolio service")
    broker_target: str = env("BROKER_TARGET", help="host:port of the broker service")
    deltamonitor_target: str = env("DELTAMONITOR_TARGET", help="host:port of the delta monitor")
    user_target: str = env("USER_TARGET", help="host:port of the user service")
    jwt_issuer: str = env("JWT_ISSUER", default="https://user.tastyplat")
    jwt_audience: str = env("JWT_AUDIENCE", default="tastyplat")
    archive_dir: str = env("ARCHIVE_DIR", default="")
    archive_ttl_seconds: float = env("ARCHIVE_TTL_SECONDS", default=3600.0, ge=1.0)
    reports_per_user: int = env("REPORTS_PER_USER", default=2, ge=1)

    def app_settings(self) -> ReportingSettings:
        """The application's behaviour settings."""
        return ReportingSettings(reports_per_user=self.reports_per_user)
