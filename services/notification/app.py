"""Application layer of the notification service: channels, the alert consumer, the deliverer and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from services.notification.domain.delivery import DeliveryEvent, plan
from services.notification.domain.errors import (
    ChannelDisabled,
    ChannelNotFound,
    ContactNotVerified,
    FieldInvalid,
    FieldRequired,
    PageTokenInvalid,
    ProviderUnavailable,
    TestThrottled,
)
from services.notification.domain.model import (
    AlertNotice,
    Channel,
    ChannelKind,
    ChannelState,
    Delivery,
    DeliveryStatus,
    normalize_email,
    normalize_phone,
)
from services.notification.ports import (
    ALERT_PATTERNS,
    ALERT_QUEUE,
    USER_PATTERNS,
    USER_QUEUE,
    Caller,
    ContactDirectory,
    DeadLetters,
    DeliveryQuery,
    Provider,
    ProviderError,
    Store,
)
from services.platform.bus import MessageBus
from services.platform.clock import Clock
from services.platform import paging, telemetry

__all__ = [
    "AlertConsumer",
    "DeliveryHooks",
    "Deliverer",
    "NotificationApp",
    "NotificationAppSettings",
    "Scheduler",
    "UserEventConsumer",
]

log = logging.getLogger("tastyplat.notification")

_FINAL = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED)


def _count(delivery: Delivery | None, status: DeliveryStatus) -> None:
    # Deliveries that reached a final state, by channel (tests and alerts alike).
    if delivery is not None:
        telemetry.counter(
            "notification_deliveries_total", "Deliveries that reached a final status, by channel", ("channel", "status")
        ).labels(delivery.channel_kind.name.lower(), status.name).inc()


def _count_event(name: str, documentation: str, delivery: Delivery) -> None:
    telemetry.counter(name, documentation, ("channel",)).labels(delivery.channel_kind.name.lower()).inc()


MAX_TEST_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class NotificationAppSettings:
    """Behaviour settings.

    Attributes:
        channel_limit: Channels per user.
        max_attempts: Provider calls per delivery before it fails (transient failures).
        backoff_initial: First retry delay, seconds (exponential with jitter after it).
        backoff_max: Largest retry delay, seconds.
        attempt_timeout: Seconds one provider call may take.
        lease_seconds: How long a worker owns a delivery it is attempting; an abandoned one is taken over after.
        scheduler_seconds: How often due (escalated, quiet-hours, abandoned) deliveries are looked for.
        concurrency: Deliveries in flight at once.
        test_limit: Test notifications per user per ``test_window``.
        test_window: The throttle window of test notifications.
    """

    channel_limit: int = 20
    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    attempt_timeout: float = 30.0
    lease_seconds: float = 120.0
    scheduler_seconds: float = 1.0
    concurrency: int = 16
    test_limit: int = 5
    test_window: timedelta = timedelta(minutes=10)


class DeliveryHooks(Protocol):
    """Observation points around the side effect (fault injection in crash tests; no-ops otherwise)."""

    def before_send(self, delivery: Delivery) -> None:
        """Called after the ATTEMPTING record, before the provider call."""
        ...

    def after_send(self, delivery: Delivery) -> None:
        """Called after the provider accepted, before the SENT record."""
        ...

    def before_ack(self, alert_id: str) -> None:
        """Called after every delivery of an alert is recorded, before the bus message is acknowledged."""
        ...


class _NoHooks:
    def before_send(self, delivery: Delivery) -> None:
        return None

    def after_send(self, delivery: Delivery) -> None:
        return None

    def before_ack(self, alert_id: str) -> None:
        return None


class _Retry(Exception):
    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


class Deliverer:
    """Executes deliveries: claim (ATTEMPTING), reconcile if an earlier attempt may have landed, send, record.

    Transient failures are retried in place with exponential backoff and jitter (tenacity), each retry a new
    claimed attempt; the provider's ``Retry-After`` is honoured when longer.
    """

    def __init__(
        self,
        *,
        store: Store,
        providers: dict[ChannelKind, Provider],
        dead_letters: DeadLetters,
        clock: Clock,
        settings: NotificationAppSettings,
        hooks: DeliveryHooks | None = None,
    ) -> None:
        """Configure the deliverer; ``owner`` (random) names its leases."""
        self._store = store
        self._providers = providers
        self._dead = dead_letters
        self._clock = clock
        self._settings = settings
        self._hooks: DeliveryHooks = hooks or _NoHooks()
        self.owner = f"worker-{uuid.uuid4()}"
        self._exponential = wait_exponential_jitter(
            multiplier=settings.backoff_initial, max=settings.backoff_max, jitter=settings.backoff_initial
        )

    def _lease(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._settings.lease_seconds)

    def _wait(self, state: RetryCallState) -> float:
        base = float(self._exponential(state))
        error = state.outcome.exception() if state.outcome is not None else None
        hint = error.error.retry_after if isinstance(error, _Retry) else None
        return max(base, hint or 0.0)

    async def run(self, delivery_id: str) -> Delivery | None:
        """Deliver ``delivery_id`` if it may be attempted now; return the delivery as it ended up."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._clock.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._attempt(delivery_id)
        except _Retry as exhausted:
            failed = await self._store.transition(
                delivery_id,
                self.owner,
                DeliveryEvent.RETRIES_EXHAUSTED,
                self._clock.now(),
                last_error=f"retries exhausted: {exhausted.error}"[:500],
            )
            _count(failed, DeliveryStatus.FAILED)
            if failed is not None:
                await self._dead_letter(failed)
        return await self._store.get_delivery(delivery_id)

    async def _dead_letter(self, delivery: Delivery) -> None:
        _count_event("notification_dead_letters_total", "Deliveries sent to the dead-letter queue", delivery)
        try:
            await self._dead.publish(delivery)
        except Exception as error:  # noqa: BLE001  # the FAILED record is the durable truth; the DLQ is a copy
            log.warning("cannot publish a dead letter", extra={"delivery_id": delivery.delivery_id, "error": repr(error)})

    async def _suppression(self, delivery: Delivery) -> str:
        if delivery.test:
            return ""
        if delivery.escalation_level > 0 and await self._store.is_acknowledged(delivery.alert_id):
            return "alert acknowledged before escalation"
        channel = await self._store.get_channel(delivery.user_id, delivery.channel_id)
        if channel is None:
            return "channel deleted"
        if channel.state is ChannelState.DISABLED:
            return "channel disabled"
        preferences = await self._store.get_preferences(delivery.user_id)
        if preferences is not None and not preferences.verified(delivery.channel_kind, delivery.address):
            return "contact not verified"
        return ""

    async def _attempt(self, delivery_id: str) -> None:
        now = self._clock.now()
        claimed = await self._store.claim(delivery_id, self.owner, now, self._lease(now))
        if claimed is None:
            return
        delivery, _previous = claimed
        store, owner = self._store, self.owner
        reason = await self._suppression(delivery)
        if reason:
            suppressed = await store.transition(
                delivery_id, owner, DeliveryEvent.SUPPRESS, self._clock.now(), last_error=reason
            )
            _count(suppressed, DeliveryStatus.SUPPRESSED)
            return
        provider = self._providers.get(delivery.channel_kind)
        if provider is None:
            failed = await store.transition(
                delivery_id, owner, DeliveryEvent.PERMANENT_FAILURE, self._clock.now(),
                last_error=f"no provider configured for {delivery.channel_kind.name}",
            )
            _count(failed, DeliveryStatus.FAILED)
            return
        if delivery.ambiguous:
            try:
                found = await provider.reconcile(delivery)
            except Exception as error:  # noqa: BLE001  # cannot ask: treat as "not found", resend
                log.warning("reconciliation failed", extra={"delivery_id": delivery_id, "error": repr(error)})
                found = None
            if found:
                reconciled = await store.transition(
                    delivery_id, owner, DeliveryEvent.RECONCILED, self._clock.now(),
                    provider_message_id=found, ambiguous=False,
                )
                _count(reconciled, DeliveryStatus.SENT)
                return
        self._hooks.before_send(delivery)
        channel = delivery.channel_kind.name.lower()
        try:
            # The provider's API takes no trace context: a CLIENT span of this service stands for the call.
            with telemetry.client_span(f"notification.deliver {channel}", {
                "notification.channel": channel, "notification.delivery_id": delivery_id,
                "notification.alert_id": delivery.alert_id, "notification.attempt": delivery.attempt_count,
            }):
                provider_id = await asyncio.wait_for(provider.send(delivery), timeout=self._settings.attempt_timeout)
        except ProviderError as error:
            await self._failed(delivery, error)
            return
        except asyncio.TimeoutError:
            await self._failed(delivery, ProviderError("provider call timed out", ambiguous=True))
            return
        self._hooks.after_send(delivery)
        sent = await store.transition(
            delivery_id, owner, DeliveryEvent.ACCEPTED, self._clock.now(),
            provider_message_id=provider_id, ambiguous=False, last_error="",
        )
        _count(sent, DeliveryStatus.SENT)

    async def _failed(self, delivery: Delivery, error: ProviderError) -> None:
        now = self._clock.now()
        if error.disable_channel:
            await self._store.disable_channel(delivery.channel_id)
        if error.permanent:
            failed = await self._store.transition(
                delivery.delivery_id, self.owner, DeliveryEvent.PERMANENT_FAILURE, now, last_error=str(error)[:500]
            )
            _count(failed, DeliveryStatus.FAILED)
            if failed is not None:
                await self._dead_letter(failed)
            return
        await self._store.transition(
            delivery.delivery_id,
            self.owner,
            DeliveryEvent.TRANSIENT_FAILURE,
            now,
            last_error=str(error)[:500],
            ambiguous=delivery.ambiguous or error.ambiguous,
            lease_until=self._lease(now),
        )
        _count_event("notification_retries_total", "Transient provider failures retried with backoff", delivery)
        raise _Retry(error)


