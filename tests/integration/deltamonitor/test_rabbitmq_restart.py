"""A real RabbitMQ node stopped and started while the delta monitor raises alerts: every alert reaches notification.

The producer is the delta monitor's application (PostgreSQL store and outbox relay, RabbitMQ bus) driven by
quotes that take ten watches in and out of their bands; the consumer is the notification service's alert
consumer delivering each alert by SMS (the real twilio SDK against the loopback fake). Mid-stream the broker is
stopped (`rabbitmqctl stop`, the whole Erlang node) and started again (`rabbitmq-server -detached`) while
alerts keep being raised. Every alert stored in PostgreSQL must then be delivered, and Twilio, which the
consumer can reconcile with, must have received exactly one SMS per alert.

The node is a private one (its own name, port and data directory under /tmp), not the shared broker on 5672:
the restart then cannot disturb other tests or other runs on the machine, and is torn down whatever happens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.deltamonitor.adapters.peers import InMemoryBroker
from services.deltamonitor.adapters.postgres_store import PostgresStore as DeltaStore
from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.api.convert import decode_alert, encode_alert
from services.deltamonitor.app import AppSettings, DeltaMonitorApp
from services.deltamonitor.domain.model import (
    HeldPosition,
    Metric,
    Severity,
    StaticBand,
    UnderlyingTarget,
    Watch,
)
from services.deltamonitor.ports import MarketInputs
from services.notification.adapters.dead_letters import BusDeadLetters
from services.notification.adapters.postgres_store import PostgresStore as NotificationStore
from services.notification.adapters.providers import TwilioSmsProvider
from services.notification.api.convert import decode_alert_event
from services.notification.app import AlertConsumer, Deliverer, NotificationAppSettings, Scheduler
from services.notification.domain.model import Channel, ChannelKind, ChannelState, Preferences
from services.notification.domain.model import Severity as NotificationSeverity
from services.platform.bus import RabbitMqBus
from services.platform.clock import SystemClock
from tests.fakes.twilio_api import FakeTwilio
from tests.integration.rabbit_node import RabbitNode, rabbit  # noqa: F401
from tests.unit.notification.conftest import fake_twilio  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DSN = "postgresql://postgres@127.0.0.1:5432/test"
USER = "restart-user"
ACCOUNT = "5WW00042"
PHONE = "+14155550142"
WATCHES = 10
INSIDE, OUTSIDE = 300.0, 600.0  # dollar delta of one share: deep inside [100, 500], then above it


@pytest.fixture
async def schemas() -> AsyncIterator[tuple[str, str]]:
    """Throw-away PostgreSQL schemas for the delta monitor and notification."""
    run = uuid.uuid4().hex[:10]
    names = (f"dm_restart_{run}", f"nt_restart_{run}")
    try:
        yield names
    finally:
        connection = await asyncpg.connect(DSN)
        for name in names:
            await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await connection.close()


def _watch(i: int, now: datetime) -> Watch:
    return Watch(f"watch-{i}", USER, ACCOUNT, f"watch {i}", UnderlyingTarget("SPY"), Metric.DOLLARS, "",
                 StaticBand(100.0, 500.0), 0.2, timedelta(0), timedelta(0), Severity.WARNING, now, now)


async def _producer(app: DeltaMonitorApp, stop: asyncio.Event, cycles: list[int]) -> None:
    # One cycle: deep inside every band, then above it, so each of the watches raises one alert per cycle.
    for _ in range(2000):
        if stop.is_set():
            return
        await app.monitor.on_quote("SPY", INSIDE, datetime.now(UTC))
        await app.monitor.on_quote("SPY", OUTSIDE, datetime.now(UTC))
        cycles[0] += 1
        await asyncio.sleep(0.1)


async def test_alerts_raised_across_a_broker_restart_are_all_delivered_once(
    rabbit: RabbitNode, schemas: tuple[str, str], fake_twilio: FakeTwilio  # noqa: F811
) -> None:
    loop = asyncio.get_running_loop()
    dm_schema, nt_schema = schemas
    now = datetime.now(UTC)

    delta_store = DeltaStore(DSN, schema=dm_schema)
    await delta_store.start()
    await delta_store.save_account(ACCOUNT, [HeldPosition(ACCOUNT, "SPY", "SPY", 1.0, 1.0)], MarketInputs({}, {}, None))
    for i in range(WATCHES):
        await delta_store.create_watch(_watch(i, now), f"req-{i}", 100)

    notification_store = NotificationStore(DSN, schema=nt_schema)
    await notification_store.start()
    await notification_store.save_preferences(USER, Preferences(
        phone_number=PHONE, phone_verified=True,
        severity_channels={NotificationSeverity.WARNING: (ChannelKind.SMS,)}, escalation_delay=timedelta(0),
    ))
    await notification_store.register_channel(
        Channel(str(uuid.uuid4()), USER, ChannelKind.SMS, PHONE, "", ChannelState.ACTIVE, now), "", 10)

    producer_bus = await RabbitMqBus.connect(rabbit.url)
    consumer_bus = await RabbitMqBus.connect(rabbit.url)
    clock = SystemClock()
    app = DeltaMonitorApp(
        store=delta_store, positions=InMemoryBroker(), inputs=None, pricer=NumpyBlackScholesPricer(),
        calendar=ExchangeCalendar(around=now), bus=producer_bus, encode=encode_alert, decode=decode_alert,
        clock=clock, settings=AppSettings(outbox_retry_seconds=0.2, live_flush_seconds=0.5),
    )
    from twilio.rest import Client

    client = Client(fake_twilio.account_sid, fake_twilio.auth_token)
    client.api.base_url = fake_twilio.base_url
    settings = NotificationAppSettings(backoff_initial=0.05, backoff_max=0.5, lease_seconds=5.0,
                                       scheduler_seconds=0.5, concurrency=8)
    twilio = TwilioSmsProvider(client, from_number="+15005550006")
    deliverer = Deliverer(store=notification_store, providers={ChannelKind.SMS: twilio},
                          dead_letters=BusDeadLetters(consumer_bus), clock=clock, settings=settings)
    consumer = AlertConsumer(bus=consumer_bus, store=notification_store, deliverer=deliverer,
                             decode=decode_alert_event, clock=clock, settings=settings)
    scheduler = Scheduler(store=notification_store, deliverer=deliverer, clock=clock, settings=settings)
    # Topology first, as at platform start: the durable queue exists before the first alert is published.
    await consumer.start()
    await scheduler.start()
    await app.start()

    async def raised() -> list[str]:
        rows = await delta_store.pool.fetch("SELECT alert_id FROM alerts ORDER BY sequence")
        return [row["alert_id"] for row in rows]

    async def sent() -> list[str]:
        rows = await notification_store.pool.fetch("SELECT alert_id FROM deliveries WHERE status = 3")
        return [row["alert_id"] for row in rows]

    stop_producing = asyncio.Event()
    cycles = [0]
    producer = asyncio.create_task(_producer(app, stop_producing, cycles))
    try:
        # Flowing before the restart: some alerts went all the way through.
        deadline = loop.time() + 60
        while len(await sent()) < 5 * WATCHES:
            assert loop.time() < deadline, "alerts did not flow before the restart"
            assert not producer.done(), producer
            await asyncio.sleep(0.1)

        stop_began = loop.time()
        await asyncio.to_thread(rabbit.stop)
        raised_when_down = len(await raised())
        sent_when_down = len(await sent())
        down_cycles = cycles[0]
        await asyncio.sleep(1.0)  # the producer goes on raising alerts while no broker runs
        await asyncio.to_thread(rabbit.start)
        broker_back = loop.time()
        raised_when_back = len(await raised())
        assert raised_when_back > raised_when_down, "no alert was raised while the broker was down"
        assert cycles[0] > down_cycles

        # Keep producing after the broker came back, until alerts raised after it are delivered too.
        after = len(await raised())
        deadline = loop.time() + 90
        while len(await sent()) <= sent_when_down:
            assert loop.time() < deadline, "nothing was delivered after the restart"
            await asyncio.sleep(0.1)
        first_delivery = loop.time()
        deadline = loop.time() + 90
        while True:
            later = (await raised())[after: after + WATCHES]
            if len(later) == WATCHES and set(later) <= set(await sent()):
                break
            assert loop.time() < deadline, "alerts raised after the restart were not delivered"
            assert not producer.done(), producer
            await asyncio.sleep(0.1)
        recovered = loop.time()
        stop_producing.set()
        await asyncio.wait_for(producer, 30)

        raised_ids = await raised()
        deadline = loop.time() + 90
        while set(await sent()) != set(raised_ids):
            assert loop.time() < deadline, (
                f"{len(set(raised_ids) - set(await sent()))} of {len(raised_ids)} alerts not delivered"
            )
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # give a late duplicate the chance to show

        delivered = await sent()
        assert Counter(delivered) == Counter(set(raised_ids))  # one SENT delivery per alert (the dedup record)
        assert len(raised_ids) == len(set(raised_ids))
        # Twilio can be asked, so it got exactly one SMS per alert: one per delivery's "[ref ...]" tag.
        sms = Counter(message.body.rsplit("[ref ", 1)[1].rstrip("]") for message in fake_twilio.messages)
        references = {row["delivery_id"].replace("-", "")[:10]
                      for row in await notification_store.pool.fetch("SELECT delivery_id FROM deliveries")}
        assert sms == Counter(references)
        assert len(references) == len(raised_ids)
        assert await delta_store.pending_outbox(10) == []
        assert not any(task.done() for task in app._tasks)  # the outbox relay and the alert feed are still running
        assert consumer._task is not None and not consumer._task.done()
        print(f"\nbroker restart: stop->ready {broker_back - stop_began:.1f}s,"
              f" ready->first delivery {first_delivery - broker_back:.1f}s,"
              f" ready->alerts raised after it delivered {recovered - broker_back:.1f}s;"
              f" {len(raised_ids)} alerts raised ({raised_when_back - raised_when_down} while the broker was down),"
              f" {len(delivered)} delivered, {len(fake_twilio.messages)} SMS")
    finally:
        stop_producing.set()
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await asyncio.wait_for(app.stop(), 30)
        await asyncio.wait_for(consumer.stop(), 30)
        await asyncio.wait_for(scheduler.stop(), 30)
        await asyncio.wait_for(producer_bus.close(), 30)
        await asyncio.wait_for(consumer_bus.close(), 30)
        await delta_store.close()
        await notification_store.close()
