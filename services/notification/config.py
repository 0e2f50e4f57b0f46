"""Settings of the notification service (``NOTIFICATION_*``), read once at start-up."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import ClassVar

from services.notification.app import NotificationAppSettings
from services.platform.settings import InvalidSettingError, MissingSettingError, Secret, ServerSettings, env

__all__ = ["NotificationSettings"]

_KNOWN_CHANNELS = frozenset({"sms", "email", "push", "stream"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class NotificationSettings(ServerSettings):
    """Everything the notification service can be told.

    ``CHANNELS`` names the enabled providers; each enabled one needs its settings (a missing one stops
    start-up naming the variable), and a disabled kind's deliveries fail visibly instead of silently.
    """

    env_prefix: ClassVar[str] = "NOTIFICATION_"
    port: int = env("PORT", default=8087, ge=0, le=65535)
    database_url: Secret = env("DATABASE_URL", help="PostgreSQL DSN")
    db_schema: str = env("DB_SCHEMA", default="notification")
    rabbitmq_url: Secret = env("RABBITMQ_URL", help="AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/")
    user_target: str = env("USER_TARGET", help="host:port of the user service")
    jwt_issuer: str = env("JWT_ISSUER", default="https://user.tastyplat")
    jwt_audience: str = env("JWT_AUDIENCE", default="tastyplat")
    channels: tuple[str, ...] = env("CHANNELS", default=("stream",), help="enabled channels: sms,email,push,stream")
    twilio_account_sid: str | None = env("TWILIO_ACCOUNT_SID", default=None)
    twilio_auth_token: Secret | None = env("TWILIO_AUTH_TOKEN", default=None)
    twilio_from_number: str | None = env("TWILIO_FROM_NUMBER", default=None)
    twilio_messaging_service_sid: str | None = env("TWILIO_MESSAGING_SERVICE_SID", default=None)
    twilio_base_url: str | None = env("TWILIO_BASE_URL", default=None, help="override of https://api.twilio.com")
    smtp_host: str | None = env("SMTP_HOST", default=None)
    smtp_port: int = env("SMTP_PORT", default=587, ge=1, le=65535)
    smtp_sender: str | None = env("SMTP_SENDER", default=None)
    smtp_username: str | None = env("SMTP_USERNAME", default=None)
    smtp_password: Secret | None = env("SMTP_PASSWORD", default=None)
    smtp_tls: str = env("SMTP_TLS", default="starttls", help="none, starttls or tls")
    fcm_project_id: str | None = env("FCM_PROJECT_ID", default=None)
    fcm_credentials_file: str | None = env("FCM_CREDENTIALS_FILE", default=None, help="service account JSON")
    fcm_endpoint: str | None = env("FCM_ENDPOINT", default=None, help="override of https://fcm.googleapis.com")
    max_attempts: int = env("MAX_ATTEMPTS", default=5, ge=1, le=20)
    backoff_initial_seconds: float = env("BACKOFF_INITIAL_SECONDS", default=1.0, ge=0.0)
    backoff_max_seconds: float = env("BACKOFF_MAX_SECONDS", default=60.0, ge=0.0)
    attempt_timeout_seconds: float = env("ATTEMPT_TIMEOUT_SECONDS", default=30.0, ge=0.1)
    lease_seconds: float = env("LEASE_SECONDS", default=120.0, ge=0.1)
    scheduler_seconds: float = env("SCHEDULER_SECONDS", default=1.0, ge=0.01)
    channel_limit: int = env("CHANNEL_LIMIT", default=20, ge=1)

    def __post_init__(self) -> None:
        """Check the enabled channels have what they need.

        Raises:
            InvalidSettingError: an unknown channel or TLS mode.
            MissingSettingError: an enabled channel lacks a required setting.
        """
        unknown = set(self.channels) - _KNOWN_CHANNELS
        if unknown:
            raise InvalidSettingError(self.variable_name("channels"), f"unknown channels {sorted(unknown)}")
        if self.smtp_tls not in ("none", "starttls", "tls"):
            raise InvalidSettingError(self.variable_name("smtp_tls"), "expected none, starttls or tls")
        required = {
            "sms": ["twilio_account_sid", "twilio_auth_token"],
            "email": ["smtp_host", "smtp_sender"],
            "push": ["fcm_project_id"],
        }
        for channel in self.channels:
            for name in required.get(channel, []):
                if getattr(self, name) is None:
                    raise MissingSettingError(self.variable_name(name), f"needed by the {channel} channel")
        if "sms" in self.channels and not (self.twilio_from_number or self.twilio_messaging_service_sid):
            raise MissingSettingError(self.variable_name("twilio_from_number"), "or TWILIO_MESSAGING_SERVICE_SID")

    def app_settings(self) -> NotificationAppSettings:
        """The application's behaviour settings."""
        return NotificationAppSettings(
            channel_limit=self.channel_limit,
            max_attempts=self.max_attempts,
            backoff_initial=self.backoff_initial_seconds,
            backoff_max=self.backoff_max_seconds,
            attempt_timeout=self.attempt_timeout_seconds,
            lease_seconds=self.lease_seconds,
            scheduler_seconds=self.scheduler_seconds,
            test_window=timedelta(minutes=10),
        )
