"""The message bus port, with an in-process implementation (embedded mode) and a RabbitMQ one (aio-pika).

Theory of operation. Publishers send `(topic, payload, message_id)` to one topic exchange; `publish`
returns only once the bus has taken responsibility for the message (RabbitMQ: the publisher confirm for a
persistent message; in-process: the message sits in every matching queue). Subscribers bind a queue to one
or more topic patterns (AMQP rules: words split by ".", `*` matches one word, `#` zero or more):

- `queue=None`: a private queue that lives as long as the subscription; every such subscriber sees every
  matching message (fan-out). `max_length` bounds it, dropping the oldest waiting messages first (ticks).
- `queue="name"`: a durable named queue shared by competing consumers; messages wait there while nobody
  consumes. It has a delivery limit: a message rejected with requeue more often than that, or rejected
  without requeue, moves to the dead-letter queue `name.dead`, readable with `subscribe_dead_letters`.

Delivery is at-least-once: an unacknowledged message goes back to its queue (flagged `redelivered`) when
its subscription closes or the connection drops. A subscription therefore skips, and acknowledges, a
message whose id it has already acknowledged (a bounded window of recent ids); consumers with side effects
that must survive a restart keep their own durable record of handled ids as well.

A broker restart or a dropped connection: the RabbitMQ bus reconnects by itself (aio-pika's robust connection,
which redeclares queues, bindings and consumers). Until it has, `publish` fails with `PublishNotConfirmed`
within the confirm timeout; a message taken before the drop and acknowledged after it was already requeued by
the broker, so that acknowledgement is a no-op and the copy delivered again is acknowledged by the window.

Messages carry optional string headers. With tracing on (`services.platform.telemetry`), `publish` adds the
current trace context to them and a subscription makes each delivery's span current in the consuming task,
so one trace follows a message from its publisher through every consumer (nothing to do in the services).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from services.platform import telemetry

__all__ = [
    "BusClosed",
    "BusError",
    "Delivery",
    "InProcessBus",
    "MessageBus",
    "PublishNotConfirmed",
    "RabbitMqBus",
    "Subscription",
    "Unroutable",
    "topic_matches",
]

DEFAULT_DELIVERY_LIMIT = 20
DEFAULT_DEDUPE_WINDOW = 10_000
_ROUTES_KEPT = 10_000
# Bound on each broker round trip of closing a subscription: a stalled broker must not hang the caller (the
# channel's close, or the connection's, releases the consumer anyway).
CLOSE_STEP_SECONDS = 5.0
_TOPIC_WORD = re.compile(r"^[^.*#\s]+$")


class BusError(Exception):
    """Base class of message bus failures."""


class Unroutable(BusError):
    """A message published with `mandatory=True` matched no queue."""


class PublishNotConfirmed(BusError):
    """The broker did not confirm a published message (nacked, timed out or the connection dropped)."""


class BusClosed(BusError):
    """The bus or the subscription has been closed."""


@functools.lru_cache(maxsize=65536)
def _valid_topic(topic: str) -> bool:
    # Cached: a publisher sends to the same few thousand topics over and over.
    return bool(topic) and all(_TOPIC_WORD.match(word) for word in topic.split("."))


def _check_topic(topic: str) -> None:
    if not _valid_topic(topic):
        raise ValueError(f"invalid topic {topic!r}: dot-separated words without '*', '#' or spaces")


def _check_pattern(pattern: str) -> None:
    words = pattern.split(".")
    if not pattern or not all(word in ("*", "#") or _TOPIC_WORD.match(word) for word in words):
        raise ValueError(f"invalid topic pattern {pattern!r}")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # Matched against "." + topic so that every word, the first included, is preceded by a dot; "#" then
    # becomes "zero or more dotted words" without special cases at either end.
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:\.[^.]+)*")
        elif word == "*":
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(word))
    return re.compile("^" + "".join(parts) + "$")


def _check_headers(headers: Mapping[str, str] | None) -> None:
    for key, value in (headers or {}).items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise ValueError(f"message headers are non-empty strings with string values, got {key!r}: {value!r}")
        if key.startswith("x-"):
            raise ValueError(f"header {key!r}: names starting with 'x-' belong to the broker")


def _string_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    # The broker's own headers (x-delivery-count, x-death...) are not the publisher's; AMQP may hand back bytes.
    out: dict[str, str] = {}
    for key, value in headers.items():
        if key.startswith("x-"):
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            out[key] = value
    return out


def _channel_lost(message: Any) -> bool:
    # aio-pika's IncomingMessage.channel raises once the channel it arrived on is closed.
    try:
        message.channel
    except RuntimeError:
        return True
    return False


def topic_matches(pattern: str, topic: str) -> bool:
    """Tell whether `topic` matches the AMQP topic `pattern` (`*` one word, `#` zero or more words)."""
    return _pattern_regex(pattern).match("." + topic) is not None


class Delivery:
    """One delivered message; acknowledge it with `ack()` once handled, or `reject()` it.

    Attributes:
        headers: The message's string headers (trace context among them); empty when it had none.
    """

    __slots__ = (
        "_ack", "_on_settle", "_reject", "_settled", "delivery_count", "headers", "message_id", "payload",
        "redelivered", "topic",
    )

    def __init__(
        self,
        *,
        topic: str,
        payload: bytes,
        message_id: str,
        redelivered: bool,
        delivery_count: int,
        ack: Callable[[], Awaitable[None]],
        reject: Callable[[bool], Awaitable[None]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.message_id = message_id
        self.redelivered = redelivered
        self.delivery_count = delivery_count
        self.headers: Mapping[str, str] = dict(headers or {})
        self._ack = ack
        self._reject = reject
        self._settled = False
        self._on_settle: Callable[[], None] | None = None

    def _traced(self) -> Delivery:
        # Called by the subscription in the consuming task, as it hands the delivery out.
        self._on_settle = telemetry.consume_span(self.topic, self.message_id, self.headers)
        return self

    def _settle(self) -> None:
        if self._on_settle is not None:
            self._on_settle()
            self._on_settle = None

    async def ack(self) -> None:
        """Acknowledge the message: the bus forgets it."""
        if self._settled:
            return
        self._settled = True
        self._settle()
        await self._ack()
        telemetry.count_settled(self.topic, "acked")

    async def reject(self, requeue: bool = True) -> None:
        """Give the message back (`requeue=True`) or send it to the dead-letter queue, if there is one."""
        if self._settled:
            return
        self._settled = True
        self._settle()
        await self._reject(requeue)
        telemetry.count_settled(self.topic, "rejected")

    def __repr__(self) -> str:
        return (
            f"Delivery(topic={self.topic!r}, message_id={self.message_id!r}, "
            f"redelivered={self.redelivered}, bytes={len(self.payload)})"
        )


class Subscription(Protocol):
    """An async iterator of deliveries from one queue; close it to give unacknowledged messages back."""

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def __anext__(self) -> Delivery: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class MessageBus(Protocol):
    """Topic publish/subscribe with confirmed publishing and acknowledged, at-least-once delivery."""

    async def publish(
        self,
        topic: str,
        payload: bytes,
        message_id: str,
        *,
        mandatory: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish one message; return once the bus has taken responsibility for it.

        `headers` travel with the message (string keys and values); the current trace context is added to them.

        Raises:
            Unroutable: `mandatory` is set and no queue is bound to a matching pattern.
            PublishNotConfirmed: the broker did not confirm the message.
            BusClosed: the bus is closed.
        """
        ...

    async def subscribe(
        self,
        patterns: str | Sequence[str],
        *,
        queue: str | None = None,
        prefetch: int = 64,
        max_length: int | None = None,
    ) -> Subscription:
        """Bind a queue to the topic patterns and start consuming from it (see the module docstring).

        Args:
            patterns: One topic pattern or several.
            queue: A durable named queue shared by competing consumers; None for a private queue.
            prefetch: Most unacknowledged deliveries held by this subscription.
            max_length: For a private queue, the most messages it keeps waiting; older ones are dropped
                first (for ticks, where only recent messages matter). None: unbounded.
        """
        ...

    async def subscribe_dead_letters(self, queue: str, *, prefetch: int = 64) -> Subscription:
        """Consume the dead-letter queue of the named queue `queue`."""
        ...

    async def delete_queue(self, queue: str) -> None:
        """Delete a named queue and its dead-letter queue (used by tests and deploy tooling)."""
        ...

    async def close(self) -> None:
        """Close every subscription and the connection."""
        ...


