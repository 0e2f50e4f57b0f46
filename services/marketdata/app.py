"""The market data application: ingest from the feed, fan out to streams, cache, history and the bus.

Theory of operation. One ingest task reads the feed's event batches and folds them into the quote book;
every merged update goes, without waiting on any I/O, to

- the quote hub, which offers it to each stream subscribed to the symbol (`ConflatingBuffer` per stream:
  every update while the stream keeps up, the latest per symbol once it falls behind);
- the cache writer, the bus publisher and the history writer, each a background task with its own bounded,
  conflating or dropping buffer, so a slow Redis, RabbitMQ or PostgreSQL never slows the feed or a stream.

Options followed by Greeks streams are marked dirty when their quote, their dxFeed Greeks or their
underlying's quote change; a Greeks task recomputes the dirty ones with core_ext every `greeks_interval`
seconds, in one batch, and hands the results to the Greeks hub, cache and bus the same way.

Streams acquire feed subscriptions by reference count and release them when they close, at once. Consumers
of the bus ask for symbols without a stream by publishing an interest lease on `marketdata.interest`
(`{"symbols": [...], "greeks": bool, "lease_seconds": n}`, renewed by sending it again); every instance
follows leased symbols until the lease runs out, so their ticks reach the bus.

Replicas. Every replica follows the same pinned and leased symbols, but only the one holding the publisher
lease (`PublisherLease`, checked every `publisher_check_interval`) publishes ticks on the bus; the others
keep the latest update per symbol meanwhile and publish those first when they take the lease over, so a
consumer misses no symbol's latest value across a failover. Streams and the cache are served by every
replica.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, Protocol, TypeVar

import orjson

from services.marketdata.domain.book import QuoteBook
from services.marketdata.domain.conflation import ConflatingBuffer
from services.marketdata.domain.errors import (
    CacheUnavailable,
    DatabaseUnavailable,
    FeedUnavailable,
    MarketDataError,
    QuoteNotFound,
    TooManyStreams,
)
from services.marketdata.domain.events import (
    FeedEvent,
    FeedKind,
    GreeksUpdate,
    QuoteEvent,
    QuoteUpdate,
    TradeEvent,
    time_ns_of,
)
from services.marketdata.domain.history import (
    Candle,
    HistoryQuery,
    HistoryTick,
    decode_page_token,
    encode_page_token,
)
from services.marketdata.domain.model import ModelInputs, model_greeks
from services.marketdata.domain.symbols import OptionSymbol, parse_option_symbol, streamer_symbol, validate_symbols
from services.marketdata.ports import MarketFeed, PublisherLease, TickStore
from services.platform.bus import BusError, MessageBus
from services.platform.cache import CacheError, LatestValueCache
from services.platform.clock import Clock

__all__ = [
    "INTEREST_TOPIC",
    "AppSettings",
    "EndReason",
    "HistoryWriter",
    "MarketDataApp",
    "StreamEnded",
    "UpdateStream",
    "quote_topic",
]

log = logging.getLogger("tastyplat.marketdata")

INTEREST_TOPIC = "marketdata.interest"
DEFAULT_LEASE_SECONDS = 600.0
MAX_LEASE_SECONDS = 3600.0
QUOTES_NAMESPACE = "quotes"
GREEKS_NAMESPACE = "greeks"
_TOPIC_UNSAFE = re.compile(r"[.*#\s]")


def _now_ns(clock: Clock) -> int:
    return time_ns_of(clock.now())


def underlying_of(symbol: str) -> str:
    """The underlying of an option symbol, else the symbol itself."""
    option = parse_option_symbol(symbol)
    return option.underlying if option is not None else symbol


def quote_topic(kind: str, symbol: str) -> str:
    """Bus topic of `kind` ("quotes" or "greeks") updates for `symbol`: `marketdata.<kind>.<UNDERLYING>`."""
    return f"marketdata.{kind}.{_TOPIC_UNSAFE.sub('_', underlying_of(symbol)) or '_'}"


@dataclass(frozen=True)
class AppSettings:
    """Behaviour of the market data application.

    Attributes:
        heartbeat_interval: Seconds of stream silence after which a heartbeat is sent.
        subscriber_capacity: Updates a stream may have pending before it is conflated.
        max_streams_per_caller: Open streams allowed per caller.
        feed_down_budget: Seconds the feed may be down before streams end with FEED_UNAVAILABLE.
        greeks_interval: Seconds between model Greeks recomputations of dirty options.
        cache_flush_interval: Seconds between writes of latest values to the cache.
        bus_publish_interval: Least seconds between two publishing rounds on the bus (a round sends one message
            per underlying with every quote since the previous round, and starts as soon as one is pending).
        bus_conflate: Publish only the latest update per symbol of each round.
        history_batch_size: Most ticks per history write.
        history_flush_interval: Seconds after which a partial batch is written. Short, so that the database
            takes the history as an even trickle: batches of 5,000 every 0.5 s delayed the alert writes sharing
            it (delta monitor benchmark at 5,000 ticks/s).
        history_buffer_limit: Ticks held while the database is slow or down; beyond it the oldest are dropped.
        pinned_symbols: Symbols followed for quotes even with no stream open (published on the bus).
        model_inputs: Rate and dividend yields for the model Greeks.
        instance_id: Unique id of this process, used in bus message ids.
        publisher_check_interval: Seconds between checks of the publisher lease.
    """

    heartbeat_interval: float = 5.0
    subscriber_capacity: int = 4096
    max_streams_per_caller: int = 100
    feed_down_budget: float = 60.0
    greeks_interval: float = 0.25
    cache_flush_interval: float = 0.05
    bus_publish_interval: float = 0.05
    bus_conflate: bool = False
    history_batch_size: int = 500
    history_flush_interval: float = 0.05
    history_buffer_limit: int = 200_000
    pinned_symbols: tuple[str, ...] = ()
    model_inputs: ModelInputs = field(default_factory=ModelInputs)
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    publisher_check_interval: float = 1.0


class EndReason(Enum):
    """Why the server ends a stream without an error."""

    SERVER_SHUTDOWN = "server_shutdown"


class StreamEnded(Exception):
    """The server is ending the stream (see `reason`)."""

    def __init__(self, reason: EndReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _Keyed(Protocol):
    @property
    def symbol(self) -> str: ...


T = TypeVar("T", bound=_Keyed)


class _Subscriber(Generic[T]):
    __slots__ = ("buffer", "ending", "keys", "wake")

    def __init__(self, keys: frozenset[str], capacity: int) -> None:
        self.keys = keys
        self.buffer: ConflatingBuffer[T] = ConflatingBuffer(capacity)
        self.wake = asyncio.Event()
        self.ending: BaseException | None = None


class FanOutHub(Generic[T]):
    """Offers each update to the buffer of every subscriber of its symbol; never waits for a subscriber."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._index: dict[str, list[_Subscriber[T]]] = {}
        self._subscribers: set[_Subscriber[T]] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def add(self, keys: Iterable[str]) -> _Subscriber[T]:
        subscriber: _Subscriber[T] = _Subscriber(frozenset(keys), self._capacity)
        for key in subscriber.keys:
            self._index.setdefault(key, []).append(subscriber)
        self._subscribers.add(subscriber)
        return subscriber

    def remove(self, subscriber: _Subscriber[T]) -> None:
        if subscriber not in self._subscribers:
            return
        self._subscribers.discard(subscriber)
        for key in subscriber.keys:
            listeners = self._index.get(key)
            if listeners is None:
                continue
            listeners.remove(subscriber)
            if not listeners:
                del self._index[key]

    def publish(self, updates: Sequence[T]) -> None:
        index = self._index
        touched: dict[int, _Subscriber[T]] = {}
        for update in updates:
            listeners = index.get(update.symbol)
            if listeners is None:
                continue
            for subscriber in listeners:
                subscriber.buffer.offer(update.symbol, update)
                touched[id(subscriber)] = subscriber
        for subscriber in touched.values():
            subscriber.wake.set()

    def end_all(self, error: BaseException) -> None:
        for subscriber in self._subscribers:
            subscriber.ending = error
            subscriber.wake.set()


