"""The periodic flush of live states reads only the watches whose state-machine values moved since saved, and reads
and saves them in slices with the event loop free between them (so the ticks and alert writes waiting behind it are
not held for the whole book), and still persists every changed state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.deltamonitor import app as app_module
from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.deltamonitor.adapters.memory_store import InMemoryStore
from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.app import AppSettings, Monitor
from services.deltamonitor.domain.book import Book
from services.deltamonitor.domain.model import StaticBand, UnderlyingTarget, WatchState
from services.platform.clock import FakeClock

from tests.unit.deltamonitor.conftest import ACCOUNT, NOW, shares, watch


def _monitor(store: InMemoryStore) -> Monitor:
    return Monitor(store=store, pricer=NumpyBlackScholesPricer(), calendar=ExchangeCalendar(around=datetime(2024, 1, 2, tzinfo=UTC)),
                   clock=FakeClock(), settings=AppSettings(), on_alerts=lambda alerts: None)


async def test_flush_reads_the_book_in_slices_and_saves_every_changed_state(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = InMemoryStore()
    count = 3 * app_module._FLUSH_SLICE + 10
    for i in range(count):
        await store.create_watch(watch(StaticBand(-1.0, 1.0), watch_id=f"w{i:05d}"), f"r{i}", 10**6)
    monitor = _monitor(store)
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
    saves: list[int] = []
    save = store.save_live

    async def sizing(states, fence=None):  # type: ignore[no-untyped-def]
        saves.append(len(states))
        await save(states, fence)

    monkeypatch.setattr(store, "save_live", sizing)
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
    # Saved a slice per statement (the write lock is not held for the whole book), every state once.
    assert max(saves) <= app_module._FLUSH_SLICE and sum(saves) == count
    assert await monitor.flush_live() == 0  # nothing changed since


async def test_flush_reads_only_the_watches_whose_state_moved(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = InMemoryStore()
    half = app_module._FLUSH_SLICE + 5
    spy = {f"w{i:05d}" for i in range(half)}
    for i in range(2 * half):
        target = UnderlyingTarget("SPY" if f"w{i:05d}" in spy else "QQQ")
        await store.create_watch(watch(StaticBand(-1000.0, 1000.0), watch_id=f"w{i:05d}", target=target), f"r{i}", 10**6)
    monitor = _monitor(store)
    await monitor.load()
    monitor.set_positions(ACCOUNT, [shares(10), shares(10, symbol="QQQ")])
    assert await monitor.flush_live() == 2 * half  # every first state is new

    read: list[str] = []
    snapshot = Book.snapshot_live

    def recording(self, watch_ids):  # type: ignore[no-untyped-def]
        ids = list(watch_ids)
        read.extend(ids)
        return snapshot(self, ids)

    monkeypatch.setattr(Book, "snapshot_live", recording)
    await monitor.on_quote("SPY", 400.0, NOW)  # SPY's watches are evaluated (armed); QQQ's are not
    read.clear()
    assert await monitor.flush_live() == half
    assert set(read) == spy
    live = await store.load_live()
    assert {w for w, (_, state) in live.items() if state.state is WatchState.ARMED} == spy

    await monitor.on_quote("SPY", 401.0, NOW)  # a new delta, the same state: nothing to save or read
    read.clear()
    assert await monitor.flush_live() == 0
    assert read == []