class _DedupeWindow:
    __slots__ = ("_ids", "_size")

    def __init__(self, size: int) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._size = size

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._ids

    def add(self, message_id: str) -> None:
        self._ids[message_id] = None
        self._ids.move_to_end(message_id)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)


# ---------------------------------------------------------------------------------------------- in-process


@dataclass(slots=True)
class _Envelope:
    topic: str
    payload: bytes
    message_id: str
    delivery_count: int = 0
    headers: Mapping[str, str] | None = None


class _MemoryQueue:
    def __init__(self, name: str, *, durable: bool, delivery_limit: int | None, dead: _MemoryQueue | None) -> None:
        self.name = name
        self.durable = durable
        self.delivery_limit = delivery_limit
        self.dead = dead
        self.ready: collections.deque[_Envelope] = collections.deque()
        self.patterns: set[str] = set()
        self.changed = asyncio.Condition()
        # Consumers waiting on ``changed``: with none, a change needs no lock and no notification (the tick path
        # puts and acknowledges thousands of messages a second).
        self.waiting = 0
        self.consumers = 0
        self.max_length: int | None = None

    async def put(self, envelope: _Envelope, *, front: bool = False) -> None:
        if front:
            self.ready.appendleft(envelope)
        else:
            self.ready.append(envelope)
            if self.max_length is not None:
                while len(self.ready) > self.max_length:
                    self.ready.popleft()  # drop-head, as RabbitMQ's x-overflow=drop-head
        await self.notify()

    async def notify(self) -> None:
        """Wake the consumers waiting for a change, if any."""
        if self.waiting:
            async with self.changed:
                self.changed.notify_all()