class UpdateStream(Generic[T]):
    """One open stream: a snapshot, then batches of updates; close it (or use `async with`) to free it.

    Attributes:
        snapshot: Latest values of the requested symbols that have one, sent first.
        aliases: Requested symbol for each feed symbol whose requested form differs (OCC option symbols).
    """

    def __init__(
        self,
        hub: FanOutHub[T],
        subscriber: _Subscriber[T],
        snapshot: list[T],
        aliases: dict[str, str],
        release: collections.abc.Callable[[], collections.abc.Awaitable[None]],
    ) -> None:
        self._hub = hub
        self._subscriber = subscriber
        self.snapshot = snapshot
        self.aliases = aliases
        self._release = release
        self._closed = False

    @property
    def conflating(self) -> bool:
        """True while this stream is behind and receives conflated updates."""
        return self._subscriber.buffer.conflating

    async def next(self, timeout: float) -> tuple[list[T], int] | None:
        """The pending updates and how many were conflated away, or None after `timeout` idle seconds.

        Raises:
            StreamEnded: the server is shutting down.
            FeedUnavailable: the feed has been down beyond its budget.
        """
        subscriber = self._subscriber
        if not len(subscriber.buffer) and subscriber.ending is None:
            subscriber.wake.clear()
            try:
                await asyncio.wait_for(subscriber.wake.wait(), timeout)
            except TimeoutError:
                return None
        if subscriber.ending is not None:
            raise subscriber.ending
        return subscriber.buffer.drain()

    async def close(self) -> None:
        """Unsubscribe now: the hub forgets this stream and feed subscriptions are released."""
        if self._closed:
            return
        self._closed = True
        self._hub.remove(self._subscriber)
        await self._release()

    async def __aenter__(self) -> UpdateStream[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class HistoryWriter:
    """Writes ticks to the store in batches from a bounded buffer; `offer` never waits."""

    def __init__(
        self,
        store: TickStore,
        clock: Clock,
        *,
        batch_size: int,
        flush_interval: float,
        buffer_limit: int,
    ) -> None:
        self._store = store
        self._clock = clock
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._buffer: collections.deque[HistoryTick] = collections.deque(maxlen=buffer_limit)
        self._ready = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None

    def offer(self, ticks: Iterable[HistoryTick]) -> None:
        buffer = self._buffer
        for tick in ticks:
            if len(buffer) == buffer.maxlen:
                self.dropped += 1  # the deque drops the oldest tick on append
            buffer.append(tick)
        if len(buffer) >= self._batch_size:
            self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> None:
        """Write everything buffered now (raises what the store raises)."""
        while self._buffer:
            await self._write_batch()

    async def _write_batch(self) -> None:
        async with self._write_lock:
            batch = [self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))]
            if not batch:
                return
            try:
                await self._store.write(batch)
            except BaseException:
                # Put the batch back in front so no tick is lost to a transient failure (bounded by maxlen).
                self._buffer.extendleft(reversed(batch))
                raise
            self.written += len(batch)

    async def run(self) -> None:
        backoff = self._flush_interval
        while True:
            try:
                await asyncio.wait_for(self._ready.wait(), self._flush_interval)
            except TimeoutError:
                pass
            self._ready.clear()
            try:
                while self._buffer:
                    await self._write_batch()
                    if len(self._buffer) < self._batch_size:
                        break
                backoff = self._flush_interval
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("history write failed (%s); %d ticks waiting", self.last_error, len(self._buffer))
                await self._clock.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


