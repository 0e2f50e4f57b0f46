"""End to end: market data ticks -> the delta monitor -> one alert -> PostgreSQL -> StreamAlerts -> SMS and e-mail.

The market data service runs for real (its app, bus publisher and interest leases) on a scripted feed; the
delta monitor re-prices with core_ext and stores in PostgreSQL; the notification service delivers through the
twilio SDK to a fake Twilio API and through aiosmtplib to a real aiosmtpd server. All three share one gRPC server
and the in-process bus, as in embedded mode. Positions come from the in-memory broker adapter and contact
verification from the in-memory user directory (the broker and user services are reached through the same
ports in embedded mode).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as dm_pb
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2_grpc as dm_grpc
from tastyplat.notification.v1 import notification_service_pb2 as nt_pb
from tastyplat.notification.v1 import notification_service_pb2_grpc as nt_grpc
from tastyplat.type.v1 import channel_pb2

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.platform.identity import JwtAuthenticator as DmAuth
from services.platform.identity import StaticKeySource as DmKeys
from services.deltamonitor.adapters.peers import InMemoryBroker
from services.deltamonitor.adapters.postgres_store import PostgresStore as DmStore
from services.deltamonitor.adapters.pricing import CoreExtPricer
from services.deltamonitor.app import AppSettings
from services.deltamonitor.domain.model import HeldPosition
from services.deltamonitor.wiring import assemble as assemble_deltamonitor
from services.marketdata.config import MarketDataSettings
from services.marketdata.domain.events import FeedKind, GreeksEvent, QuoteEvent
from services.marketdata.ports import FeedStatus
from services.marketdata.wiring import build as build_marketdata
from services.marketdata.wiring import registration as marketdata_registration
from services.notification.adapters.directory import InMemoryDirectory
from services.platform.identity import JwtAuthenticator as NtAuth
from services.platform.identity import StaticKeySource as NtKeys
from services.notification.adapters.postgres_store import PostgresStore as NtStore
from services.notification.adapters.providers import StreamProvider
from services.notification.domain.model import ChannelKind, Preferences, Severity
from services.notification.wiring import assemble as assemble_notification
from services.platform.bus import InProcessBus
from services.platform.cache import InProcessCache
from services.platform.clock import SystemClock
from services.platform.testing import client_channel, running_server
from tests.fakes.access_tokens import TokenIssuer
from tests.fakes.twilio_api import FakeTwilio
from tests.unit.notification.conftest import FAST, SmtpInbox, fake_twilio, smtp_inbox, smtp_provider, twilio_provider  # noqa: F401

pytestmark = pytest.mark.e2e

DSN = "postgresql://postgres@127.0.0.1:5432/test"
USER = "9c1d2e3f-0000-4000-8000-00000000abcd"
ACCOUNT = "5WW99999"
PHONE = "+14155550100"
EMAIL = "trader@example.com"
OPTION = ".SPY300118C480"
EXPIRY = datetime(2030, 1, 18, 21, 0, tzinfo=UTC)


class ScriptedFeed:
    """A MarketFeed whose events the test pushes; it records what market data subscribed to."""

    kind = FeedKind.SIMULATOR

    def __init__(self) -> None:
        self._subscriptions: dict[str, set[str]] = {}
        self._queue: asyncio.Queue[list[object]] = asyncio.Queue()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def subscribe(self, event_type: str, symbols: object) -> None:
        self._subscriptions.setdefault(event_type, set()).update(symbols)  # type: ignore[arg-type]

    async def unsubscribe(self, event_type: str, symbols: object) -> None:
        self._subscriptions.get(event_type, set()).difference_update(symbols)  # type: ignore[arg-type]

    def subscriptions(self, event_type: str) -> frozenset[str]:
        return frozenset(self._subscriptions.get(event_type, ()))

    async def batches(self) -> AsyncIterator[list[object]]:
        while True:
            yield await self._queue.get()

    def status(self) -> FeedStatus:
        return FeedStatus(connected=True, down_for=0.0, reconnects=0, last_error=None)

    def quote(self, symbol: str, price: float) -> None:
        now = time_ns()
        self._queue.put_nowait([QuoteEvent(symbol, price - 0.01, price + 0.01, 100.0, 100.0, now)])

    def greeks(self, symbol: str, vol: float) -> None:
        nan = float("nan")
        self._queue.put_nowait([GreeksEvent(symbol, nan, vol, nan, nan, nan, nan, nan, time_ns())])


def time_ns() -> int:
    return int(datetime.now(UTC).timestamp() * 1e9)


async def _drop(schema: str) -> None:
    connection = await asyncpg.connect(DSN)
    await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await connection.close()


async def _eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _next_alert(stream, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    while True:
        message = await asyncio.wait_for(stream.read(), timeout)
        if message.WhichOneof("event") == "alert":
            return message.alert


async def _alerts_within(stream, seconds: float) -> list[object]:  # type: ignore[no-untyped-def]
    """Every alert the stream delivers within ``seconds`` (heartbeats skipped)."""
    alerts: list[object] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            message = await asyncio.wait_for(stream.read(), left)
        except asyncio.TimeoutError:
            break
        if message.WhichOneof("event") == "alert":
            alerts.append(message.alert)
    return alerts


async def test_a_band_crossing_reaches_every_channel_exactly_once(
    fake_twilio: FakeTwilio, smtp_inbox: SmtpInbox  # noqa: F811
) -> None:
    tokens = TokenIssuer()
    clock = SystemClock()
    bus = InProcessBus()
    feed = ScriptedFeed()
    marketdata = build_marketdata(
        MarketDataSettings.from_env({}, port=0, feed="simulator", bus="memory", cache="memory", history="memory"),
        clock=clock, bus=bus, cache=InProcessCache(), feed=feed,  # type: ignore[arg-type]
    )
    broker = InMemoryBroker()
    broker.set_account(ACCOUNT, USER, [
        HeldPosition(ACCOUNT, "SPY   300118C00480000", "SPY", 10.0, 100.0, True, True, 480.0, EXPIRY, True, OPTION),
        HeldPosition(ACCOUNT, "SPY", "SPY", -400.0, 1.0),
    ])
    dm_schema, nt_schema = f"e2e_dm_{uuid.uuid4().hex[:10]}", f"e2e_nt_{uuid.uuid4().hex[:10]}"
    deltamonitor = assemble_deltamonitor(
        settings=AppSettings(heartbeat_seconds=0.5, stale_check_seconds=3600, live_flush_seconds=0.5),
        store=DmStore(DSN, schema=dm_schema),
        bus=bus, clock=clock, positions=broker, inputs=broker,
        authenticator=DmAuth(DmKeys(tokens.jwks), issuer=tokens.issuer, audience=tokens.audience, clock=clock),
        pricer=CoreExtPricer(),
        calendar=ExchangeCalendar(around=datetime.now(UTC)),
        tick_patterns=("marketdata.quotes.*", "marketdata.greeks.*"),
    )
    directory = InMemoryDirectory()
    directory.users[USER] = Preferences(
        phone_number=PHONE, phone_verified=True, email=EMAIL, email_verified=True,
        severity_channels={Severity.WARNING: (ChannelKind.STREAM, ChannelKind.EMAIL, ChannelKind.SMS)},
        escalation_delay=timedelta(0),
    )
    notification = assemble_notification(
        settings=FAST, store=NtStore(DSN, schema=nt_schema), bus=bus, clock=clock, directory=directory,
        authenticator=NtAuth(NtKeys(tokens.jwks), issuer=tokens.issuer, audience=tokens.audience, clock=clock),
        providers={ChannelKind.SMS: twilio_provider(fake_twilio), ChannelKind.EMAIL: smtp_provider(smtp_inbox),
                   ChannelKind.STREAM: StreamProvider()},
    )
    auth = tokens.metadata(USER)
    try:
        async with running_server(
            [marketdata_registration(marketdata), deltamonitor.registration, notification.registration]
        ) as server:
            channel = client_channel(server)
            monitor = dm_grpc.DeltaMonitorServiceStub(channel)
            notify = nt_grpc.NotificationServiceStub(channel)
            for kind, address in ((channel_pb2.CHANNEL_KIND_SMS, PHONE), (channel_pb2.CHANNEL_KIND_EMAIL, EMAIL)):
                await notify.RegisterChannel(nt_pb.RegisterChannelRequest(kind=kind, address=address), metadata=auth)

            watch = dm_pb.Watch(account_number=ACCOUNT, metric=1, hysteresis_ratio=0.25, display_name="SPY book")
            watch.underlying.underlying_symbol = "SPY"
            watch.static_band.lower = -100.0
            watch.static_band.upper = 300.0
            created = (await monitor.CreateWatch(dm_pb.CreateWatchRequest(watch=watch), metadata=auth)).watch

            # The monitor asks market data (over the bus) to follow SPY and the option's Greeks.
            async def followed() -> bool:
                return "SPY" in feed.subscriptions("Quote") and OPTION in feed.subscriptions("Greeks")

            await _eventually(followed)
            stream = monitor.StreamAlerts(dm_pb.StreamAlertsRequest(), metadata=auth)
            assert (await stream.read()).WhichOneof("event") == "heartbeat"

            feed.greeks(OPTION, 0.15)
            feed.quote("SPY", 430.0)

            async def armed() -> bool:
                got = (await monitor.GetWatch(dm_pb.GetWatchRequest(watch_id=created.watch_id), metadata=auth)).watch
                return got.state == dm_pb.WATCH_STATE_ARMED

            await _eventually(armed)
            # Cross the band, then flicker around its upper bound: one alert, however noisy.
            for price in (521.0, 519.0, 522.0, 518.5, 520.5, 519.5, 523.0, 518.8, 521.5):
                feed.quote("SPY", price)
                await asyncio.sleep(0.07)
            alert = await _next_alert(stream)
            assert alert.watch_id == created.watch_id and alert.delta_breach.delta_after > 300.0
            assert await _alerts_within(stream, seconds=1.5) == []
            stream.cancel()

            listed = await monitor.ListAlerts(dm_pb.ListAlertsRequest(), metadata=auth)
            assert [a.alert_id for a in listed.alerts] == [alert.alert_id]

            async def delivered() -> bool:
                return len(smtp_inbox.messages) == 1 and len(fake_twilio.messages) == 1

            await _eventually(delivered)
            assert smtp_inbox.messages[0]["Message-ID"] == f"<{alert.alert_id}@tastyplat>"
            assert fake_twilio.messages[0].to == PHONE
            deliveries = await notify.ListDeliveries(nt_pb.ListDeliveriesRequest(alert_id=alert.alert_id), metadata=auth)
            assert sorted(d.channel_kind for d in deliveries.deliveries) == [channel_pb2.CHANNEL_KIND_SMS, channel_pb2.CHANNEL_KIND_EMAIL]
            assert {d.status for d in deliveries.deliveries} == {nt_pb.DELIVERY_STATUS_SENT}

            # Disconnected: the delta goes back deep inside, re-arms, and crosses again.
            feed.quote("SPY", 430.0)
            await _eventually(armed)
            feed.quote("SPY", 521.0)

            async def second() -> bool:
                return len((await monitor.ListAlerts(dm_pb.ListAlertsRequest(), metadata=auth)).alerts) == 2

            await _eventually(second)
            resumed = monitor.StreamAlerts(dm_pb.StreamAlertsRequest(after_alert_id=alert.alert_id), metadata=auth)
            missed = await _next_alert(resumed)
            assert missed.alert_id != alert.alert_id and missed.alert_id > alert.alert_id
            resumed.cancel()
            await _eventually(lambda: _count(smtp_inbox, fake_twilio, 2))
            await channel.close()
    finally:
        await bus.close()
        await _drop(dm_schema)
        await _drop(nt_schema)


async def _count(inbox: SmtpInbox, twilio: FakeTwilio, n: int) -> bool:
    return len(inbox.messages) == n and len(twilio.messages) == n
