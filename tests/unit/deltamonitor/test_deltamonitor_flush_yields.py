"""The periodic flush of live states reads the book in slices, with the event loop free between them (so the ticks
waiting behind it are not held for the whole book), and still persists every changed state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.deltamonitor import app as app_module
from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.deltamonitor.adapters.memory_store import InMemoryStore
from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.app import AppSettings, Monitor
from services.deltamonitor.domain.book import Book
from services.deltamonitor.domain.model import StaticBand
from services.platform.clock import FakeClock

from tests.unit.deltamonitor.conftest import watch


async def test_flush_reads_the_book_in_slices_and_saves_every_changed_state(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = InMemoryStore()
    count = 3 * app_module._FLUSH_SLICE + 10
    for i in range(count):
        await store.create_watch(watch(StaticBand(-1.0, 1.0), watch_id=f"w{i:05d}"), f"r{i}", 10**6)
    monitor = Monitor(store=store, pricer=NumpyBlackScholesPricer(), calendar=ExchangeCalendar(around=datetime(2024, 1, 2, tzinfo=UTC)),
                      clock=FakeClock(), settings=AppSettings(), on_alerts=lambda alerts: None)
    await monitor.load()

    # Watches read between two turns of another task.
    read_since_turn = [0]
    most = [0]
    snapshot = Book.snapshot_live

    def counting(self, watch_ids):  # type: ignore[no-untyped-def]
        ids = list(watch_ids)
        read_since_turn[0] += len(ids)
        most[0] = max(most[0], read_since_turn[0])
        return snapshot(self, ids)

    monkeypatch.setattr(Book, "snapshot_live", counting)
    done = asyncio.Event()

    async def other_task() -> None:
        while not done.is_set():
            read_since_turn[0] = 0
            await asyncio.sleep(0)

    turns = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    saved = await monitor.flush_live()
    done.set()
    await turns

    assert saved == count  # every watch's first live state is new
    assert len(await store.load_live()) == count
    assert most[0] <= app_module._FLUSH_SLICE
    assert await monitor.flush_live() == 0  # nothing changed since