def history_ticks(events: Iterable[FeedEvent]) -> list[HistoryTick]:
    """The ticks to store for a batch of feed events: trades, and quote mids of two-sided markets."""
    ticks: list[HistoryTick] = []
    for event in events:
        if isinstance(event, TradeEvent):
            if math.isfinite(event.price) and event.price > 0:
                size = event.size if math.isfinite(event.size) else 0.0
                ticks.append(HistoryTick(event.symbol, event.time_ns, event.price, size, True))
        elif isinstance(event, QuoteEvent):
            bid, ask = event.bid_price, event.ask_price
            if bid > 0.0 and ask >= bid:
                ticks.append(HistoryTick(event.symbol, event.time_ns, (bid + ask) * 0.5, 0.0, False))
    return ticks


class MarketDataApp:
    """The service's use cases; the gRPC servicer is a thin layer over it."""

    def __init__(
        self,
        *,
        feed: MarketFeed,
        cache: LatestValueCache,
        bus: MessageBus,
        history: TickStore,
        clock: Clock,
        settings: AppSettings | None = None,
        publisher: PublisherLease | None = None,
    ) -> None:
        """Wire the use cases; with a `publisher` lease only its holder publishes ticks, else this instance does."""
        self.feed = feed
        self.cache = cache
        self.bus = bus
        self.history = history
        self.clock = clock
        self.settings = settings or AppSettings()
        s = self.settings
        self.book = QuoteBook()
        self.quote_hub: FanOutHub[QuoteUpdate] = FanOutHub(s.subscriber_capacity)
        self.greeks_hub: FanOutHub[GreeksUpdate] = FanOutHub(s.subscriber_capacity)
        self.history_writer = HistoryWriter(
            history,
            clock,
            batch_size=s.history_batch_size,
            flush_interval=s.history_flush_interval,
            buffer_limit=s.history_buffer_limit,
        )
        self._interest: collections.Counter[tuple[str, str]] = collections.Counter()
        self._interest_lock = asyncio.Lock()
        self._greeks_followed: collections.Counter[str] = collections.Counter()
        self._options: dict[str, OptionSymbol] = {}
        self._options_by_underlying: dict[str, set[str]] = {}
        self._greeks_dirty: set[str] = set()
        self._cache_pending: dict[str, dict[str, QuoteUpdate | GreeksUpdate]] = {
            QUOTES_NAMESPACE: {},
            GREEKS_NAMESPACE: {},
        }
        self._bus_quotes: ConflatingBuffer[QuoteUpdate] = ConflatingBuffer(50_000)
        self._bus_greeks: ConflatingBuffer[GreeksUpdate] = ConflatingBuffer(50_000)
        # Set when an update is waiting for the bus: a round starts at once instead of at the next period, so a
        # tick waits at most `bus_publish_interval` after the previous round, and nothing when the bus is idle.
        self._bus_wake = asyncio.Event()
        self.publisher = publisher
        self.publishing = publisher is None
        # Latest update per symbol gathered while another replica publishes; sent first on takeover.
        self._standby: dict[str, dict[str, QuoteUpdate | GreeksUpdate]] = {"quotes": {}, "greeks": {}}
        self._streams_by_caller: collections.Counter[str] = collections.Counter()
        self._active_streams = 0
        self._releases: set[asyncio.Task[None]] = set()
        self._leases: dict[str, tuple[float, bool]] = {}
        # No lease runs out before this (monotonic) time: the once-a-second check skips the scan until then.
        self._next_expiry = math.inf
        self._message_seq = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._ending: BaseException | None = None
        self.ingested_events = 0
        self.ingested_batches = 0
        self.bus_failures = 0
        self.cache_failures = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Prepare the history schema, start the feed and the background tasks, follow pinned symbols."""
        await self.history.ensure_schema()
        await self.feed.start()
        if self.publisher is not None:
            self.publishing = await self.publisher.hold()
        if self.settings.pinned_symbols:
            await self._acquire(self._quote_interest([streamer_symbol(s) for s in self.settings.pinned_symbols]))
        for name, coroutine in (
            ("ingest", self._ingest()),
            ("greeks", self._greeks_loop()),
            ("cache", self._cache_loop()),
            ("bus", self._bus_loop()),
            ("history", self.history_writer.run()),
            ("feed-watch", self._feed_watch()),
            ("interest", self._interest_loop()),
            ("leases", self._lease_loop()),
            *((("publisher", self._publisher_loop()),) if self.publisher is not None else ()),
        ):
            self._tasks.append(asyncio.create_task(coroutine, name=f"marketdata-{name}"))

    async def drain(self) -> None:
        """End every open stream with a StreamEnd (server shutdown)."""
        self._ending = StreamEnded(EndReason.SERVER_SHUTDOWN, "the market data service is shutting down")
        self.quote_hub.end_all(self._ending)
        self.greeks_hub.end_all(self._ending)

    async def quiesce(self, timeout: float = 2.0) -> None:
        """Wait for the feed unsubscriptions of closed streams to finish."""
        if self._releases:
            await asyncio.wait(list(self._releases), timeout=timeout)

    async def stop(self) -> None:
        """Stop the background tasks and the feed; write the latest values and the history still buffered."""
        await self.quiesce()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("market data task %s failed", task.get_name())
        self._tasks.clear()
        if self.publisher is not None:
            self.publishing = False
            await self.publisher.release()
        await self.feed.close()
        try:
            # The latest values since the last cache round: a replica that stops leaves the cache current.
            await asyncio.wait_for(self.flush_cache(), 5.0)
        except Exception as error:
            log.warning("cache not flushed at shutdown: %s", error)
        try:
            await asyncio.wait_for(self.history_writer.flush(), 5.0)
        except Exception as error:
            log.warning("history not flushed at shutdown: %s", error)

    # ------------------------------------------------------------------ unary use cases

    async def get_quote(self, symbol: str) -> QuoteUpdate:
        """The latest quote of `symbol`: from this replica's book while it follows the symbol (live, and ahead of
        the cache, which is written every `cache_flush_interval`), else from the latest-value cache.

        Raises:
            QuoteNotFound: no quote has been seen for the symbol.
            CacheUnavailable: the cache cannot be reached.
        """
        key = streamer_symbol(symbol)
        if self._interest[("Quote", key)] > 0 and (live := self.book.quote(key)) is not None:
            return live
        try:
            found = await self.cache.get_many(QUOTES_NAMESPACE, [key])
        except CacheError as error:
            raise CacheUnavailable(f"the quote cache cannot be reached: {error}", retry_after=1.0) from error
        payload = found.get(key)
        if payload is None:
            raise QuoteNotFound(f"no quote has been seen for {symbol!r}", metadata={"symbol": symbol})
        return QuoteUpdate.decode(payload)

    async def get_history(self, query: HistoryQuery, page_token: str) -> tuple[list[Candle], str]:
        """One page of candles and the token of the next page ("" on the last).

        Raises:
            PageTokenInvalid: the token was not issued for this query.
            DatabaseUnavailable: the history store failed.
        """
        start_ns = query.start_ns
        if page_token:
            start_ns = decode_page_token(query, page_token)
        try:
            candles = await self.history.candles(
                streamer_symbol(query.symbol), query.interval, start_ns, query.end_ns, query.page_size + 1
            )
        except (OSError, ConnectionError, TimeoutError) as error:
            raise DatabaseUnavailable(f"the history store cannot be reached: {error}", retry_after=1.0) from error
        except Exception as error:
            if type(error).__module__.startswith("asyncpg"):
                raise DatabaseUnavailable(f"the history store failed: {type(error).__name__}") from error
            raise
        if len(candles) > query.page_size:
            next_start = candles[query.page_size].start_ns
            return candles[: query.page_size], encode_page_token(query, next_start)
        return candles, ""

    # ------------------------------------------------------------------ streams

    async def open_quote_stream(self, symbols: Sequence[str], caller: str) -> UpdateStream[QuoteUpdate]:
        """Subscribe to quotes of validated `symbols`: snapshot first, then updates.

        Raises:
            TooManyStreams: the caller has `max_streams_per_caller` streams open.
            FeedUnavailable: the feed has been down beyond its budget.
        """
        keys, aliases = self._keys(symbols)
        self._admit(caller)
        interest = self._quote_interest(keys)
        subscriber = self.quote_hub.add(keys)
        try:
            await self._acquire(interest)
            snapshot = await self._quote_snapshot(keys)
        except BaseException:
            self.quote_hub.remove(subscriber)
            self._streams_by_caller[caller] -= 1
            self._active_streams -= 1
            raise
        return UpdateStream(self.quote_hub, subscriber, snapshot, aliases, self._releaser(caller, interest, ()))

    async def open_greeks_stream(self, symbols: Sequence[str], caller: str) -> UpdateStream[GreeksUpdate]:
        """Subscribe to Greeks of validated option `symbols`: snapshot first, then updates.

        Raises:
            TooManyStreams: the caller has `max_streams_per_caller` streams open.
            FeedUnavailable: the feed has been down beyond its budget.
        """
        keys, aliases = self._keys(symbols)
        self._admit(caller)
        interest = self._greeks_interest(keys)
        subscriber = self.greeks_hub.add(keys)
        try:
            await self._acquire(interest)
            self._follow_greeks(keys)
            snapshot = self._greeks_snapshot(keys)
        except BaseException:
            self.greeks_hub.remove(subscriber)
            self._streams_by_caller[caller] -= 1
            self._active_streams -= 1
            raise
        return UpdateStream(self.greeks_hub, subscriber, snapshot, aliases, self._releaser(caller, interest, keys))

    def _keys(self, symbols: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        keys: list[str] = []
        aliases: dict[str, str] = {}
        for symbol in symbols:
            key = streamer_symbol(symbol)
            if key != symbol:
                aliases[key] = symbol
            if key not in keys:
                keys.append(key)
        return keys, aliases

    def _admit(self, caller: str) -> None:
        if self._ending is not None:
            raise self._ending
        feed_status = self.feed.status()
        if not feed_status.connected and feed_status.down_for > self.settings.feed_down_budget:
            raise FeedUnavailable(
                f"the market data feed has been down for {feed_status.down_for:.0f}s: {feed_status.last_error}",
                retry_after=5.0,
            )
        if self._streams_by_caller[caller] >= self.settings.max_streams_per_caller:
            raise TooManyStreams(
                f"at most {self.settings.max_streams_per_caller} open streams per caller",
                metadata={"limit": str(self.settings.max_streams_per_caller)},
            )
        self._streams_by_caller[caller] += 1
        self._active_streams += 1

    @staticmethod
    def _quote_interest(keys: Iterable[str]) -> list[tuple[str, str]]:
        return [(event_type, key) for key in keys for event_type in ("Quote", "Trade", "Summary")]

    def _greeks_interest(self, keys: Sequence[str]) -> list[tuple[str, str]]:
        underlyings = [o.underlying for o in map(parse_option_symbol, keys) if o is not None]
        return [("Greeks", key) for key in keys] + self._quote_interest(list(dict.fromkeys([*keys, *underlyings])))

    def _follow_greeks(self, keys: Iterable[str]) -> None:
        for key in keys:
            option = parse_option_symbol(key)
            if option is None:
                continue
            self._greeks_followed[key] += 1
            self._options[key] = option
            self._options_by_underlying.setdefault(option.underlying, set()).add(key)
            self._greeks_dirty.add(key)

    def _unfollow_greeks(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key not in self._greeks_followed:
                continue
            self._greeks_followed[key] -= 1
            if self._greeks_followed[key] > 0:
                continue
            del self._greeks_followed[key]
            option = self._options.pop(key, None)
            if option is not None:
                siblings = self._options_by_underlying.get(option.underlying, set())
                siblings.discard(key)
                if not siblings:
                    self._options_by_underlying.pop(option.underlying, None)

    # ------------------------------------------------------------------ interest leases (the bus)

    async def follow(self, symbols: Sequence[str], *, lease_seconds: float, greeks: bool = False) -> None:
        """Follow validated `symbols` for `lease_seconds` without a stream (renew by calling again).

        Their ticks are published on the bus like pinned symbols'; with `greeks`, options also get model
        Greeks. This is how a consumer of the bus (the delta monitor) asks for the symbols it needs.
        """
        keys, _ = self._keys(symbols)
        expires = self.clock.monotonic() + min(max(lease_seconds, 1.0), MAX_LEASE_SECONDS)
        for key in keys:
            previous = self._leases.get(key)
            wants_greeks = greeks and parse_option_symbol(key) is not None
            if previous is None:
                await self._acquire(self._quote_interest([key]))
            had_greeks = previous is not None and previous[1]
            if wants_greeks and not had_greeks:
                await self._acquire(self._greeks_interest([key]))
                self._follow_greeks([key])
            self._leases[key] = (max(expires, previous[0] if previous else 0.0), wants_greeks or had_greeks)
            self._next_expiry = min(self._next_expiry, self._leases[key][0])

    async def expire_leases(self) -> None:
        """Stop following symbols whose lease has run out."""
        now = self.clock.monotonic()
        if now < self._next_expiry:
            return
        for key in [k for k, (expires, _) in self._leases.items() if expires <= now]:
            # Read again: a lease renewed (or already gone) while an earlier release awaited is not due.
            entry = self._leases.get(key)
            if entry is None or entry[0] > now:
                continue
            del self._leases[key]
            interest = self._quote_interest([key])
            if entry[1]:
                self._unfollow_greeks([key])
                interest += self._greeks_interest([key])
            await self._release(interest)
        self._next_expiry = min((expires for expires, _ in self._leases.values()), default=math.inf)

    def leased(self) -> set[str]:
        """Symbols followed through interest leases."""
        return set(self._leases)

    async def _interest_loop(self) -> None:
        subscription = await self.bus.subscribe(INTEREST_TOPIC)
        async with subscription:
            async for delivery in subscription:
                try:
                    request = json.loads(delivery.payload)
                    symbols = validate_symbols(list(request["symbols"]))
                    lease = float(request.get("lease_seconds", DEFAULT_LEASE_SECONDS))
                    await self.follow(symbols, lease_seconds=lease, greeks=bool(request.get("greeks", False)))
                except (ValueError, KeyError, TypeError, MarketDataError) as error:
                    log.warning("ignored malformed interest message %s: %s", delivery.message_id, error)
                await delivery.ack()

    async def _lease_loop(self) -> None:
        while True:
            await self.clock.sleep(1.0)
            try:
                await self.expire_leases()
            except Exception:
                log.exception("lease_loop failed; next round continues")

    def _releaser(
        self, caller: str, interest: list[tuple[str, str]], greeks_keys: Sequence[str]
    ) -> collections.abc.Callable[[], collections.abc.Awaitable[None]]:
        async def release() -> None:
            self._streams_by_caller[caller] -= 1
            if self._streams_by_caller[caller] <= 0:
                del self._streams_by_caller[caller]
            self._unfollow_greeks(greeks_keys)
            # The feed unsubscription runs in its own task: a cancelled gRPC handler must not wait on feed
            # I/O (a DXLink send) while its call is being torn down.
            task = asyncio.create_task(unsubscribe())
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

        async def unsubscribe() -> None:
            try:
                await self._release(interest)
            finally:
                self._active_streams -= 1

        return release

    async def _acquire(self, interest: Iterable[tuple[str, str]]) -> None:
        async with self._interest_lock:
            new: dict[str, list[str]] = {}
            for event_type, symbol in interest:
                if self._interest[(event_type, symbol)] == 0:
                    new.setdefault(event_type, []).append(symbol)
                self._interest[(event_type, symbol)] += 1
            for event_type, symbols in new.items():
                await self.feed.subscribe(event_type, symbols)

    async def _release(self, interest: Iterable[tuple[str, str]]) -> None:
        async with self._interest_lock:
            gone: dict[str, list[str]] = {}
            for pair in interest:
                self._interest[pair] -= 1
                if self._interest[pair] <= 0:
                    del self._interest[pair]
                    gone.setdefault(pair[0], []).append(pair[1])
            for event_type, symbols in gone.items():
                await self.feed.unsubscribe(event_type, symbols)

    def followed(self, event_type: str) -> set[str]:
        """Symbols the application currently follows for `event_type` (for health and tests)."""
        return {symbol for (kind, symbol) in self._interest if kind == event_type}

    def open_streams(self) -> int:
        """Number of quote and Greeks streams not yet completely closed (feed subscriptions released)."""
        return self._active_streams

    async def _quote_snapshot(self, keys: Sequence[str]) -> list[QuoteUpdate]:
        snapshot: dict[str, QuoteUpdate] = {}
        missing: list[str] = []
        for key in keys:
            quote = self.book.quote(key)
            if quote is not None:
                snapshot[key] = quote
            else:
                missing.append(key)
        if missing:
            try:
                cached = await self.cache.get_many(QUOTES_NAMESPACE, missing)
            except CacheError as error:
                log.warning("snapshot without cached quotes: %s", error)
                cached = {}
            for key, payload in cached.items():
                snapshot[key] = QuoteUpdate.decode(payload)
        return [snapshot[key] for key in keys if key in snapshot]

    def _greeks_snapshot(self, keys: Sequence[str]) -> list[GreeksUpdate]:
        options = [(key, self._options[key]) for key in keys if key in self._options and self.book.quote(key)]
        if not options:
            return []
        return model_greeks(options, self.book, self.clock.now(), self.settings.model_inputs, _now_ns(self.clock))

    # ------------------------------------------------------------------ background tasks

    async def _ingest(self) -> None:
        async for batch in self.feed.batches():
            try:
                self.ingest(batch)
            except Exception:
                # One bad batch must not stop the feed for everyone.
                log.exception("ingest of a batch of %d events failed", len(batch))

    def ingest(self, batch: Sequence[FeedEvent]) -> None:
        """Fold one batch of feed events into the book and hand the updates on (never waits)."""
        self.ingested_batches += 1
        self.ingested_events += len(batch)
        changes = self.book.apply(batch)
        quotes = changes.quotes
        if quotes:
            self.quote_hub.publish(quotes)
            pending = self._cache_pending[QUOTES_NAMESPACE]
            for quote in quotes:
                pending[quote.symbol] = quote
                self._bus_quotes.offer(quote.symbol, quote)
            self._bus_wake.set()
        if self._greeks_followed:
            dirty = self._greeks_dirty
            for symbol in changes.greeks_symbols:
                if symbol in self._greeks_followed:
                    dirty.add(symbol)
            for symbol in changes.underlyings:
                dependants = self._options_by_underlying.get(symbol)
                if dependants:
                    dirty.update(dependants)
        self.history_writer.offer(history_ticks(batch))

    async def _greeks_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.greeks_interval)
            if not self._greeks_dirty:
                continue
            dirty, self._greeks_dirty = self._greeks_dirty, set()
            options = [(key, self._options[key]) for key in dirty if key in self._options]
            if not options:
                continue
            try:
                updates = model_greeks(
                    options, self.book, self.clock.now(), self.settings.model_inputs, _now_ns(self.clock)
                )
            except Exception:
                log.exception("model Greeks failed for %d options", len(options))
                continue
            self.greeks_hub.publish(updates)
            pending = self._cache_pending[GREEKS_NAMESPACE]
            for update in updates:
                pending[update.symbol] = update
                self._bus_greeks.offer(update.symbol, update)
            if updates:
                self._bus_wake.set()

    async def _cache_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.cache_flush_interval)
            try:
                await self.flush_cache()
            except Exception:
                log.exception("cache_loop failed; next round continues")

    async def flush_cache(self) -> None:
        """Write the latest values gathered since the last flush to the cache (errors are logged, counted)."""
        for namespace, pending in self._cache_pending.items():
            if not pending:
                continue
            self._cache_pending[namespace] = {}
            values = {key: update.encode() for key, update in pending.items()}
            try:
                await self.cache.put_many(namespace, values)
            except CacheError as error:
                self.cache_failures += 1
                log.warning("cache write failed: %s", error)

    async def _bus_loop(self) -> None:
        # A round as soon as something is pending, then at least `bus_publish_interval` before the next: the
        # period bounds the messages per underlying, and a tick on an idle bus leaves at once.
        while True:
            await self._bus_wake.wait()
            self._bus_wake.clear()
            try:
                await self.publish_ticks()
            except Exception:
                log.exception("bus_loop failed; next round continues")
            await self.clock.sleep(self.settings.bus_publish_interval)

    async def _publisher_loop(self) -> None:
        assert self.publisher is not None
        while True:
            await self.clock.sleep(self.settings.publisher_check_interval)
            try:
                was_publishing = self.publishing
                self.publishing = await self.publisher.hold()
                if self.publishing and not was_publishing:
                    # Taking over: the latest values kept meanwhile go out with the next round, now.
                    self._bus_wake.set()
            except Exception:
                self.publishing = False
                log.exception("publisher lease check failed; next round continues")

    async def publish_ticks(self) -> None:
        """Publish the updates gathered since the last call, one bus message per kind and underlying.

        Payload: JSON `{"source": "simulator"|"dxfeed", "quotes"|"greeks": [update JSON, ...]}` on topic
        `marketdata.quotes.<UNDERLYING>` / `marketdata.greeks.<UNDERLYING>`. A replica without the publisher
        lease publishes nothing and keeps the latest update per symbol for when it takes the lease over.
        """
        for kind, buffer in (("quotes", self._bus_quotes), ("greeks", self._bus_greeks)):
            drained, _ = buffer.drain()
            if self.settings.bus_conflate and len(drained) > 1:
                latest: dict[str, QuoteUpdate | GreeksUpdate] = {}
                for update in drained:
                    latest.pop(update.symbol, None)
                    latest[update.symbol] = update
                drained = list(latest.values())  # type: ignore[assignment]
            standby = self._standby[kind]
            if not self.publishing:
                for update in drained:
                    standby.pop(update.symbol, None)
                    standby[update.symbol] = update
                continue
            updates: list[QuoteUpdate | GreeksUpdate] = [*standby.values(), *drained] if standby else list(drained)
            standby.clear()
            if not updates:
                continue
            by_topic: dict[str, list[dict[str, object]]] = {}
            for update in updates:
                by_topic.setdefault(quote_topic(kind, update.symbol), []).append(update.to_json())
            for topic, items in by_topic.items():
                # orjson: compact like json.dumps(separators=(",", ":")), several times faster on the tick path.
                payload = orjson.dumps({"source": self.feed.kind.value, kind: items})
                message_id = f"md-{self.settings.instance_id}-{next(self._message_seq)}"
                try:
                    await self.bus.publish(topic, payload, message_id)
                except BusError as error:
                    self.bus_failures += 1
                    log.warning("tick publish to %s failed: %s", topic, error)

    async def _feed_watch(self) -> None:
        budget = self.settings.feed_down_budget
        while True:
            await self.clock.sleep(max(min(budget / 4, 5.0), 0.05))
            status = self.feed.status()
            if not status.connected and status.down_for > budget:
                error = FeedUnavailable(
                    f"the market data feed has been down for {status.down_for:.0f}s: {status.last_error}",
                    retry_after=5.0,
                )
                self.quote_hub.end_all(error)
                self.greeks_hub.end_all(error)

    def feed_kind(self) -> FeedKind:
        """Where the data comes from."""
        return self.feed.kind


def requested_symbols(updates: Sequence[QuoteUpdate] | Sequence[GreeksUpdate], aliases: dict[str, str]) -> list[str]:
    """The symbols of `updates` in the form the subscriber asked for."""
    if not aliases:
        return [u.symbol for u in updates]
    return [aliases.get(u.symbol, u.symbol) for u in updates]
