"""Application layer of the delta monitor: watch CRUD, the monitor engine, the alert outbox and alert streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.deltamonitor.domain.book import Book, BookSettings, LiveState
from services.deltamonitor.domain.errors import (
    AlertNotFound,
    FieldInvalid,
    FieldRequired,
    PageTokenInvalid,
    TargetNotHeld,
    TimeRangeInvalid,
    TooManyStreams,
    WatchNotFound,
)
from services.deltamonitor.domain.partitions import partition_of
from services.deltamonitor.domain.model import (
    Alert,
    AlertState,
    HeldPosition,
    PositionTarget,
    UnderlyingTarget,
    Watch,
    WatchLive,
)
from services.deltamonitor.domain.validation import WatchDraft, apply_update, new_watch
from services.deltamonitor.ports import (
    WATCH_CHANGED_TOPIC,
    AlertQuery,
    Caller,
    Fence,
    LeaseLost,
    MarketCalendar,
    MarketInputs,
    MarketInputsSource,
    PartitionLeases,
    PositionSource,
    Pricer,
    Store,
    WatchCursor,
)
from services.deltamonitor.ownership import PartitionKeeper
from services.platform.bus import BusError, MessageBus
from services.platform.clock import Clock
from services.platform import paging, telemetry

__all__ = ["AlertHub", "AppSettings", "DeltaMonitorApp", "Heartbeat", "Monitor", "StreamEnd", "WatchView"]

log = logging.getLogger("tastyplat.deltamonitor")

# Watches whose live states a flush reads and saves (one statement) between two turns of the event loop.
_FLUSH_SLICE = 256


@dataclass(frozen=True, slots=True)
class AppSettings:
    """Behaviour settings of the application (built from the service settings by the wiring).

    Attributes:
        book: Model inputs and defaults of the re-pricing book.
        watch_limit: Watches per user.
        streams_per_user: Open StreamAlerts calls per user.
        heartbeat_seconds: Heartbeat period of idle alert streams.
        stale_check_seconds: How often the stale-data machine runs.
        live_flush_seconds: How often changed watch states are persisted.
        outbox_retry_seconds: Pause after a failed publish before the relay tries again.
        positions_max_age_seconds: Positions are re-read from the broker on API calls at most this often.
        lease_seconds: Replicas share the watched accounts by partition leases of this length (see
            ``services.deltamonitor.ownership``); None: this process evaluates every watch.
        reconcile_seconds: With leases, how often the owned watches are compared with the store (a missed
            ``deltamonitor.watch.changed`` message is caught up with then).
    """

    book: BookSettings = BookSettings()
    watch_limit: int = 200
    streams_per_user: int = 5
    heartbeat_seconds: float = 15.0
    stale_check_seconds: float = 5.0
    live_flush_seconds: float = 2.0
    outbox_retry_seconds: float = 1.0
    positions_max_age_seconds: float = 30.0
    lease_seconds: float | None = None
    reconcile_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """An idle stream's keep-alive."""

    time: datetime


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last message of a stream the server ends."""

    reason: str


@dataclass(frozen=True, slots=True)
class WatchView:
    """A watch with its live state."""

    watch: Watch
    live: WatchLive


class AlertHub:
    """Fans alerts out to the open streams of their user (fed from the bus, so every replica sees every alert)."""

    def __init__(self) -> None:
        """Start with no subscribers."""
        self._subscribers: dict[str, set[asyncio.Queue[Alert | None]]] = {}

    def open(self, user_id: str, limit: int) -> asyncio.Queue[Alert | None]:
        """Register a stream of ``user_id``.

        Raises:
            TooManyStreams: the user has ``limit`` streams open.
        """
        queues = self._subscribers.setdefault(user_id, set())
        if len(queues) >= limit:
            raise TooManyStreams(limit)
        queue: asyncio.Queue[Alert | None] = asyncio.Queue()
        queues.add(queue)
        return queue

    def close(self, user_id: str, queue: asyncio.Queue[Alert | None]) -> None:
        """Unregister a stream."""
        queues = self._subscribers.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[user_id]

    def dispatch(self, alert: Alert) -> None:
        """Hand an alert to every stream of its user."""
        for queue in self._subscribers.get(alert.user_id, ()):
            queue.put_nowait(alert)

    def end_all(self) -> None:
        """Tell every stream to end (server shutdown)."""
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)

    @property
    def open_streams(self) -> int:
        """Number of open streams."""
        return sum(len(q) for q in self._subscribers.values())


@dataclass(slots=True)
class _AccountSnapshot:
    positions: list[HeldPosition]
    fetched_at: float


@dataclass(slots=True)
class _Stats:
    ticks: int = 0
    greeks: int = 0
    priced: int = 0
    evaluated: int = 0
    alerts: int = 0
    book_seconds: float = 0.0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


class Monitor:
    """The engine: holds the book, applies ticks, runs the stale machine, persists alerts and live states."""

    def __init__(
        self,
        *,
        store: Store,
        pricer: Pricer,
        calendar: MarketCalendar,
        clock: Clock,
        settings: AppSettings,
        on_alerts: Callable[[list[Alert]], None],
        replica_id: str = "",
    ) -> None:
        """Create an empty monitor; ``load`` (every watch) or ``acquire`` (with leases) fills it from the store."""
        self._store = store
        self._replica_id = replica_id
        # Partitions whose watches this replica evaluates; None: all of them (no leases).
        self._owned: set[int] | None = None if settings.lease_seconds is None else set()
        # Serialises changes of what the book holds (acquire, release, reloads of changed watches), so a reload
        # read before another replica's commit cannot overwrite one read after it.
        self._membership = asyncio.Lock()
        self._pricer = pricer
        self._calendar = calendar
        self._clock = clock
        self._settings = settings
        self._on_alerts = on_alerts
        self._watches: dict[str, Watch] = {}
        self._accounts: dict[str, _AccountSnapshot] = {}
        self.book = Book([], [], pricer=pricer, settings=settings.book)
        self._saved: dict[str, tuple[int, int, float, bool]] = {}
        self._unrecorded: list[Alert] = []
        self._lock = asyncio.Lock()
        # The newest write queued by apply_quote; each write waits for the one before it (see apply_quote).
        self._writing: asyncio.Task[list[Alert]] | None = None
        self.stats = _Stats()

    def owns(self, watch: Watch) -> bool:
        """Whether this replica evaluates ``watch``."""
        return self.owns_account(watch.account_number)

    def owns_account(self, account_number: str) -> bool:
        """Whether this replica evaluates the watches of ``account_number``."""
        return self._owned is None or partition_of(account_number) in self._owned

    @property
    def partitions(self) -> frozenset[int] | None:
        """The partitions this replica evaluates (None: every watch, no leases)."""
        return None if self._owned is None else frozenset(self._owned)

    async def load(self) -> None:
        """Load watches and their persisted live state from the store (with leases: those of owned partitions)."""
        watches = [w for w in await self._store.all_watches() if self.owns(w)]
        live = await self._store.load_live()
        watched = {w.account_number for w in watches}
        for account, (positions, inputs) in (await self._store.load_accounts()).items():
            if account in watched and account not in self._accounts:
                # Restored with age "infinitely old": the next API call of the owner reads the broker again.
                self._accounts[account] = _AccountSnapshot(positions, -math.inf)
                self.book.market.betas.update(inputs.betas)
                self.book.market.dividend_yields.update(inputs.dividend_yields)
        self._watches = {w.watch_id: w for w in watches}
        self.book = Book(
            watches,
            self._positions(),
            pricer=self._pricer,
            settings=self._settings.book,
            market=self.book.market,
            live=LiveState(dict(live)),
        )
        self._saved = {k: self._key(v[0], v[1]) for k, v in live.items()}

    async def acquire(self, partitions: Iterable[int]) -> int:
        """Start evaluating the watches of ``partitions`` (leases just won): load them with their live states and
        account snapshots from the store, then evaluate them at the last prices seen, so a band crossed while no
        replica held them still alerts. Returns how many watches were added.
        """
        if self._owned is None:
            return 0
        async with self._membership:
            wanted = set(partitions) - self._owned
            if not wanted:
                return 0
            watches = [w for w in await self._store.all_watches() if partition_of(w.account_number) in wanted]
            accounts = sorted({w.account_number for w in watches})
            snapshots = await self._store.load_accounts(accounts) if accounts else {}
            live = await self._store.load_live([w.watch_id for w in watches]) if watches else {}
            self._owned |= wanted
            for account, (positions, inputs) in snapshots.items():
                # Age "infinitely old": the next API call of the owner reads the broker again.
                self._accounts[account] = _AccountSnapshot(positions, -math.inf)
                self.book.market.betas.update(inputs.betas)
                self.book.market.dividend_yields.update(inputs.dividend_yields)
            for watch in watches:
                self._watches[watch.watch_id] = watch
                entry = live.get(watch.watch_id)
                if entry is None:
                    self.book.live.watches.pop(watch.watch_id, None)
                    self._saved.pop(watch.watch_id, None)
                else:
                    self.book.live.watches[watch.watch_id] = entry
                    self._saved[watch.watch_id] = self._key(entry[0], entry[1])
            if watches:
                self._rebuild()
        await self._evaluate_at_last_prices(accounts)
        return len(watches)

    async def _evaluate_at_last_prices(self, accounts: Collection[str]) -> list[Alert]:
        symbols = sorted({p.underlying_symbol for a in accounts if (snap := self._accounts.get(a)) for p in snap.positions})
        alerts: list[Alert] = []
        for symbol in symbols:
            price, seen = self.book.market.prices.get(symbol), self.book.market.updated.get(symbol)
            if price is not None and seen is not None:
                alerts += await self.on_quote(symbol, price, datetime.fromtimestamp(seen, UTC))
        return alerts

    def drop(self, partitions: Iterable[int]) -> None:
        """Stop evaluating ``partitions`` at once, without writing anything (their leases are lost or lapsing).

        Alerts of theirs not yet written are discarded: the replica that holds them now evaluates their watches
        from the stored state and raises those alerts itself.
        """
        if self._owned is None:
            return
        gone = set(partitions) & self._owned
        if not gone:
            return
        self._owned -= gone
        for watch_id in [k for k, w in self._watches.items() if partition_of(w.account_number) in gone]:
            del self._watches[watch_id]
            self._saved.pop(watch_id, None)
        self._unrecorded = [d for d in self._unrecorded if partition_of(d.account_number) not in gone]
        for account in [a for a in self._accounts if partition_of(a) in gone]:
            del self._accounts[account]
        self._rebuild()

    async def release(self, partitions: Iterable[int]) -> frozenset[int]:
        """Hand ``partitions`` over (rebalancing, shutdown): write their pending alerts and changed live states
        while the leases are still held, then stop evaluating them. Returns the partitions given up; the caller
        releases their leases afterwards.

        Raises:
            DatabaseUnavailable: the flush failed; the partitions stay with this replica.
        """
        if self._owned is None:
            return frozenset()
        async with self._membership:
            gone = set(partitions) & self._owned
            if not gone:
                return frozenset()
            await self.writes_done()
            if any(partition_of(d.account_number) in gone for d in self._unrecorded):
                await self._record([])
            gone &= self._owned
            changed = self._live_of(self._moved(w for w in self._watches.values() if partition_of(w.account_number) in gone))
            self.drop(gone)
            if changed:
                with contextlib.suppress(LeaseLost):  # already someone else's: their state is the stored one
                    async with self._lock:
                        await self._store.save_live(changed, self._fence(gone))
            return frozenset(gone)

    async def watch_changed(self, user_id: str, watch_id: str, account_number: str) -> bool:
        """A replica created, changed or deleted a watch: reload it (and the account's positions) from the store
        if this replica evaluates its account. Returns whether the book changed."""
        async with self._membership:
            if not self.owns_account(account_number):
                return False
            watch = await self._store.get_watch(user_id, watch_id)
            snapshots = await self._store.load_accounts([account_number])
            if not self.owns_account(account_number):
                return False
            changed = self._adopt_account(account_number, snapshots)
            if watch is None:
                if self._watches.pop(watch_id, None) is not None:
                    self._saved.pop(watch_id, None)
                    changed = True
            elif self._watches.get(watch_id) != watch:
                self._watches[watch_id] = watch
                changed = True
            if changed:
                self._rebuild()
            return changed

    async def reconcile(self) -> int:
        """Compare the owned watches with the store and take over any difference (a change message that never
        arrived). Returns how many watches were added, replaced or removed."""
        if self._owned is None:
            return 0
        async with self._membership:
            stored = {w.watch_id: w for w in await self._store.all_watches() if self.owns(w)}
            differ = {k for k in stored.keys() | self._watches.keys() if stored.get(k) != self._watches.get(k)}
            if not differ:
                return 0
            accounts = sorted({w.account_number for k in differ for w in (stored.get(k), self._watches.get(k)) if w})
            snapshots = await self._store.load_accounts(accounts)
            for account in accounts:
                self._adopt_account(account, snapshots)
            for watch_id in differ:
                if watch_id in stored:
                    self._watches[watch_id] = stored[watch_id]
                else:
                    self._watches.pop(watch_id, None)
                    self._saved.pop(watch_id, None)
            self._rebuild()
            return len(differ)

    def _adopt_account(self, account_number: str, snapshots: dict[str, tuple[list[HeldPosition], MarketInputs]]) -> bool:
        snapshot = snapshots.get(account_number)
        current = self._accounts.get(account_number)
        if snapshot is None or (current is not None and current.positions == snapshot[0]):
            return False
        self._accounts[account_number] = _AccountSnapshot(snapshot[0], -math.inf)
        self.book.market.betas.update(snapshot[1].betas)
        self.book.market.dividend_yields.update(snapshot[1].dividend_yields)
        return True

    def _fence(self, partitions: Iterable[int]) -> Fence | None:
        return None if self._owned is None else Fence(self._replica_id, frozenset(partitions))

    @staticmethod
    def _key(generation: int, live: WatchLive) -> tuple[int, int, float, bool]:
        # The generation, then the values ``Book.machine_keys`` reads from the book's columns.
        last = live.last_alert_time.timestamp() if live.last_alert_time else -math.inf
        return generation, int(live.state), last, live.stale

    def _positions(self) -> list[HeldPosition]:
        return [p for snap in self._accounts.values() for p in snap.positions]

    def _rebuild(self) -> None:
        self.book = Book(
            list(self._watches.values()),
            self._positions(),
            pricer=self._pricer,
            settings=self._settings.book,
            market=self.book.market,
            live=self.book.export_live(),
        )

    def positions_age(self, account_number: str) -> float:
        """Seconds since the account's positions were read, or infinity."""
        snap = self._accounts.get(account_number)
        return math.inf if snap is None else self._clock.monotonic() - snap.fetched_at

    def positions_of(self, account_number: str) -> list[HeldPosition] | None:
        """The last positions read for the account, or None."""
        snap = self._accounts.get(account_number)
        return None if snap is None else list(snap.positions)

    def positions_snapshot(self, account_number: str, positions: Sequence[HeldPosition]) -> None:
        """Record an account's positions without rebuilding the book (bulk loads rebuild once after)."""
        self._accounts[account_number] = _AccountSnapshot(list(positions), self._clock.monotonic())

    def set_positions(self, account_number: str, positions: Sequence[HeldPosition]) -> None:
        """Replace an account's positions and rebuild the book (if this replica evaluates the account)."""
        self._accounts[account_number] = _AccountSnapshot(list(positions), self._clock.monotonic())
        if self.owns_account(account_number):
            self._rebuild()

    def set_inputs(self, betas: dict[str, float], dividend_yields: dict[str, float]) -> None:
        """Record betas and dividend yields."""
        self.book.set_betas(betas)
        self.book.set_dividend_yields(dividend_yields)

    def put_watch(self, watch: Watch) -> None:
        """Add or replace a watch and rebuild the book."""
        if self.owns(watch):
            self._watches[watch.watch_id] = watch
            self._rebuild()

    def remove_watch(self, watch_id: str) -> None:
        """Drop a watch and rebuild the book."""
        if self._watches.pop(watch_id, None) is not None:
            self._saved.pop(watch_id, None)
            self._rebuild()

    def live_state(self, watch_id: str) -> WatchLive | None:
        """The watch's live state, if this replica evaluates it."""
        return self.book.live_state(watch_id)

    async def on_quote(self, symbol: str, price: float, when: datetime) -> list[Alert]:
        """Apply a quote of ``symbol``; persist and announce the alerts it raised."""
        written = self.apply_quote(symbol, price, when)
        # Shielded: a caller that gives up does not cancel a write other ticks' writes are queued behind.
        return [] if written is None else await asyncio.shield(written)

    def apply_quote(self, symbol: str, price: float, when: datetime) -> asyncio.Task[list[Alert]] | None:
        """Apply a quote of ``symbol`` now and queue the writes it calls for; the tick consumer's entry.

        The book moves at once; the alerts it raised and the watches it re-armed are written by a task that
        starts after every write queued before it, so writes keep the order of the ticks while the next tick
        is already being priced (an alert's database round trips no longer hold the feed up). A re-arm is
        still written before anything a later tick raises: a replica taking the watch over from a stale
        BREACHED state would let the next crossing pass silently.

        Returns:
            None when nothing is to be written, else the task (its result: the stored alerts).
        """
        started = time.perf_counter()
        evaluation = self.book.on_quote(symbol, price, when)
        self.stats.book_seconds += time.perf_counter() - started
        self.stats.ticks += 1
        self.stats.priced += evaluation.priced
        self.stats.evaluated += evaluation.evaluated
        if not (evaluation.alerts or self._unrecorded or self.book.rearmed):
            return None
        rearmed, self.book.rearmed = set(self.book.rearmed), []
        previous = self._writing
        task = asyncio.create_task(self._write_after(previous, evaluation.alerts, rearmed), name="deltamonitor-write")
        self._writing = task
        return task

    async def _write_after(
        self, previous: asyncio.Task[list[Alert]] | None, alerts: list[Alert], rearmed: set[str]
    ) -> list[Alert]:
        if previous is not None and not previous.done():
            # Waits without taking on its outcome: its failure is its awaiter's to report, and its unwritten
            # alerts wait in _unrecorded for this write. (Waiting on a finished task would still cost turns of
            # the event loop, which a busy feed makes long.)
            await asyncio.wait([previous])
        recorded = await self._record(alerts) if alerts or self._unrecorded else []
        if rearmed:
            try:
                await self._save_rearmed(rearmed)
            except Exception as error:  # noqa: BLE001 - the periodic flush writes it; the feed must go on
                log.warning("cannot persist re-armed watches now", extra={"error": repr(error)})
        return recorded

    async def writes_done(self) -> None:
        """Wait until every write queued by ``apply_quote`` has ended (failures are their awaiters' to report)."""
        while (task := self._writing) is not None and not task.done():
            await asyncio.wait([task])

    async def _save_rearmed(self, ids: set[str]) -> None:
        # A re-armed watch's state moved (BREACHED -> ARMED): saved without comparing.
        await self._save_live(self._live_of([w for i in ids if (w := self._watches.get(i)) is not None]))

    def on_greeks(self, symbol: str, volatility: float, when: datetime) -> None:
        """Apply an option's implied vol (evaluated with the next quote, or ``after_greeks``)."""
        self.stats.greeks += 1
        self.book.on_greeks(symbol, volatility, when)

    async def after_greeks(self, option_symbols: Sequence[str], when: datetime) -> list[Alert]:
        """Re-price the underlyings of options whose implied vols just changed, at their last price."""
        alerts: list[Alert] = []
        for underlying in self.book.underlyings_of(option_symbols):
            price = self.book.market.prices.get(underlying)
            if price is not None:
                alerts += await self.on_quote(underlying, price, when)
        return alerts

    async def sweep_stale(self) -> list[Alert]:
        """Run the stale-data machine now."""
        now = self._clock.now()
        drafts = self.book.sweep_stale(now, market_open=self._calendar.is_open(now))
        if not drafts:
            return []
        return await self._record(drafts)

    async def _record(self, fresh: list[Alert]) -> list[Alert]:
        # Alerts whose write failed earlier go first: the book already moved their watches to BREACHED, so
        # they would otherwise be lost; they are kept and retried until stored.
        drafts = self._unrecorded + fresh
        self._unrecorded = []
        while True:
            ids = {d.watch_id for d in drafts}
            live = {
                watch_id: (self._watches[watch_id].generation, state)
                for watch_id, state in self.book.snapshot_live(ids).items()
                if watch_id in self._watches
            }
            fence = self._fence(partition_of(d.account_number) for d in drafts)
            try:
                async with self._lock:
                    # The context of the tick being processed (or none, for a sweep): the outbox keeps it, so the
                    # alert's publish and its deliveries join the tick's trace.
                    stored = await self._store.record_alerts(drafts, live, telemetry.inject_headers(), fence=fence)
                break
            except LeaseLost as lost:
                # Another replica holds these partitions now and raises their alerts from the stored state:
                # writing ours as well would duplicate them.
                log.warning("partition leases lost; their alerts are left to the new owner",
                            extra={"partitions": sorted(lost.partitions)})
                self.drop(lost.partitions)
                drafts = [d for d in drafts if partition_of(d.account_number) not in lost.partitions]
                if not drafts or not lost.partitions:
                    return []
            except Exception:
                self._unrecorded = drafts + self._unrecorded
                raise
        for watch_id, (generation, state) in live.items():
            self._saved[watch_id] = self._key(generation, state)
        self.stats.alerts += len(stored)
        self._on_alerts(stored)
        return stored

    async def flush_live(self) -> int:
        """Persist the live states whose state-machine values changed since the last flush; return how many.

        Alerts whose write failed earlier are written first.
        """
        if self._unrecorded:
            await self._record([])
        # Only the watches whose state-machine values moved are read (a live state costs ~12 µs to build: a
        # 10,000-watch book read whole took ~120 ms of every flush), and they are read and saved a slice at a time,
        # with the event loop free between slices and the write lock taken per slice: saving a whole book's states
        # in one statement (after a start or a rebuild) held an alert's write behind it for ~100 ms.
        watches = self._moved()
        saved = 0
        for first in range(0, len(watches), _FLUSH_SLICE):
            if first:
                await asyncio.sleep(0)
            changed = self._live_of(watches[first : first + _FLUSH_SLICE])
            await self._save_live(changed)
            saved += len(changed)
        return saved

    def _moved(self, watches: Iterable[Watch] | None = None) -> list[Watch]:
        # The watches (all without a list) whose state-machine values differ from what was last persisted, from the
        # book's columns in one pass (~0.5 µs a watch, 4-6 ms for 10,201 in benchmarks/deltamonitor).
        if watches is None:
            watches, keys = list(self._watches.values()), self.book.machine_keys()
        else:
            watches = list(watches)
            keys = self.book.machine_keys(w.watch_id for w in watches)
        saved = self._saved
        return [
            w for w in watches
            if (key := keys.get(w.watch_id)) is not None and saved.get(w.watch_id) != (w.generation, *key)
        ]

    async def _save_live(self, changed: dict[str, tuple[int, WatchLive]]) -> None:
        while changed:
            try:
                async with self._lock:
                    # Watches no longer held (removed while this waited, or dropped with lost leases) are not
                    # written.
                    changed = {k: v for k, v in changed.items() if k in self._watches}
                    if changed:
                        await self._store.save_live(
                            changed, self._fence(partition_of(self._watches[k].account_number) for k in changed)
                        )
                break
            except LeaseLost as lost:
                if not lost.partitions:
                    raise
                self.drop(lost.partitions)
        for watch_id, (generation, live) in changed.items():
            self._saved[watch_id] = self._key(generation, live)

    def _live_of(self, watches: list[Watch]) -> dict[str, tuple[int, WatchLive]]:
        # The live states of ``watches`` (those the book holds), with their generations, for saving.
        lives = self.book.snapshot_live(w.watch_id for w in watches)
        return {w.watch_id: (w.generation, live) for w in watches if (live := lives.get(w.watch_id)) is not None}


class DeltaMonitorApp:
    """Use cases of the DeltaMonitorService, plus the background loops of the monitor."""

    def __init__(
        self,
        *,
        store: Store,
        positions: PositionSource,
        inputs: MarketInputsSource | None,
        pricer: Pricer,
        calendar: MarketCalendar,
        bus: MessageBus,
        encode: Callable[[Alert], bytes],
        decode: Callable[[bytes], Alert],
        clock: Clock,
        settings: AppSettings,
        leases: PartitionLeases | None = None,
        replica_id: str = "",
    ) -> None:
        """Wire the application (``start`` loads state and starts the loops).

        With ``settings.lease_seconds`` set, replicas share the watched accounts by partition leases kept in
        ``leases`` (the store, when it keeps them); ``replica_id`` names this replica (a fresh id by default).
        """
        self.store = store
        # Host and pid tell an operator (and the e2e test) which process holds which partitions.
        self.replica_id = replica_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._positions = positions
        # Who the broker last confirmed as the owner of each account: the positions cache is shared, so a
        # cached account is served only to the user the broker showed it to.
        self._account_owners: dict[str, str] = {}
        self._inputs = inputs
        self._bus = bus
        self._encode = encode
        self._decode = decode
        self._clock = clock
        self.settings = settings
        self.hub = AlertHub()
        self._outbox_kick = asyncio.Event()
        self.monitor = Monitor(
            store=store,
            pricer=pricer,
            calendar=calendar,
            clock=clock,
            settings=settings,
            on_alerts=self._raised,
            replica_id=self.replica_id,
        )
        self.keeper: PartitionKeeper | None = None
        if settings.lease_seconds is not None:
            self.keeper = PartitionKeeper(
                leases=leases if leases is not None else store,  # type: ignore[arg-type]  # both stores keep leases
                monitor=self.monitor,
                replica_id=self.replica_id,
                lease_seconds=settings.lease_seconds,
                clock=clock,
                reconcile_seconds=settings.reconcile_seconds,
            )
        self._tasks: list[asyncio.Task[None]] = []
        self._feed_subscription: object | None = None
        self._change_subscription: object | None = None
        self._draining = asyncio.Event()

    def _raised(self, alerts: list[Alert]) -> None:
        # Streams on this replica get the alert as soon as it is stored; the bus copy (which also reaches other
        # replicas' streams) is recognised by its sequence and not sent twice.
        raised = telemetry.counter("deltamonitor_alerts_raised_total", "Alerts raised and stored, by kind and severity",
                                   ("kind", "severity"))
        for alert in alerts:
            self.hub.dispatch(alert)
            raised.labels(alert.kind.name, alert.severity.name).inc()
        self._outbox_kick.set()

    # ------------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Load watches, subscribe to alert events for streams, start the outbox, stale and flush loops."""
        await self.monitor.load()
        subscription = await self._bus.subscribe(["deltamonitor.alert.*"], prefetch=256)
        self._feed_subscription = subscription
        self._tasks = []
        if self.keeper is not None:
            # Subscribed before the first heartbeat: a change committed after the acquire's read arrives here.
            changes = await self._bus.subscribe([WATCH_CHANGED_TOPIC], prefetch=256)
            self._change_subscription = changes
            self._tasks.append(asyncio.create_task(self._change_loop(changes), name="deltamonitor-watch-changes"))
            await self.keeper.start()
        self._tasks += [
            asyncio.create_task(self._feed_loop(subscription), name="deltamonitor-alert-feed"),
            asyncio.create_task(self._outbox_loop(), name="deltamonitor-outbox"),
            asyncio.create_task(self._periodic(self.settings.stale_check_seconds, self.monitor.sweep_stale), name="deltamonitor-stale"),
            asyncio.create_task(self._periodic(self.settings.live_flush_seconds, self.monitor.flush_live), name="deltamonitor-flush"),
        ]
        self._outbox_kick.set()

    async def drain(self) -> None:
        """End every alert stream with a StreamEnd (server shutdown)."""
        self._draining.set()
        self.hub.end_all()

    async def stop(self) -> None:
        """Stop the loops, flush live states, close the subscription."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.monitor.writes_done()
        with contextlib.suppress(Exception):
            await self.monitor.flush_live()
        if self.keeper is not None:
            await self.keeper.stop()
        for subscription in (self._feed_subscription, self._change_subscription):
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.close()  # type: ignore[attr-defined]

    async def _periodic(self, seconds: float, action: Callable[[], object]) -> None:
        while True:
            await self._clock.sleep(seconds)
            try:
                await action()  # type: ignore[misc]
            except Exception:
                log.exception("periodic task failed", extra={"task": getattr(action, "__name__", "?")})

    async def _outbox_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._outbox_kick.wait(), timeout=self.settings.outbox_retry_seconds)
            self._outbox_kick.clear()
            try:
                await self.publish_pending()
            except Exception as error:
                log.warning("alert outbox: publish failed, will retry", extra={"error": repr(error)})

    async def publish_pending(self) -> int:
        """Publish every queued alert event in order; return how many were published."""
        published = 0
        while True:
            entries = await self.store.pending_outbox(100)
            if not entries:
                return published
            done: list[int] = []
            try:
                for entry in entries:
                    # Published in the trace of the work that queued it, with the headers it was queued with.
                    with telemetry.continue_trace(entry.headers):
                        await self._bus.publish(entry.topic, self._encode(entry.alert), entry.message_id,
                                                headers=entry.headers)
                    done.append(entry.entry_id)
            except BusError:
                await self.store.mark_published(done)
                raise
            await self.store.mark_published(done)
            published += len(done)

    async def _feed_loop(self, subscription: object) -> None:
        async for delivery in subscription:  # type: ignore[attr-defined]
            try:
                alert = self._decode(delivery.payload)
            except ValueError:
                log.warning("dropping an undecodable alert event", extra={"message_id": delivery.message_id})
                await delivery.ack()
                continue
            if delivery.topic.endswith(".raised"):
                self.hub.dispatch(alert)
            await delivery.ack()

    async def _change_loop(self, subscription: object) -> None:
        async for delivery in subscription:  # type: ignore[attr-defined]
            try:
                change = json.loads(delivery.payload)
                await self.monitor.watch_changed(change["user_id"], change["watch_id"], change["account_number"])
            except (ValueError, KeyError, TypeError):
                log.warning("dropping an unreadable watch change", extra={"message_id": delivery.message_id})
            except Exception as error:  # noqa: BLE001  # reconciliation with the store catches up later
                log.warning("cannot reload a changed watch", extra={"error": repr(error)})
            await delivery.ack()

    async def _announce(self, watch: Watch) -> None:
        # With leases the account's owner may be another replica: it reloads the watch when told.
        if self.keeper is None:
            return
        payload = json.dumps(
            {"watch_id": watch.watch_id, "user_id": watch.user_id, "account_number": watch.account_number}
        ).encode()
        try:
            await self._bus.publish(WATCH_CHANGED_TOPIC, payload, f"{watch.watch_id}.{uuid.uuid4().hex[:12]}")
        except BusError as error:
            log.warning("cannot announce a watch change; the owner reconciles with the store",
                        extra={"watch_id": watch.watch_id, "error": repr(error)})

    # ------------------------------------------------------------------------------------------- watches

    async def _refresh_account(self, account_number: str, caller: Caller, *, force: bool) -> list[HeldPosition]:
        owned = self._account_owners.get(account_number) == caller.user_id
        if owned and not force and self.monitor.positions_age(account_number) < self.settings.positions_max_age_seconds:
            cached = self.monitor.positions_of(account_number)
            if cached is not None:
                return cached
        positions = await self._positions.positions(account_number, caller)
        self._account_owners[account_number] = caller.user_id
        inputs = MarketInputs({}, {}, None)
        if self._inputs is not None:
            symbols = sorted({p.underlying_symbol for p in positions} | {"SPY"})
            try:
                inputs = await self._inputs.inputs(symbols, caller)
                self.monitor.set_inputs(inputs.betas, inputs.dividend_yields)
            except Exception as error:  # noqa: BLE001  # betas are best effort; beta watches wait for them
                log.warning("cannot read market inputs", extra={"account": account_number, "error": repr(error)})
        self.monitor.set_positions(account_number, positions)
        # Kept so that a restarted monitor watches these positions before anyone calls the API again.
        await self.store.save_account(account_number, positions, inputs)
        return positions

    @staticmethod
    def _holds(watch: Watch, positions: Sequence[HeldPosition]) -> bool:
        target = watch.target
        if isinstance(target, PositionTarget):
            wanted = target.symbol.replace(" ", "")
            return any(p.symbol.replace(" ", "") == wanted and p.quantity != 0 for p in positions)
        if isinstance(target, UnderlyingTarget):
            return any(p.underlying_symbol == target.underlying_symbol and p.quantity != 0 for p in positions)
        return any(p.quantity != 0 for p in positions)

    def _view(self, watch: Watch, stored: WatchLive | None = None) -> WatchView:
        live = self.monitor.live_state(watch.watch_id)
        return WatchView(watch, live if live is not None else (stored or WatchLive()))

    async def _views(self, watches: Sequence[Watch]) -> list[WatchView]:
        # With leases another replica may evaluate these watches: show the live state it last persisted.
        self.monitor.book.refresh_forecasts(w.watch_id for w in watches)
        elsewhere = [w.watch_id for w in watches if self.monitor.live_state(w.watch_id) is None]
        stored = await self.store.load_live(elsewhere) if elsewhere and self.keeper is not None else {}
        views = []
        for watch in watches:
            entry = stored.get(watch.watch_id)
            views.append(self._view(watch, entry[1] if entry is not None and entry[0] == watch.generation else None))
        return views

    async def create_watch(self, caller: Caller, request_id: str, draft: WatchDraft) -> WatchView:
        """CreateWatch: validate, check the target is held, store, start evaluating."""
        now = self._clock.now()
        watch = new_watch(draft, watch_id=str(uuid.uuid4()), user_id=caller.user_id, now=now)
        if len(request_id) > 128:
            raise FieldInvalid("request_id", "at most 128 characters")
        positions = await self._refresh_account(watch.account_number, caller, force=False)
        if not self._holds(watch, positions):
            raise TargetNotHeld(watch.account_number, watch.target.describe())
        stored = await self.store.create_watch(watch, request_id, self.settings.watch_limit)
        if stored.watch_id == watch.watch_id:
            self.monitor.put_watch(stored)
        await self._announce(stored)
        return self._view(stored)

    async def get_watch(self, caller: Caller, watch_id: str) -> WatchView:
        """GetWatch."""
        if not watch_id:
            raise FieldRequired("watch_id")
        watch = await self.store.get_watch(caller.user_id, watch_id)
        if watch is None:
            raise WatchNotFound(watch_id)
        return (await self._views([watch]))[0]

    async def list_watches(
        self, caller: Caller, page_size: int, page_token: str, account_number: str
    ) -> tuple[list[WatchView], str]:
        """ListWatches: the caller's watches by creation time."""
        size = paging.page_size(page_size, default=100, maximum=1000)
        query = {"account": account_number, "user": caller.user_id}
        after = None
        if page_token:
            cursor = paging.decode_token(page_token, query)
            try:
                after = WatchCursor(datetime.fromisoformat(cursor["t"]), str(cursor["w"]))
            except (KeyError, ValueError, TypeError):
                raise PageTokenInvalid("page_token", "was not issued for this query") from None
        watches = await self.store.list_watches(caller.user_id, account_number, after, size + 1)
        token = ""
        if len(watches) > size:
            watches = watches[:size]
            last = watches[-1]
            token = paging.encode_token({"t": last.create_time.isoformat(), "w": last.watch_id}, query)
        return await self._views(watches), token

    async def update_watch(self, caller: Caller, watch_id: str, draft: WatchDraft, paths: Sequence[str]) -> WatchView:
        """UpdateWatch: apply the masked fields; a band or metric change re-arms the watch."""
        if not watch_id:
            raise FieldRequired("watch_id")
        watch = await self.store.get_watch(caller.user_id, watch_id)
        if watch is None:
            raise WatchNotFound(watch_id)
        changed = apply_update(watch, draft, paths, now=self._clock.now())
        if not await self.store.update_watch(changed):
            raise WatchNotFound(watch_id)
        await self._refresh_account(changed.account_number, caller, force=False)
        self.monitor.put_watch(changed)
        await self._announce(changed)
        return self._view(changed)

    async def delete_watch(self, caller: Caller, watch_id: str) -> None:
        """DeleteWatch (its alerts stay listed)."""
        if not watch_id:
            raise FieldRequired("watch_id")
        watch = await self.store.get_watch(caller.user_id, watch_id)
        if watch is None or not await self.store.delete_watch(caller.user_id, watch_id):
            raise WatchNotFound(watch_id)
        self.monitor.remove_watch(watch_id)
        await self._announce(watch)

    # ------------------------------------------------------------------------------------------- alerts

    async def list_alerts(
        self,
        caller: Caller,
        *,
        page_size: int,
        page_token: str,
        watch_id: str,
        state: AlertState | None,
        start_time: datetime | None,
        end_time: datetime | None,
        account_number: str,
    ) -> tuple[list[Alert], str]:
        """ListAlerts: newest first."""
        size = paging.page_size(page_size, default=100, maximum=1000)
        if start_time is not None and end_time is not None and start_time > end_time:
            raise TimeRangeInvalid("start_time", "must not be after end_time")
        filters = {
            "user": caller.user_id,
            "watch": watch_id,
            "state": None if state is None else int(state),
            "start": None if start_time is None else start_time.isoformat(),
            "end": None if end_time is None else end_time.isoformat(),
            "account": account_number,
        }
        before = None
        if page_token:
            cursor = paging.decode_token(page_token, filters)
            before = cursor.get("s")
            if not isinstance(before, int):
                raise PageTokenInvalid("page_token", "was not issued for this query")
        query = AlertQuery(
            limit=size + 1,
            before_sequence=before,
            watch_id=watch_id,
            state=state,
            start_time=start_time,
            end_time=end_time,
            account_number=account_number,
        )
        alerts = await self.store.list_alerts(caller.user_id, query)
        token = ""
        if len(alerts) > size:
            alerts = alerts[:size]
            token = paging.encode_token({"s": alerts[-1].sequence}, filters)
        return alerts, token

    async def acknowledge_alert(self, caller: Caller, alert_id: str) -> Alert:
        """AcknowledgeAlert: idempotent; the first acknowledgement is announced on the bus (stops escalation)."""
        if not alert_id:
            raise FieldRequired("alert_id")
        alert = await self.store.acknowledge(caller.user_id, alert_id, self._clock.now(), telemetry.inject_headers())
        if alert is None:
            raise AlertNotFound(alert_id)
        self._outbox_kick.set()
        return alert

    async def stream_alerts(
        self, caller: Caller, after_alert_id: str
    ) -> AsyncGenerator[Alert | Heartbeat | StreamEnd, None]:
        """StreamAlerts: the backlog after ``after_alert_id`` in order, then live alerts, with heartbeats.

        Raises:
            AlertNotFound: ``after_alert_id`` is not an alert of the caller.
            TooManyStreams: the caller has too many streams open.
        """
        last_sequence = -1
        if after_alert_id:
            resume = await self.store.get_alert(caller.user_id, after_alert_id)
            if resume is None:
                raise AlertNotFound(after_alert_id)
            last_sequence = resume.sequence
        queue = self.hub.open(caller.user_id, self.settings.streams_per_user)
        return self._stream(caller, queue, last_sequence)

    async def _stream(
        self, caller: Caller, queue: asyncio.Queue[Alert | None], last_sequence: int
    ) -> AsyncGenerator[Alert | Heartbeat | StreamEnd, None]:
        # Each alert may arrive twice (this replica's direct hand-over and the bus copy) and, with several
        # replicas, slightly out of sequence; the sent set makes the stream duplicate-free without dropping a
        # late lower sequence. Everything up to the backlog's end was sent in order from the database.
        floor = last_sequence
        sent: set[int] = set()
        recent: deque[int] = deque()
        try:
            if last_sequence >= 0:
                while True:
                    backlog = await self.store.alerts_after(caller.user_id, floor, 500)
                    for alert in backlog:
                        floor = alert.sequence
                        yield alert
                    if len(backlog) < 500:
                        break
            yield Heartbeat(self._clock.now())
            while True:
                if self._draining.is_set():
                    yield StreamEnd("server shutting down; reconnect with the last alert id seen")
                    return
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=self.settings.heartbeat_seconds)
                except asyncio.TimeoutError:
                    yield Heartbeat(self._clock.now())
                    continue
                if item is None:
                    yield StreamEnd("server shutting down; reconnect with the last alert id seen")
                    return
                if item.sequence <= floor or item.sequence in sent:
                    continue
                sent.add(item.sequence)
                recent.append(item.sequence)
                if len(recent) > 10_000:
                    sent.discard(recent.popleft())
                yield item
        finally:
            self.hub.close(caller.user_id, queue)

