"""Alert writes leave the feed running: the tick consumer applies the next ticks while an alert is written, and
the writes keep the order of the ticks (re-arms included)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.deltamonitor.adapters.memory_store import InMemoryStore
from services.deltamonitor.adapters.peers import InMemoryBroker
from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.adapters.ticks import TickConsumer
from services.deltamonitor.api.convert import decode_alert, encode_alert
from services.deltamonitor.app import AppSettings, DeltaMonitorApp
from services.deltamonitor.domain.model import Alert, Metric, StaticBand, WatchState
from services.deltamonitor.ports import AlertQuery
from services.platform.bus import InProcessBus
from services.platform.clock import FakeClock

from tests.unit.deltamonitor.conftest import ACCOUNT, USER, shares, watch


class GatedStore(InMemoryStore):
    """An in-memory store whose first alert write waits until the test opens the gate (a slow database)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.calls: list[list[str]] = []

    async def record_alerts(self, drafts: Sequence[Alert], *args: Any, **kwargs: Any) -> list[Alert]:
        self.calls.append([d.watch_id for d in drafts])
        if len(self.calls) == 1:
            await self.gate.wait()
        return await super().record_alerts(drafts, *args, **kwargs)


def _quote(price: float, nanos: int) -> bytes:
    return json.dumps({"source": "simulator", "quotes": [{"symbol": "SPY", "mark_price": price, "time_unix_nanos": nanos}]}).encode()


async def _until(condition, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


async def test_ticks_go_on_while_an_alert_is_written_and_writes_keep_their_order() -> None:
    store = GatedStore()
    bus = InProcessBus()
    app = DeltaMonitorApp(store=store, positions=InMemoryBroker(), inputs=None, pricer=NumpyBlackScholesPricer(),
                          calendar=ExchangeCalendar(around=datetime(2024, 1, 2, tzinfo=UTC)), bus=bus,
                          encode=encode_alert, decode=decode_alert, clock=FakeClock(), settings=AppSettings())
    # 10 shares of SPY in dollars: inside [0, 5,000] at 400, outside at 600; hysteresis re-arms deep inside.
    await store.create_watch(watch(StaticBand(0.0, 5000.0), metric=Metric.DOLLARS), "", 100)
    monitor = app.monitor  # the monitor alone: no outbox or sweep loops to stop
    monitor.positions_snapshot(ACCOUNT, [shares(10.0)])
    await monitor.load()
    consumer = TickConsumer(bus, monitor, ["marketdata.quotes.*"], interest_check_seconds=3600.0)
    await consumer.start()
    try:
        base = 1_704_207_600 * 10**9
        for i, price in enumerate([400.0, 600.0, 400.0, 600.0, 610.0]):
            await bus.publish("marketdata.quotes.SPY", _quote(price, base + i * 10**9), f"q{i}")
        # The first alert's write is held up; the consumer still applies every later tick.
        await _until(lambda: monitor.stats.ticks == 5)
        assert len(store.calls) == 1 and await store.list_alerts(USER, AlertQuery(limit=10)) == []
        assert monitor.live_state("w1").state is WatchState.BREACHED  # type: ignore[union-attr]
        store.gate.set()
        await monitor.writes_done()
        # Alert 1 (600), then the re-arm (400), then alert 2 (600): written in that order, one alert each.
        assert store.calls == [["w1"], ["w1"]]
        stored = list(reversed(await store.list_alerts(USER, AlertQuery(limit=10))))  # oldest first
        assert [a.detail.delta_after for a in stored] == [6000.0, 6000.0]  # type: ignore[union-attr]
        assert [a.raise_time.second for a in stored] == [1, 3]
    finally:
        store.gate.set()
        await consumer.stop()
        await bus.close()
