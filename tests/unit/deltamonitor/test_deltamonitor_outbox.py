"""The alert outbox: a bus that refuses publishes delays alerts, never loses or reorders them."""

from __future__ import annotations

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

    async def publish(self, topic: str, payload: bytes, message_id: str, *, mandatory: bool = False) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise PublishNotConfirmed("broker unreachable")
        await super().publish(topic, payload, message_id, mandatory=mandatory)


def _draft(i: int) -> Alert:
    when = datetime(2024, 1, 2, 15, 0, tzinfo=UTC) + timedelta(seconds=i)
    return Alert("", "u1", "5WW1", "w1", AlertKind.STALE_DATA, Severity.WARNING, AlertState.OPEN, f"t{i}", "m", when,
                 StaleData("SPY", None, timedelta(minutes=2)))


async def test_alerts_survive_a_broker_outage_in_order() -> None:
    store = InMemoryStore()
    bus = FlakyBus(failures=3)
    app = DeltaMonitorApp(store=store, positions=InMemoryBroker(), inputs=None, pricer=NumpyBlackScholesPricer(),
                          calendar=ExchangeCalendar(around=datetime(2024, 1, 2, tzinfo=UTC)), bus=bus,
                          encode=encode_alert, decode=decode_alert, clock=FakeClock(), settings=AppSettings())
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