class AlertConsumer:
    """Consumes alert events from the durable queue; acknowledges a message only once its deliveries are recorded."""

    def __init__(
        self,
        *,
        bus: MessageBus,
        store: Store,
        deliverer: Deliverer,
        decode: Callable[[bytes], AlertNotice],
        clock: Clock,
        settings: NotificationAppSettings,
        hooks: DeliveryHooks | None = None,
        queue: str = ALERT_QUEUE,
    ) -> None:
        """Configure the consumer (``start`` subscribes to ``queue``)."""
        self._bus = bus
        self._queue = queue
        self._store = store
        self._deliverer = deliverer
        self._decode = decode
        self._clock = clock
        self._settings = settings
        self._hooks: DeliveryHooks = hooks or _NoHooks()
        self._subscription: Any = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self.handled = 0

    async def start(self) -> None:
        """Subscribe to the alert queue and start consuming."""
        self._subscription = await self._bus.subscribe(list(ALERT_PATTERNS), queue=self._queue, prefetch=self._settings.concurrency)
        self._task = asyncio.create_task(self._run(), name="notification-alerts")

    async def stop(self) -> None:
        """Stop consuming; unacknowledged messages go back to the queue."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        for task in list(self._inflight):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.close()

    async def _run(self) -> None:
        async for message in self._subscription:
            await self._slots.acquire()
            task = asyncio.create_task(self._handle_guarded(message))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _handle_guarded(self, message: Any) -> None:
        try:
            await self.handle(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("alert handling failed; the message goes back to the queue", extra={"message_id": message.message_id})
            with contextlib.suppress(Exception):
                await message.reject(requeue=True)
        finally:
            self._slots.release()

    async def handle(self, message: Any) -> None:
        """Record and execute the deliveries of one alert event, then acknowledge it."""
        try:
            notice = self._decode(message.payload)
        except ValueError:
            log.warning("undecodable alert event sent to the dead-letter queue", extra={"message_id": message.message_id})
            await message.reject(requeue=False)
            return
        if message.topic.endswith("acknowledged") or notice.acknowledged:
            await self._store.mark_acknowledged(notice.alert_id, notice.user_id)
            if message.topic.endswith("acknowledged"):
                await message.ack()
                return
        await self.deliver(notice)
        self._hooks.before_ack(notice.alert_id)
        await message.ack()
        self.handled += 1

    async def deliver(self, notice: AlertNotice) -> list[Delivery]:
        """Plan the alert's deliveries (idempotently) and execute those due now."""
        now = self._clock.now()
        preferences = await self._store.get_preferences(notice.user_id)
        channels = await self._store.user_channels(notice.user_id)
        deliveries = await self._store.plan_deliveries(notice, plan(notice, preferences, channels, now), now)
        due = [d for d in deliveries if d.status not in _FINAL and d.due_time <= now]
        results = await asyncio.gather(*(self._deliverer.run(d.delivery_id) for d in due))
        return [r for r in results if r is not None]


