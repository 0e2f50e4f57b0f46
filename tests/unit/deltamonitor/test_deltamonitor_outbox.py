"""The alert outbox: a bus that refuses publishes delays alerts, never loses or reorders them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.deltamonitor.adapters.memory_store import InMemoryStore
from services.deltamonitor.adapters.peers import InMemoryBroker
from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.api.convert import decode_alert, encode_alert
from services.deltamonitor.app import AppSettings, DeltaMonitorApp
from services.deltamonitor.domain.model import (
    Alert,
    AlertKind,
    AlertState,
    Severity,
    StaleData,
)
from services.platform.bus import InProcessBus, PublishNotConfirmed
from services.platform.clock import FakeClock


class FlakyBus(InProcessBus):
    """An in-process bus whose next ``failures`` publishes are not confirmed, as during a broker outage."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(
        self, topic: str, payload: bytes, message_id: str, *, mandatory: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise PublishNotConfirmed("broker unreachable")
        await super().publish(topic, payload, message_id, mandatory=mandatory, headers=headers)


def _draft(i: int) -> Alert:
    when = datetime(2024, 1, 2, 15, 0, tzinfo=UTC) + timedelta(seconds=i)
    return Alert("", "u1", "5WW1", "w1", AlertKind.STALE_DATA, Severity.WARNING, AlertState.OPEN, f"t{i}", "m", when,
                 StaleData("SPY", None, timedelta(minutes=2)))


def _app(store: InMemoryStore, bus: InProcessBus) -> DeltaMonitorApp:
    return DeltaMonitorApp(store=store, positions=InMemoryBroker(), inputs=None, pricer=NumpyBlackScholesPricer(),
                           calendar=ExchangeCalendar(around=datetime(2024, 1, 2, tzinfo=UTC)), bus=bus,
                           encode=encode_alert, decode=decode_alert, clock=FakeClock(), settings=AppSettings())


async def test_alerts_survive_a_broker_outage_in_order() -> None:
    store = InMemoryStore()
    bus = FlakyBus(failures=3)
    app = _app(store, bus)
    received = await bus.subscribe("deltamonitor.alert.raised", queue="notification.alerts")
    stored = await store.record_alerts([_draft(i) for i in range(5)], {})
    for _ in range(3):
        with pytest.raises(PublishNotConfirmed):
            await app.publish_pending()
    assert len(await store.pending_outbox(10)) == 5
    assert await app.publish_pending() == 5
    assert await store.pending_outbox(10) == []
    ids = [(await received.__anext__()).message_id for _ in range(5)]
    assert ids == [a.alert_id for a in stored]
    await bus.close()


async def test_the_headers_recorded_with_an_alert_travel_with_its_published_event() -> None:
    store = InMemoryStore()
    bus = InProcessBus()
    app = _app(store, bus)
    received = await bus.subscribe("deltamonitor.alert.*", queue="notification.alerts")
    traceparent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    (alert,) = await store.record_alerts([_draft(0)], {}, {"traceparent": traceparent})
    await store.acknowledge("u1", alert.alert_id, datetime(2024, 1, 2, 16, 0, tzinfo=UTC), {"traceparent": traceparent})
    await store.record_alerts([_draft(1)], {})
    assert await app.publish_pending() == 3
    messages = [await received.__anext__() for _ in range(3)]
    assert [(m.topic, dict(m.headers)) for m in messages] == [
        ("deltamonitor.alert.raised", {"traceparent": traceparent}),
        ("deltamonitor.alert.acknowledged", {"traceparent": traceparent}),
        ("deltamonitor.alert.raised", {}),
    ]
    await bus.close()
