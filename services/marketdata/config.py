"""Settings of the market data service (``MARKETDATA_*`` environment variables), read once in ``__main__``."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from services.marketdata.domain.simulator import DEFAULT_UNIVERSE
from services.platform.settings import InvalidSettingError, MissingSettingError, Secret, ServerSettings, env

__all__ = ["MarketDataSettings"]

_FEEDS = ("simulator", "dxlink")
_BUSES = ("rabbitmq", "memory")
_CACHES = ("redis", "memory")
_HISTORIES = ("postgres", "memory")
_PUBLISHERS = ("leader", "every")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MarketDataSettings(ServerSettings):
    """Everything the market data service reads from its environment.

    Attributes:
        port: gRPC port (``MARKETDATA_PORT``, default 8082).
        feed: ``simulator`` (default) or ``dxlink`` (Tastytrade's dxFeed streamer).
        bus: ``rabbitmq`` (default) or ``memory``; never chosen silently.
        cache: ``redis`` (default) or ``memory``.
        history: ``postgres`` (default) or ``memory``.
        bus_publisher: Who publishes ticks on the bus: ``leader`` (the one replica holding a PostgreSQL advisory
            lock; needs ``database_url``) or ``every`` (each instance; right only for a lone instance). Default:
            ``leader`` with the RabbitMQ bus (replicas share it), ``every`` with the in-process bus.
        rabbitmq_url: AMQP URL, required with the RabbitMQ bus.
        bus_exchange: Topic exchange of the platform's bus.
        redis_url: Redis URL, required with the Redis cache.
        cache_prefix: Key prefix in Redis.
        cache_ttl_seconds: Lifetime of a cached latest value.
        database_url: PostgreSQL DSN, required with postgres history.
        database_schema: Schema of the tick tables.
        tastytrade_api_url: Tastytrade Open API base URL (quote tokens).
        tastytrade_client_secret: OAuth client secret, required with the DXLink feed.
        tastytrade_refresh_token: OAuth refresh token, required with the DXLink feed.
        tastytrade_client_id: OAuth client id (optional; must match the secret's client when sent).
        dxlink_silence_timeout: Seconds without a DXLink message after which the feed is reconnected.
        dxlink_keepalive_interval: Seconds between KEEPALIVE messages.
        dxlink_max_symbols_per_message: Largest FEED_SUBSCRIPTION.
        dxlink_aggregation_period: dxFeed aggregation period in seconds.
        dxlink_token_renewal_seconds: Renew a quote token this long before it expires.
        simulator_seed: Seed of the simulator (same seed, same market).
        simulator_tick_interval: Seconds between simulator steps.
        simulator_time_scale: Simulated trading seconds per wall second.
        heartbeat_seconds: Stream silence after which a heartbeat is sent.
        subscriber_capacity: Pending updates per stream before conflation starts.
        bus_publish_seconds: Least time between two rounds of tick messages on the bus. A round sends one
            message per underlying with every quote since the previous round (past 50,000 pending updates, the
            latest per symbol) and starts as soon as a tick is pending, so a tick on a quiet bus leaves at once
            and under load waits at most this long. Longer rounds mean fewer, larger messages (RabbitMQ);
            the embedded platform uses 0.002 s.
        bus_conflate: Send only the latest quote per symbol in each round instead of every quote: consumers
            then re-price at most once per symbol per round, which is what bounds their tick rate at scale
            (see the README's capacity model); off by default, so every tick reaches the delta monitor.
        max_streams_per_caller: Open streams per caller.
        feed_down_budget_seconds: Feed outage after which streams end with FEED_UNAVAILABLE.
        pinned_symbols: Symbols always followed (and published on the bus); default: the simulator's
            underlyings with the simulator, none with DXLink.
        risk_free_rate: Rate used by the model Greeks.
        dividend_yields: ``SYMBOL:yield`` pairs for the model Greeks.
        gc_freeze: Freeze the objects alive after start-up out of the garbage collector's reach, so full
            collections (which would walk every module, protobuf descriptor and grpc object) stop pausing
            streams for tens of milliseconds; measured in benchmarks/marketdata.
    """

    env_prefix: ClassVar[str] = "MARKETDATA_"
    port: int = env("PORT", default=8082, ge=0, le=65535, help="listen port")
    feed: str = env("FEED", default="simulator", help="simulator or dxlink")
    bus: str = env("BUS", default="rabbitmq", help="rabbitmq or memory")
    cache: str = env("CACHE", default="redis", help="redis or memory")
    history: str = env("HISTORY", default="postgres", help="postgres or memory")
    bus_publisher: str | None = env("BUS_PUBLISHER", default=None, help="leader or every")
    rabbitmq_url: Secret | None = env("RABBITMQ_URL", default=None, help="amqp://user:password@host:5672/")
    bus_exchange: str = env("BUS_EXCHANGE", default="tastyplat")
    redis_url: Secret | None = env("REDIS_URL", default=None, help="redis://host:6379/0")
    cache_prefix: str = env("CACHE_PREFIX", default="tastyplat")
    cache_ttl_seconds: float = env("CACHE_TTL_SECONDS", default=86400.0, ge=1.0)
    database_url: Secret | None = env("DATABASE_URL", default=None, help="PostgreSQL DSN")
    database_schema: str = env("DATABASE_SCHEMA", default="marketdata")
    tastytrade_api_url: str = env("TASTYTRADE_API_URL", default="https://api.tastyworks.com")
    tastytrade_client_secret: Secret | None = env("TASTYTRADE_CLIENT_SECRET", default=None)
    tastytrade_refresh_token: Secret | None = env("TASTYTRADE_REFRESH_TOKEN", default=None)
    tastytrade_client_id: str | None = env("TASTYTRADE_CLIENT_ID", default=None)
    dxlink_silence_timeout: float = env("DXLINK_SILENCE_TIMEOUT", default=60.0, ge=0.1)
    dxlink_keepalive_interval: float = env("DXLINK_KEEPALIVE_INTERVAL", default=30.0, ge=0.05)
    dxlink_max_symbols_per_message: int = env("DXLINK_MAX_SYMBOLS_PER_MESSAGE", default=500, ge=1, le=5000)
    dxlink_aggregation_period: float = env("DXLINK_AGGREGATION_PERIOD", default=0.1, ge=0.0)
    dxlink_token_renewal_seconds: float = env("DXLINK_TOKEN_RENEWAL_SECONDS", default=3600.0, ge=0.0)
    simulator_seed: int = env("SIMULATOR_SEED", default=20240611)
    simulator_tick_interval: float = env("SIMULATOR_TICK_INTERVAL", default=0.1, ge=0.001)
    simulator_time_scale: float = env("SIMULATOR_TIME_SCALE", default=1.0, ge=0.001)
    heartbeat_seconds: float = env("HEARTBEAT_SECONDS", default=5.0, ge=0.05)
    subscriber_capacity: int = env("SUBSCRIBER_CAPACITY", default=4096, ge=1)
    bus_publish_seconds: float = env("BUS_PUBLISH_SECONDS", default=0.05, ge=0.001, le=10.0)
    bus_conflate: bool = env("BUS_CONFLATE", default=False)
    max_streams_per_caller: int = env("MAX_STREAMS_PER_CALLER", default=100, ge=1)
    feed_down_budget_seconds: float = env("FEED_DOWN_BUDGET_SECONDS", default=60.0, ge=0.0)
    pinned_symbols: tuple[str, ...] | None = env("PINNED_SYMBOLS", default=None)
    risk_free_rate: float = env("RISK_FREE_RATE", default=0.045, ge=-0.1, le=1.0)
    dividend_yields: tuple[str, ...] = env(
        "DIVIDEND_YIELDS",
        default=tuple(f"{s.symbol}:{s.dividend_yield}" for s in DEFAULT_UNIVERSE),
    )

    gc_freeze: bool = env("GC_FREEZE", default=True)

    def __post_init__(self) -> None:
        def name(field: str) -> str:
            return type(self).variable_name(field)

        for field, value, allowed in (
            ("feed", self.feed, _FEEDS),
            ("bus", self.bus, _BUSES),
            ("cache", self.cache, _CACHES),
            ("history", self.history, _HISTORIES),
        ):
            if value not in allowed:
                raise InvalidSettingError(name(field), f"expected one of {', '.join(allowed)}, got {value!r}")
        if self.bus == "rabbitmq" and self.rabbitmq_url is None:
            raise MissingSettingError(name("rabbitmq_url"), "AMQP URL, required when MARKETDATA_BUS=rabbitmq")
        if self.cache == "redis" and self.redis_url is None:
            raise MissingSettingError(name("redis_url"), "Redis URL, required when MARKETDATA_CACHE=redis")
        if self.history == "postgres" and self.database_url is None:
            raise MissingSettingError(name("database_url"), "PostgreSQL DSN, required when MARKETDATA_HISTORY=postgres")
        if self.bus_publisher is not None and self.bus_publisher not in _PUBLISHERS:
            raise InvalidSettingError(
                name("bus_publisher"), f"expected one of {', '.join(_PUBLISHERS)}, got {self.bus_publisher!r}"
            )
        if self.publisher() == "leader" and self.database_url is None:
            raise MissingSettingError(
                name("database_url"), "PostgreSQL DSN, required for the publisher lease (MARKETDATA_BUS_PUBLISHER=leader)"
            )
        if self.feed == "dxlink":
            for field in ("tastytrade_client_secret", "tastytrade_refresh_token"):
                if getattr(self, field) is None:
                    raise MissingSettingError(name(field), "required when MARKETDATA_FEED=dxlink")
        self.dividend_yield_map()  # validates the pairs

    def dividend_yield_map(self) -> dict[str, float]:
        """The ``DIVIDEND_YIELDS`` pairs as a mapping.

        Raises:
            InvalidSettingError: a pair is not ``SYMBOL:number``.
        """
        yields: dict[str, float] = {}
        for pair in self.dividend_yields:
            symbol, _, value = pair.partition(":")
            try:
                yields[symbol.strip()] = float(value)
            except ValueError:
                raise InvalidSettingError(
                    type(self).variable_name("dividend_yields"), f"expected SYMBOL:yield pairs, got {pair!r}"
                ) from None
        return yields

    def publisher(self) -> str:
        """``leader`` or ``every``: the setting, else ``leader`` with the RabbitMQ bus and ``every`` in-process."""
        if self.bus_publisher is not None:
            return self.bus_publisher
        return "leader" if self.bus == "rabbitmq" else "every"

    def pinned(self) -> tuple[str, ...]:
        """Symbols followed whatever the streams: the setting, else the simulator's underlyings or none."""
        if self.pinned_symbols is not None:
            return self.pinned_symbols
        return tuple(s.symbol for s in DEFAULT_UNIVERSE) if self.feed == "simulator" else ()