class UserEventConsumer:
    """Delivers the user service's one-time codes (the only message an unverified contact may receive) and
    forgets deleted users.

    A code goes straight to its destination through the SMS or e-mail provider, retried with backoff; a record
    keyed by the bus message id (never the code) keeps a redelivered message from sending it twice.
    """

    def __init__(
        self,
        *,
        bus: MessageBus,
        store: Store,
        providers: dict[ChannelKind, Provider],
        clock: Clock,
        settings: NotificationAppSettings,
    ) -> None:
        """Configure the consumer (``start`` subscribes)."""
        self._bus = bus
        self._store = store
        self._providers = providers
        self._clock = clock
        self._settings = settings
        self._subscription: Any = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    async def start(self) -> None:
        """Subscribe to the user events queue and start consuming."""
        self._subscription = await self._bus.subscribe(list(USER_PATTERNS), queue=USER_QUEUE, prefetch=8)
        self._task = asyncio.create_task(self._run(), name="notification-user-events")

    async def stop(self) -> None:
        """Stop consuming."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.close()

    async def _run(self) -> None:
        async for message in self._subscription:
            try:
                await self.handle(message)
            except Exception:
                log.exception("user event handling failed; back to the queue", extra={"message_id": message.message_id})
                with contextlib.suppress(Exception):
                    await message.reject(requeue=True)

    async def handle(self, message: Any) -> None:
        """Handle one user event, then acknowledge it."""
        try:
            event = json.loads(message.payload)
            user_id = str(event["user_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("malformed user event dead-lettered", extra={"message_id": message.message_id})
            await message.reject(requeue=False)
            return
        if message.topic == "user.deleted":
            await self._store.delete_user(user_id)
            await message.ack()
            return
        await self._send_code(message.message_id, user_id, event)
        await message.ack()

    async def _send_code(self, message_id: str, user_id: str, event: dict[str, Any]) -> None:
        if await self._store.code_sent(message_id):
            return
        kind = {"sms": ChannelKind.SMS, "email": ChannelKind.EMAIL}.get(str(event.get("channel")))
        provider = self._providers.get(kind) if kind is not None else None
        now = self._clock.now()
        try:
            expires = datetime.fromisoformat(str(event["expire_time"]))
            code, destination = str(event["code"]), str(event["destination"])
        except (KeyError, ValueError):
            log.warning("code event without code, destination or expiry dropped", extra={"message_id": message_id})
            return
        if provider is None or expires <= now:
            log.warning("code not delivered", extra={"message_id": message_id, "reason": "expired" if provider else "no provider"})
            return
        purpose = "password reset" if event.get("purpose") == "password_reset" else "verification"
        delivery = Delivery(
            delivery_id=message_id, alert_id="", user_id=user_id, channel_id="", channel_kind=kind,  # type: ignore[arg-type]
            address=destination, status=DeliveryStatus.ATTEMPTING, attempt_count=1, escalation_level=0, due_time=now,
            title=f"Your {purpose} code",
            body=f"Your Tastytrade platform {purpose} code is {code}. It expires at {expires:%H:%M} UTC.",
            create_time=now, update_time=now, test=True,
        )
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=wait_exponential_jitter(multiplier=self._settings.backoff_initial, max=self._settings.backoff_max,
                                         jitter=self._settings.backoff_initial),
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and not e.permanent),
            sleep=self._clock.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    provider_id = await provider.send(delivery)
        except ProviderError as error:
            # The code is secret: only the failure, never the message, goes to the log.
            log.warning("code delivery failed", extra={"message_id": message_id, "error": str(error)[:200]})
            return
        await self._store.record_code(message_id, user_id, kind, provider_id, self._clock.now())  # type: ignore[arg-type]
        self.sent += 1


class Scheduler:
    """Runs deliveries that became due later (escalation, end of quiet hours) or were abandoned by a dead worker."""

    def __init__(self, *, store: Store, deliverer: Deliverer, clock: Clock, settings: NotificationAppSettings) -> None:
        """Configure the scheduler."""
        self._store = store
        self._deliverer = deliverer
        self._clock = clock
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the loop."""
        self._task = asyncio.create_task(self._run(), name="notification-scheduler")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def tick(self) -> int:
        """Run every delivery claimable now; return how many were tried."""
        ids = await self._store.claimable(self._clock.now(), self._settings.concurrency)
        await asyncio.gather(*(self._deliverer.run(i) for i in ids))
        return len(ids)

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._settings.scheduler_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler pass failed")


