"""Settings of the user service (``USER_*`` environment variables), read once in ``__main__``."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from services.platform.settings import InvalidSettingError, MissingSettingError, Secret, ServerSettings, env

__all__ = ["UserSettings"]

_STORAGES = ("postgres", "memory")
_ALGORITHMS = ("EdDSA", "ES256")
_CODE_DELIVERY = ("outbox", "bus")


@dataclasses.dataclass(frozen=True, kw_only=True)
class UserSettings(ServerSettings):
    """Everything the user service reads from its environment.

    Attributes:
        port: gRPC port (``USER_PORT``, default 8084).
        storage: ``postgres`` (default) or ``memory`` (``USER_STORAGE``); never chosen silently.
        database_url: PostgreSQL DSN (``USER_DATABASE_URL``), required with postgres storage.
        database_schema: Schema of the service's tables (``USER_DATABASE_SCHEMA``).
        secret_keys: AES-256-GCM keys encrypting private signing keys at rest, ``<version>:<base64>[,...]``
            (``USER_SECRET_KEYS``), required with postgres storage.
        audit_signing_key: base64 Ed25519 seed signing the audit log (``USER_AUDIT_SIGNING_KEY``).
        jwt_issuer: ``iss`` of access tokens (``USER_JWT_ISSUER``).
        jwt_audience: ``aud`` of access tokens (``USER_JWT_AUDIENCE``).
        jwt_algorithm: ``EdDSA`` or ``ES256`` (``USER_JWT_ALGORITHM``).
        access_token_ttl_seconds: Access-token lifetime.
        refresh_token_ttl_seconds: Idle lifetime of a refresh token.
        session_max_lifetime_seconds: Absolute lifetime of a session.
        key_rotation_days: Age at which the signing key is rotated.
        key_prepublish_seconds: How long a new key is published before it signs.
        argon2_memory_kib, argon2_time_cost, argon2_parallelism: argon2id cost (OWASP minimum at least).
        trusted_proxy_hops: Proxies in front that append to ``x-forwarded-for`` (1 behind the Envoy gateway);
            0 takes the client address from the connection.
        bootstrap_admin_email, bootstrap_admin_password: An admin created (or promoted) at start-up.
        code_delivery: Where one-time codes and user events go: ``bus`` (published on RabbitMQ for the
            notification service) or ``outbox`` (kept in process: tests, a single-process demo).
        rabbitmq_url: AMQP URL (``USER_RABBITMQ_URL``), required with bus delivery.
        maintenance_interval_seconds: Period of key rotation checks and session purges.
    """

    env_prefix: ClassVar[str] = "USER_"
    port: int = env("PORT", default=8084, ge=0, le=65535, help="listen port")
    storage: str = env("STORAGE", default="postgres", help="postgres or memory")
    database_url: Secret | None = env("DATABASE_URL", default=None, help="PostgreSQL DSN")
    database_schema: str = env("DATABASE_SCHEMA", default="user_service")
    secret_keys: Secret | None = env("SECRET_KEYS", default=None, help="<version>:<base64 32-byte key>[,...]")
    audit_signing_key: Secret = env(
        "AUDIT_SIGNING_KEY", help="base64 Ed25519 seed; `python -m services.platform.audit keygen`"
    )
    jwt_issuer: str = env("JWT_ISSUER", default="https://user.tastyplat")
    jwt_audience: str = env("JWT_AUDIENCE", default="tastyplat")
    jwt_algorithm: str = env("JWT_ALGORITHM", default="EdDSA")
    access_token_ttl_seconds: int = env("ACCESS_TOKEN_TTL_SECONDS", default=600, ge=30, le=86400)
    refresh_token_ttl_seconds: int = env("REFRESH_TOKEN_TTL_SECONDS", default=14 * 86400, ge=60)
    session_max_lifetime_seconds: int = env("SESSION_MAX_LIFETIME_SECONDS", default=30 * 86400, ge=60)
    key_rotation_days: float = env("KEY_ROTATION_DAYS", default=30.0, ge=0.001)
    key_prepublish_seconds: float = env("KEY_PREPUBLISH_SECONDS", default=600.0, ge=0.0)
    argon2_memory_kib: int = env("ARGON2_MEMORY_KIB", default=19456, ge=19456)
    argon2_time_cost: int = env("ARGON2_TIME_COST", default=2, ge=2)
    argon2_parallelism: int = env("ARGON2_PARALLELISM", default=1, ge=1, le=16)
    trusted_proxy_hops: int = env("TRUSTED_PROXY_HOPS", default=0, ge=0, le=5)
    bootstrap_admin_email: str | None = env("BOOTSTRAP_ADMIN_EMAIL", default=None)
    bootstrap_admin_password: Secret | None = env("BOOTSTRAP_ADMIN_PASSWORD", default=None)
    code_delivery: str = env("CODE_DELIVERY", default="bus", help="bus or outbox")
    rabbitmq_url: Secret | None = env("RABBITMQ_URL", default=None, help="amqp://user:password@host:5672/vhost")
    maintenance_interval_seconds: float = env("MAINTENANCE_INTERVAL_SECONDS", default=300.0, ge=1.0)
    # Set by the embedded runner, which hands over its in-process bus instead of a RabbitMQ URL.
    bus_provided: bool = False

    def __post_init__(self) -> None:
        def name(field: str) -> str:
            return type(self).variable_name(field)

        if self.storage not in _STORAGES:
            raise InvalidSettingError(name("storage"), f"expected one of {', '.join(_STORAGES)}, got {self.storage!r}")
        if self.storage == "postgres":
            if self.database_url is None:
                raise MissingSettingError(name("database_url"), "PostgreSQL DSN, required when USER_STORAGE=postgres")
            if self.secret_keys is None:
                raise MissingSettingError(
                    name("secret_keys"), "<version>:<base64 32-byte key>, required when USER_STORAGE=postgres"
                )
        if self.jwt_algorithm not in _ALGORITHMS:
            raise InvalidSettingError(name("jwt_algorithm"), f"expected one of {', '.join(_ALGORITHMS)}")
        if self.code_delivery not in _CODE_DELIVERY:
            raise InvalidSettingError(name("code_delivery"), f"expected one of {', '.join(_CODE_DELIVERY)}")
        if self.code_delivery == "bus" and self.rabbitmq_url is None and not self.bus_provided:
            raise MissingSettingError(name("rabbitmq_url"), "AMQP URL, required when USER_CODE_DELIVERY=bus")
        if (self.bootstrap_admin_email is None) != (self.bootstrap_admin_password is None):
            raise MissingSettingError(
                name("bootstrap_admin_password" if self.bootstrap_admin_password is None else "bootstrap_admin_email"),
                "the bootstrap admin needs both an e-mail and a password",
            )