class _MemorySubscription:
    def __init__(self, bus: InProcessBus, queue: _MemoryQueue, prefetch: int, dedupe_window: int) -> None:
        self._bus = bus
        self._queue = queue
        self._prefetch = prefetch
        self._unacked: dict[int, _Envelope] = {}
        self._next_tag = 0
        self._closed = False
        self._seen = _DedupeWindow(dedupe_window)
        queue.consumers += 1

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            queue = self._queue

            def takeable() -> bool:
                return self._closed or (bool(queue.ready) and len(self._unacked) < self._prefetch)

            # Without a suspension between this check and the pop, no other task can take the message.
            if not takeable():
                queue.waiting += 1
                try:
                    async with queue.changed:
                        await queue.changed.wait_for(takeable)
                finally:
                    queue.waiting -= 1
            if self._closed:
                raise StopAsyncIteration
            envelope = queue.ready.popleft()
            envelope.delivery_count += 1
            self._next_tag += 1
            tag = self._next_tag
            self._unacked[tag] = envelope
            delivery = Delivery(
                topic=envelope.topic,
                payload=envelope.payload,
                message_id=envelope.message_id,
                redelivered=envelope.delivery_count > 1,
                delivery_count=envelope.delivery_count,
                ack=functools.partial(self._ack, tag),
                reject=functools.partial(self._reject, tag),
                headers=envelope.headers,
            )
            if envelope.message_id in self._seen:
                await delivery.ack()
                continue
            return delivery._traced()

    async def _ack(self, tag: int) -> None:
        envelope = self._unacked.pop(tag, None)
        if envelope is not None:
            self._seen.add(envelope.message_id)
        await self._queue.notify()

    async def _reject(self, tag: int, requeue: bool) -> None:
        envelope = self._unacked.pop(tag, None)
        if envelope is None:
            return
        queue = self._queue
        over_limit = queue.delivery_limit is not None and envelope.delivery_count > queue.delivery_limit
        if requeue and not over_limit:
            await queue.put(envelope, front=True)
        elif queue.dead is not None:
            await queue.dead.put(_Envelope(envelope.topic, envelope.payload, envelope.message_id, headers=envelope.headers))
        else:
            await queue.notify()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        queue = self._queue
        queue.consumers -= 1
        # Unacknowledged messages go back to the head of the queue in their original order.
        for envelope in reversed(list(self._unacked.values())):
            queue.ready.appendleft(envelope)
        self._unacked.clear()
        await queue.notify()
        self._bus._subscription_closed(self, queue)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class InProcessBus:
    """A `MessageBus` inside one process: the same contract as RabbitMQ, without durability across restarts."""

    def __init__(
        self,
        *,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
        dedupe_window: int = DEFAULT_DEDUPE_WINDOW,
    ) -> None:
        self._queues: dict[str, _MemoryQueue] = {}
        self._bindings: list[tuple[re.Pattern[str], _MemoryQueue]] = []
        # The queues each topic routes to, until the bindings change (bounded: cleared when it is full).
        self._routes: dict[str, list[_MemoryQueue]] = {}
        self._subscriptions: set[_MemorySubscription] = set()
        self._delivery_limit = delivery_limit
        self._dedupe_window = dedupe_window
        self._private_counter = 0
        self._closed = False

    async def publish(
        self,
        topic: str,
        payload: bytes,
        message_id: str,
        *,
        mandatory: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self._closed:
            raise BusClosed("the bus is closed")
        _check_topic(topic)
        if not message_id:
            raise ValueError("message_id must not be empty")
        _check_headers(headers)
        with telemetry.publish_span(topic, headers) as sent:
            targets = self._route(topic)
            if not targets:
                if mandatory:
                    raise Unroutable(f"no queue is bound to a pattern matching {topic!r}")
                return
            for queue in targets:
                await queue.put(_Envelope(topic, bytes(payload), message_id, headers=sent or None))
        telemetry.count_published(topic)

    def _route(self, topic: str) -> list[_MemoryQueue]:
        targets = self._routes.get(topic)
        if targets is None:
            dotted = "." + topic
            targets = list({id(queue): queue for regex, queue in self._bindings if regex.match(dotted)}.values())
            if len(self._routes) >= _ROUTES_KEPT:
                self._routes.clear()
            self._routes[topic] = targets
        return targets

    async def subscribe(
        self,
        patterns: str | Sequence[str],
        *,
        queue: str | None = None,
        prefetch: int = 64,
        max_length: int | None = None,
    ) -> _MemorySubscription:
        if self._closed:
            raise BusClosed("the bus is closed")
        pattern_list = [patterns] if isinstance(patterns, str) else list(patterns)
        if not pattern_list:
            raise ValueError("at least one topic pattern is required")
        for pattern in pattern_list:
            _check_pattern(pattern)
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        if queue is None:
            self._private_counter += 1
            target = _MemoryQueue(f"private.{self._private_counter}", durable=False, delivery_limit=None, dead=None)
            target.max_length = max_length
        else:
            target = self._named_queue(queue)
        for pattern in pattern_list:
            if pattern not in target.patterns:
                target.patterns.add(pattern)
                self._bindings.append((_pattern_regex(pattern), target))
                self._routes.clear()
        subscription = _MemorySubscription(self, target, prefetch, self._dedupe_window)
        self._subscriptions.add(subscription)
        return subscription

    async def subscribe_dead_letters(self, queue: str, *, prefetch: int = 64) -> _MemorySubscription:
        if self._closed:
            raise BusClosed("the bus is closed")
        dead = self._named_queue(queue).dead
        assert dead is not None
        subscription = _MemorySubscription(self, dead, prefetch, self._dedupe_window)
        self._subscriptions.add(subscription)
        return subscription

    def _named_queue(self, name: str) -> _MemoryQueue:
        _check_topic(name)
        existing = self._queues.get(name)
        if existing is None:
            dead = _MemoryQueue(f"{name}.dead", durable=True, delivery_limit=None, dead=None)
            existing = _MemoryQueue(name, durable=True, delivery_limit=self._delivery_limit, dead=dead)
            self._queues[name] = existing
        return existing

    def _subscription_closed(self, subscription: _MemorySubscription, queue: _MemoryQueue) -> None:
        self._subscriptions.discard(subscription)
        if not queue.durable and queue.consumers == 0:
            self._bindings = [(regex, q) for regex, q in self._bindings if q is not queue]
            self._routes.clear()

    async def delete_queue(self, queue: str) -> None:
        target = self._queues.pop(queue, None)
        if target is not None:
            self._bindings = [(regex, q) for regex, q in self._bindings if q is not target]
            self._routes.clear()

    async def close(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.close()
        self._closed = True


# ---------------------------------------------------------------------------------------------- RabbitMQ


class _RabbitSubscription:
    def __init__(self, channel: Any, queue: Any, dedupe_window: int, delete_on_close: bool) -> None:
        self._channel = channel
        self._queue = queue
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._consumer_tag: str | None = None
        self._closed = False
        self._seen = _DedupeWindow(dedupe_window)
        self._delete_on_close = delete_on_close

    async def start(self) -> None:
        self._consumer_tag = await self._queue.consume(self._inbox.put, no_ack=False)

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            if self._closed:
                raise StopAsyncIteration
            message = await self._inbox.get()
            if message is None:
                raise StopAsyncIteration
            if _channel_lost(message):
                # Taken before the connection dropped: the broker requeued it and delivers it again on the
                # restored channel, so this copy is not handed out (it could not be acknowledged anyway).
                continue
            headers = message.headers or {}
            # Quorum queues count earlier failed deliveries in x-delivery-count (absent on the first one).
            count = int(headers.get("x-delivery-count", 0)) + 1
            if message.redelivered:
                count = max(count, 2)
            delivery = Delivery(
                topic=message.routing_key or "",
                payload=message.body,
                message_id=message.message_id or "",
                redelivered=bool(message.redelivered),
                delivery_count=count,
                ack=functools.partial(self._ack, message),
                reject=functools.partial(self._reject, message),
                headers=_string_headers(headers),
            )
            if delivery.message_id and delivery.message_id in self._seen:
                await delivery.ack()
                continue
            return delivery._traced()

    @staticmethod
    async def _reject(message: Any, requeue: bool) -> None:
        from aio_pika.exceptions import AMQPError

        try:
            await message.nack(requeue=requeue)
        except (AMQPError, ConnectionError, RuntimeError):
            # The channel closed under it: the broker has requeued the message already.
            pass

    async def _ack(self, message: Any) -> None:
        from aio_pika.exceptions import AMQPError

        try:
            await message.ack()
        except (AMQPError, ConnectionError, RuntimeError):
            # The channel closed (broker restart, connection drop) after the message was handed out: the broker
            # requeued it and will deliver it again on the restored channel, where the dedupe window below
            # acknowledges it without handing it out twice. The consumer has done its part.
            pass
        if message.message_id:
            self._seen.add(message.message_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put_nowait(None)
        try:
            if self._consumer_tag is not None and not self._channel.is_closed:
                await asyncio.wait_for(self._queue.cancel(self._consumer_tag), CLOSE_STEP_SECONDS)
            if self._delete_on_close and not self._channel.is_closed:
                await asyncio.wait_for(self._queue.delete(if_unused=False, if_empty=False), CLOSE_STEP_SECONDS)
        except TimeoutError:
            pass  # the channel's close below ends the consumer; an exclusive queue goes with its connection
        finally:
            # Closing the channel makes the broker requeue everything still unacknowledged.
            if not self._channel.is_closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._channel.close(), CLOSE_STEP_SECONDS)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class RabbitMqBus:
    """A `MessageBus` on RabbitMQ: one durable topic exchange, persistent messages, publisher confirms.

    Named queues are quorum queues with a delivery limit and a dead-letter queue; private queues are
    exclusive and deleted with their subscription. The connection is aio-pika's robust connection, which
    reconnects and restores queues, bindings and consumers.
    """

    def __init__(
        self,
        connection: Any,
        publish_channel: Any,
        exchange: Any,
        dead_letter_exchange: Any,
        *,
        exchange_name: str,
        delivery_limit: int,
        confirm_timeout: float,
        dedupe_window: int,
    ) -> None:
        self._connection = connection
        self._publish_channel = publish_channel
        self._exchange = exchange
        self._dead_letter_exchange = dead_letter_exchange
        self._exchange_name = exchange_name
        self._delivery_limit = delivery_limit
        self._confirm_timeout = confirm_timeout
        self._dedupe_window = dedupe_window
        self._subscriptions: set[_RabbitSubscription] = set()
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        exchange: str = "tastyplat",
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
        confirm_timeout: float = 5.0,
        dedupe_window: int = DEFAULT_DEDUPE_WINDOW,
        connect_timeout: float = 10.0,
        reconnect_interval: float = 1.0,
    ) -> RabbitMqBus:
        """Connect to the broker at `url` (amqp://user:password@host:port/vhost) and declare the exchanges.

        A dropped connection is re-established every ``reconnect_interval`` seconds until the broker is back
        (aio-pika's default is 5 s; a ``reconnect_interval`` query parameter in ``url`` takes precedence).

        Raises:
            BusError: the broker cannot be reached within `connect_timeout` seconds.
        """
        import aio_pika

        _check_topic(exchange)
        try:
            options = {} if "reconnect_interval=" in url else {"reconnect_interval": reconnect_interval}
            connection = await aio_pika.connect_robust(url, timeout=connect_timeout, **options)
        except (OSError, asyncio.TimeoutError, aio_pika.exceptions.AMQPError) as error:
            raise BusError(f"cannot connect to RabbitMQ: {error}") from error
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        topic_exchange = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        dead_letter_exchange = await channel.declare_exchange(
            f"{exchange}.dlx", aio_pika.ExchangeType.DIRECT, durable=True
        )
        return cls(
            connection,
            channel,
            topic_exchange,
            dead_letter_exchange,
            exchange_name=exchange,
            delivery_limit=delivery_limit,
            confirm_timeout=confirm_timeout,
            dedupe_window=dedupe_window,
        )

    async def publish(
        self,
        topic: str,
        payload: bytes,
        message_id: str,
        *,
        mandatory: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self._closed:
            raise BusClosed("the bus is closed")
        _check_topic(topic)
        if not message_id:
            raise ValueError("message_id must not be empty")
        _check_headers(headers)
        with telemetry.publish_span(topic, headers) as sent:
            await self._publish(topic, payload, message_id, mandatory, sent)
        telemetry.count_published(topic)

    async def _publish(
        self, topic: str, payload: bytes, message_id: str, mandatory: bool, headers: Mapping[str, str]
    ) -> None:
        import aio_pika
        from aio_pika.exceptions import DeliveryError, PublishError
        from pamqp.commands import Basic

        message = aio_pika.Message(
            bytes(payload),
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/octet-stream",
            headers=dict(headers) or None,
        )
        try:
            # The bound covers the whole call: while the robust connection is reconnecting, aio-pika waits for it
            # without a limit before it even sends the message.
            async with asyncio.timeout(self._confirm_timeout):
                confirmation = await self._exchange.publish(
                    message, routing_key=topic, mandatory=mandatory, timeout=self._confirm_timeout
                )
        except PublishError as error:
            raise Unroutable(f"no queue is bound to a pattern matching {topic!r}") from error
        except DeliveryError as error:
            raise PublishNotConfirmed(f"broker refused message {message_id}: {error}") from error
        except (asyncio.TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as error:
            # RuntimeError: aiormq's ChannelInvalidStateError (a RuntimeError, not an AMQPError) while the channel
            # is closed, during a broker restart or a dropped connection, until the robust connection restores it.
            raise PublishNotConfirmed(f"no confirm for message {message_id}: {error!r}") from error
        if not isinstance(confirmation, Basic.Ack):
            raise PublishNotConfirmed(f"broker did not ack message {message_id}: {confirmation!r}")

    async def subscribe(
        self,
        patterns: str | Sequence[str],
        *,
        queue: str | None = None,
        prefetch: int = 64,
        max_length: int | None = None,
    ) -> _RabbitSubscription:
        if self._closed:
            raise BusClosed("the bus is closed")
        pattern_list = [patterns] if isinstance(patterns, str) else list(patterns)
        if not pattern_list:
            raise ValueError("at least one topic pattern is required")
        for pattern in pattern_list:
            _check_pattern(pattern)
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        if queue is None:
            arguments = {"x-max-length": max_length, "x-overflow": "drop-head"} if max_length is not None else None
            amqp_queue = await channel.declare_queue(exclusive=True, auto_delete=True, arguments=arguments)
        else:
            amqp_queue = await self._declare_named(channel, queue)
        for pattern in pattern_list:
            await amqp_queue.bind(self._exchange_name, routing_key=pattern)
        subscription = _RabbitSubscription(channel, amqp_queue, self._dedupe_window, delete_on_close=False)
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    async def subscribe_dead_letters(self, queue: str, *, prefetch: int = 64) -> _RabbitSubscription:
        if self._closed:
            raise BusClosed("the bus is closed")
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        await self._declare_named(channel, queue)
        dead = await channel.declare_queue(f"{queue}.dead", durable=True)
        subscription = _RabbitSubscription(channel, dead, self._dedupe_window, delete_on_close=False)
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    async def _declare_named(self, channel: Any, name: str) -> Any:
        _check_topic(name)
        dead = await channel.declare_queue(f"{name}.dead", durable=True)
        await dead.bind(f"{self._exchange_name}.dlx", routing_key=name)
        return await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self._delivery_limit,
                "x-dead-letter-exchange": f"{self._exchange_name}.dlx",
                "x-dead-letter-routing-key": name,
            },
        )

    async def delete_queue(self, queue: str) -> None:
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await channel.queue_delete(queue)
            await channel.queue_delete(f"{queue}.dead")
        finally:
            await channel.close()

    async def delete_exchanges(self) -> None:
        """Delete this bus's topic and dead-letter exchanges (tests with per-run exchange names)."""
        await self._publish_channel.exchange_delete(self._exchange_name)
        await self._publish_channel.exchange_delete(f"{self._exchange_name}.dlx")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        self._subscriptions.clear()
        await self._connection.close()
