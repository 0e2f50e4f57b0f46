"""Composition root of the market data service: adapters chosen from settings, wired into the app and servicer."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field

from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as pb_grpc

from services.embedded.resources import EmbeddedResources
from services.platform import telemetry
from services.marketdata.adapters.dxlink.client import DXLinkClient, DXLinkSettings
from services.marketdata.adapters.dxlink.feed import DXLinkFeed
from services.marketdata.adapters.memory_history import InMemoryTickStore
from services.marketdata.adapters.postgres_history import PostgresTickStore
from services.marketdata.adapters.publisher_lease import PostgresPublisherLease
from services.marketdata.adapters.quote_tokens import TastytradeQuoteTokens
from services.marketdata.adapters.simulator_feed import SimulatorFeed
from services.marketdata.api.servicer import MarketDataServicer
from services.marketdata.app import AppSettings, MarketDataApp
from services.marketdata.config import MarketDataSettings
from services.marketdata.domain.model import ModelInputs
from services.marketdata.domain.simulator import MarketSimulator
from services.marketdata.ports import MarketFeed, TickStore
from services.platform.bus import InProcessBus, MessageBus, RabbitMqBus
from services.platform.cache import InProcessCache, LatestValueCache, RedisCache
from services.platform.clock import Clock
from services.platform.server import ServiceRegistration
from services.platform.settings import Secret

__all__ = ["SERVICE_NAME", "MarketDataComponents", "build", "embedded", "registration"]

log = logging.getLogger("tastyplat.marketdata")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["MarketDataService"].full_name


def app_settings(settings: MarketDataSettings) -> AppSettings:
    """The application behaviour the settings describe."""
    return AppSettings(
        heartbeat_interval=settings.heartbeat_seconds,
        subscriber_capacity=settings.subscriber_capacity,
        bus_publish_interval=settings.bus_publish_seconds,
        bus_conflate=settings.bus_conflate,
        max_streams_per_caller=settings.max_streams_per_caller,
        feed_down_budget=settings.feed_down_budget_seconds,
        pinned_symbols=settings.pinned(),
        model_inputs=ModelInputs(rate=settings.risk_free_rate, dividend_yields=settings.dividend_yield_map()),
    )


def build_feed(settings: MarketDataSettings, clock: Clock) -> MarketFeed:
    """The simulator or the DXLink feed, as the settings say."""
    if settings.feed == "simulator":
        simulator = MarketSimulator(
            seed=settings.simulator_seed, rate=settings.risk_free_rate, time_scale=settings.simulator_time_scale
        )
        return SimulatorFeed(simulator, clock, tick_interval=settings.simulator_tick_interval)
    assert settings.tastytrade_client_secret is not None and settings.tastytrade_refresh_token is not None
    tokens = TastytradeQuoteTokens(
        base_url=settings.tastytrade_api_url,
        client_secret=settings.tastytrade_client_secret.reveal(),
        refresh_token=settings.tastytrade_refresh_token.reveal(),
        client_id=settings.tastytrade_client_id,
        clock=clock,
    )
    dxlink = DXLinkSettings(
        keepalive_interval=settings.dxlink_keepalive_interval,
        silence_timeout=settings.dxlink_silence_timeout,
        aggregation_period=settings.dxlink_aggregation_period,
        max_symbols_per_message=settings.dxlink_max_symbols_per_message,
        renewal_margin=settings.dxlink_token_renewal_seconds,
    )
    return DXLinkFeed(DXLinkClient(tokens, settings=dxlink, clock=clock), tokens)


@dataclass
class MarketDataComponents:
    """What the composition root built; `start` connects the backends the service owns.

    Attributes:
        settings: The settings.
        clock: The clock.
        feed: The market feed.
        bus: The message bus (None until started when the service owns a RabbitMQ connection).
        cache: The latest-value cache (likewise for Redis).
        history: The tick store (likewise for PostgreSQL).
        app: The use cases (None until started).
        servicer: The gRPC servicer; answers once `start` has run.
    """

    settings: MarketDataSettings
    clock: Clock
    feed: MarketFeed
    bus: MessageBus | None = None
    cache: LatestValueCache | None = None
    history: TickStore | None = None
    postgres_dsn: str | None = None
    app: MarketDataApp | None = None
    servicer: MarketDataServicer = field(init=False)
    _owned: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.servicer = MarketDataServicer(self._started_app)

    def _started_app(self) -> MarketDataApp:
        # The servicer is registered before start() builds the app; health is NOT_SERVING until then.
        if self.app is None:
            raise RuntimeError("market data service called before start")
        return self.app

    async def start(self) -> None:
        """Connect the bus, cache and database the settings name, then start the app."""
        s = self.settings
        if self.bus is None:
            if s.bus == "rabbitmq":
                assert s.rabbitmq_url is not None
                self.bus = await RabbitMqBus.connect(s.rabbitmq_url.reveal(), exchange=s.bus_exchange)
            else:
                self.bus = InProcessBus()
            self._owned.append("bus")
        if self.cache is None:
            if s.cache == "redis":
                assert s.redis_url is not None
                self.cache = await RedisCache.connect(
                    s.redis_url.reveal(), prefix=s.cache_prefix, ttl_seconds=s.cache_ttl_seconds
                )
            else:
                self.cache = InProcessCache(ttl_seconds=s.cache_ttl_seconds)
            self._owned.append("cache")
        if self.history is None:
            if s.history == "postgres":
                dsn = self.postgres_dsn or (s.database_url.reveal() if s.database_url is not None else None)
                assert dsn is not None
                self.history = await PostgresTickStore.connect(dsn, schema=s.database_schema)
            else:
                self.history = InMemoryTickStore()
            self._owned.append("history")
        publisher = None
        if s.publisher() == "leader":
            dsn = self.postgres_dsn or (s.database_url.reveal() if s.database_url is not None else None)
            assert dsn is not None
            # Replicas of one deployment share the database and schema, hence the lease name.
            publisher = PostgresPublisherLease(dsn, name=f"{s.database_schema}.bus-publisher")
        self.app = MarketDataApp(
            feed=self.feed,
            cache=self.cache,
            bus=self.bus,
            history=self.history,
            clock=self.clock,
            settings=app_settings(s),
            publisher=publisher,
        )
        await self.app.start()
        app = self.app
        telemetry.expose(
            "marketdata_stream_subscribers",
            "Open StreamQuotes and StreamGreeks calls",
            lambda: [({"stream": "quotes"}, len(app.quote_hub)), ({"stream": "greeks"}, len(app.greeks_hub))],
        )
        if s.gc_freeze:
            gc.freeze()
        log.info("market data started", extra={"feed": s.feed, "bus": s.bus, "cache": s.cache})

    async def drain(self) -> None:
        """End open streams with a StreamEnd."""
        if self.app is not None:
            await self.app.drain()

    async def stop(self) -> None:
        """Stop the app, then close what this service opened."""
        if self.app is not None:
            await self.app.stop()
        if "history" in self._owned and self.history is not None:
            await self.history.close()
        if "cache" in self._owned and self.cache is not None:
            await self.cache.close()
        if "bus" in self._owned and self.bus is not None:
            await self.bus.close()


def build(
    settings: MarketDataSettings,
    *,
    clock: Clock,
    bus: MessageBus | None = None,
    cache: LatestValueCache | None = None,
    history: TickStore | None = None,
    postgres_dsn: str | None = None,
    feed: MarketFeed | None = None,
) -> MarketDataComponents:
    """Build the service (nothing connects until `MarketDataComponents.start`).

    Args:
        settings: The service settings.
        clock: The clock.
        bus: A bus shared with other services (the embedded runner's); else one from the settings.
        cache: Likewise for the cache.
        history: Likewise for the tick store.
        postgres_dsn: A DSN that wins over the settings' (the embedded PostgreSQL).
        feed: A feed that wins over the settings' (tests).
    """
    return MarketDataComponents(
        settings=settings,
        clock=clock,
        feed=feed or build_feed(settings, clock),
        bus=bus,
        cache=cache,
        history=history,
        postgres_dsn=postgres_dsn,
    )


def registration(components: MarketDataComponents) -> ServiceRegistration:
    """The ServiceRegistration of a built service."""
    return ServiceRegistration(
        add_to_server=pb_grpc.add_MarketDataServiceServicer_to_server,
        servicer=components.servicer,
        service_name=SERVICE_NAME,
        start=components.start,
        drain=components.drain,
        stop=components.stop,
    )


async def embedded(resources: EmbeddedResources) -> ServiceRegistration:
    """Market data inside the embedded platform: the simulator, the shared in-process bus and cache, and its
    own schema of the embedded PostgreSQL."""
    settings = MarketDataSettings.from_env(
        {},
        port=0,
        feed="simulator",
        bus="memory",
        cache="memory",
        history="postgres",
        database_url=Secret(resources.postgres_dsn),
        # The in-process bus costs little per message: ticks leave within 2 ms for the delta monitor.
        bus_publish_seconds=0.002,
    )
    components = build(
        settings,
        clock=resources.clock,
        bus=resources.bus,
        cache=resources.cache,
        postgres_dsn=resources.postgres_dsn,
    )
    return registration(components)