class NotificationApp:
    """Use cases of the NotificationService."""

    def __init__(
        self,
        *,
        store: Store,
        directory: ContactDirectory,
        deliverer: Deliverer,
        clock: Clock,
        settings: NotificationAppSettings,
    ) -> None:
        """Wire the use cases."""
        self.store = store
        self._directory = directory
        self._deliverer = deliverer
        self._clock = clock
        self.settings = settings

    async def refresh_preferences(self, caller: Caller) -> None:
        """Read the caller's preferences from the user service and keep them for deliveries."""
        preferences = await self._directory.preferences(caller)
        await self.store.save_preferences(caller.user_id, preferences)

    async def register_channel(
        self, caller: Caller, *, request_id: str, kind: int, address: str, display_name: str
    ) -> Channel:
        """RegisterChannel: only verified contacts and the caller's own devices."""
        if kind == 0:
            raise FieldRequired("kind", "must be set (CHANNEL_KIND_UNSPECIFIED is not a channel)")
        try:
            channel_kind = ChannelKind(kind)
        except ValueError:
            raise FieldInvalid("kind", f"unknown channel kind {kind}") from None
        if len(display_name) > 100:
            raise FieldInvalid("display_name", "at most 100 characters")
        if len(request_id) > 128:
            raise FieldInvalid("request_id", "at most 128 characters")
        raw = address.strip()
        if channel_kind is ChannelKind.STREAM:
            normalized = ""
        elif not raw:
            raise FieldRequired("address")
        elif channel_kind is ChannelKind.SMS:
            normalized = normalize_phone(raw)
        elif channel_kind is ChannelKind.EMAIL:
            normalized = normalize_email(raw)
        else:
            if len(raw) > 4096:
                raise FieldInvalid("address", "a device token has at most 4096 characters")
            normalized = raw
        preferences = await self._directory.preferences(caller)
        await self.store.save_preferences(caller.user_id, preferences)
        if not preferences.verified(channel_kind, normalized):
            what = {ChannelKind.SMS: "the phone number", ChannelKind.EMAIL: "the e-mail address",
                    ChannelKind.PUSH: "the device token"}[channel_kind]
            raise ContactNotVerified(what)
        channel = Channel(
            channel_id=str(uuid.uuid4()),
            user_id=caller.user_id,
            kind=channel_kind,
            address=normalized,
            display_name=display_name.strip(),
            state=ChannelState.ACTIVE,
            create_time=self._clock.now(),
        )
        return await self.store.register_channel(channel, request_id, self.settings.channel_limit)

    async def list_channels(self, caller: Caller, page_size: int, page_token: str) -> tuple[list[Channel], str]:
        """ListChannels."""
        size = paging.page_size(page_size, default=50, maximum=500)
        query = {"user": caller.user_id}
        after = None
        if page_token:
            cursor = paging.decode_token(page_token, query)
            try:
                after = (datetime.fromisoformat(cursor["t"]), str(cursor["i"]))
            except (KeyError, ValueError, TypeError):
                raise PageTokenInvalid("page_token", "was not issued for this query") from None
        with contextlib.suppress(Exception):
            await self.refresh_preferences(caller)
        channels = await self.store.list_channels(caller.user_id, after, size + 1)
        token = ""
        if len(channels) > size:
            channels = channels[:size]
            token = paging.encode_token({"t": channels[-1].create_time.isoformat(), "i": channels[-1].channel_id}, query)
        return channels, token

    async def delete_channel(self, caller: Caller, channel_id: str) -> None:
        """DeleteChannel."""
        if not channel_id:
            raise FieldRequired("channel_id")
        if not await self.store.delete_channel(caller.user_id, channel_id):
            raise ChannelNotFound(channel_id)

    async def send_test(self, caller: Caller, channel_id: str, message: str) -> Delivery:
        """SendTestNotification: one message now on one channel, quiet hours aside."""
        if not channel_id:
            raise FieldRequired("channel_id")
        if len(message) > MAX_TEST_MESSAGE:
            raise FieldInvalid("message", f"at most {MAX_TEST_MESSAGE} characters")
        channel = await self.store.get_channel(caller.user_id, channel_id)
        if channel is None:
            raise ChannelNotFound(channel_id)
        if channel.state is ChannelState.DISABLED:
            raise ChannelDisabled(channel_id)
        now = self._clock.now()
        window = self.settings.test_window
        recent = await self.store.test_times(caller.user_id, now - window)
        if len(recent) >= self.settings.test_limit:
            raise TestThrottled((recent[0] + window - now).total_seconds())
        text = message.strip() or "This is a test notification from the Tastytrade Enhancement Platform."
        delivery = Delivery(
            delivery_id=str(uuid.uuid4()),
            alert_id="",
            user_id=caller.user_id,
            channel_id=channel.channel_id,
            channel_kind=channel.kind,
            address=channel.address,
            status=DeliveryStatus.PENDING,
            attempt_count=0,
            escalation_level=0,
            due_time=now,
            title="Test notification",
            body=text,
            create_time=now,
            update_time=now,
            test=True,
        )
        await self.store.add_delivery(delivery)
        result = await self._deliverer.run(delivery.delivery_id)
        assert result is not None
        if result.status is DeliveryStatus.FAILED:
            raise ProviderUnavailable(result.last_error or "delivery failed")
        return result

    async def list_deliveries(
        self, caller: Caller, *, page_size: int, page_token: str, alert_id: str, channel_id: str, status: DeliveryStatus | None
    ) -> tuple[list[Delivery], str]:
        """ListDeliveries: newest first, failed and dead-lettered included."""
        size = paging.page_size(page_size, default=100, maximum=1000)
        filters = {"user": caller.user_id, "alert": alert_id, "channel": channel_id, "status": None if status is None else int(status)}
        before = None
        if page_token:
            cursor = paging.decode_token(page_token, filters)
            try:
                before = (datetime.fromisoformat(cursor["t"]), str(cursor["i"]))
            except (KeyError, ValueError, TypeError):
                raise PageTokenInvalid("page_token", "was not issued for this query") from None
        query = DeliveryQuery(limit=size + 1, before=before, alert_id=alert_id, channel_id=channel_id, status=status)
        deliveries = await self.store.list_deliveries(caller.user_id, query)
        token = ""
        if len(deliveries) > size:
            deliveries = deliveries[:size]
            last = deliveries[-1]
            token = paging.encode_token({"t": last.create_time.isoformat(), "i": last.delivery_id}, filters)
        return deliveries, token



