"""Fixtures of the notification tests: the fake Twilio and FCM APIs, a real SMTP server, wired providers."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.notification.adapters.memory_store import InMemoryStore
from services.notification.adapters.providers import FcmPushProvider, SmtpEmailProvider, StreamProvider, TwilioSmsProvider
from services.notification.app import Deliverer, NotificationAppSettings
from services.notification.domain.model import (
    AlertNotice,
    Channel,
    ChannelKind,
    ChannelState,
    Preferences,
    Severity,
)
from services.platform.bus import InProcessBus
from services.platform.clock import SystemClock
from tests.fakes.fcm_api import FakeFcm
from tests.fakes.twilio_api import FakeTwilio

USER = "7b0c9a52-3c1e-4d7a-9f0e-2b6f8a1d4c11"
PHONE = "+14155550100"
EMAIL = "trader@example.com"
PUSH_TOKEN = "fcm-token-" + "x" * 40


@dataclass
class SmtpInbox:
    """Messages the real SMTP server received."""

    host: str
    port: int
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    # aiosmtpd's Controller keeps port 0 as is (connection refused), so pick a free port first.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_inbox() -> Iterator[SmtpInbox]:
    """A real aiosmtpd SMTP server on loopback."""
    inbox = SmtpInbox("127.0.0.1", _free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    """The fake Twilio REST API."""
    fake = FakeTwilio()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fake_fcm() -> AsyncIterator[FakeFcm]:
    """The fake FCM v1 endpoint."""
    fake = FakeFcm()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def twilio_provider(fake: FakeTwilio) -> TwilioSmsProvider:
    """The real twilio SDK client pointed at the fake through its documented ``base_url``."""
    from twilio.rest import Client

    client = Client(fake.account_sid, fake.auth_token)
    client.api.base_url = fake.base_url
    return TwilioSmsProvider(client, from_number="+15005550006")


def fcm_provider(fake: FakeFcm) -> FcmPushProvider:
    """firebase-admin with an anonymous credential, its FCM URL pointed at the fake."""
    import firebase_admin
    from firebase_admin import credentials
    from google.auth.credentials import AnonymousCredentials

    class _Anonymous(credentials.Base):  # type: ignore[misc]
        def get_credential(self) -> AnonymousCredentials:
            return AnonymousCredentials()

    app = firebase_admin.initialize_app(_Anonymous(), {"projectId": fake.project_id}, name=f"test-{uuid.uuid4()}")
    return FcmPushProvider(app, endpoint=fake.endpoint)


def smtp_provider(inbox: SmtpInbox) -> SmtpEmailProvider:
    """aiosmtplib to the loopback server, no TLS."""
    return SmtpEmailProvider(hostname=inbox.host, port=inbox.port, sender="alerts@tastyplat.test", start_tls=False)


FAST = NotificationAppSettings(
    max_attempts=4, backoff_initial=0.01, backoff_max=0.05, attempt_timeout=10.0, lease_seconds=30.0,
    scheduler_seconds=0.05,
)


def channel(kind: ChannelKind, address: str, channel_id: str | None = None) -> Channel:
    """An active channel of USER."""
    return Channel(channel_id or str(uuid.uuid4()), USER, kind, address, kind.name.lower(), ChannelState.ACTIVE,
                   datetime(2024, 1, 2, tzinfo=UTC))


def preferences(*kinds: ChannelKind, escalation_seconds: float = 0.0) -> Preferences:
    """USER's preferences: every contact verified, WARNING alerts on ``kinds`` in that order."""
    from datetime import timedelta

    return Preferences(
        phone_number=PHONE, phone_verified=True, email=EMAIL, email_verified=True, push_tokens=frozenset({PUSH_TOKEN}),
        severity_channels={Severity.WARNING: tuple(kinds), Severity.CRITICAL: tuple(kinds)},
        escalation_delay=timedelta(seconds=escalation_seconds),
    )


def notice(alert_id: str = "alrt_000000000000001", severity: Severity = Severity.WARNING) -> AlertNotice:
    """An alert of USER raised now."""
    return AlertNotice(alert_id, USER, severity, "SPY delta 312 above band [-100, 300]",
                       "Watch 'SPY' on account 5WW1: delta moved from 280 to 312.", datetime.now(UTC))


@dataclass
class Rig:
    """A deliverer over an in-memory store with the real providers pointed at the fakes."""

    store: InMemoryStore
    deliverer: Deliverer
    bus: InProcessBus


@pytest.fixture
async def rig(fake_twilio: FakeTwilio, fake_fcm: FakeFcm, smtp_inbox: SmtpInbox) -> AsyncIterator[Rig]:
    """Everything a delivery test needs."""
    from services.notification.adapters.dead_letters import BusDeadLetters

    store = InMemoryStore()
    bus = InProcessBus()
    dead = BusDeadLetters(bus)
    await dead.declare()
    providers = {
        ChannelKind.SMS: twilio_provider(fake_twilio),
        ChannelKind.EMAIL: smtp_provider(smtp_inbox),
        ChannelKind.PUSH: fcm_provider(fake_fcm),
        ChannelKind.STREAM: StreamProvider(),
    }
    deliverer = Deliverer(store=store, providers=providers, dead_letters=dead, clock=SystemClock(), settings=FAST)
    try:
        yield Rig(store, deliverer, bus)
    finally:
        await bus.close()
