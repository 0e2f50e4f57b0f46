"""A real notification server on port 0 with the real SDK providers pointed at local fakes and a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc.aio
import pytest
from tastyplat.notification.v1 import notification_service_pb2_grpc as pb_grpc

from services.notification.adapters.directory import InMemoryDirectory
from services.platform.identity import JwtAuthenticator, StaticKeySource
from services.notification.adapters.memory_store import InMemoryStore
from services.notification.adapters.providers import StreamProvider
from services.notification.domain.model import ChannelKind
from services.notification.wiring import Assembly, assemble
from services.platform.bus import InProcessBus
from services.platform.clock import SystemClock
from services.platform.testing import client_channel, running_server
from tests.fakes.access_tokens import TokenIssuer
from tests.fakes.fcm_api import FakeFcm
from tests.fakes.twilio_api import FakeTwilio
from tests.unit.notification.conftest import (  # noqa: F401  # fixtures
    FAST,
    SmtpInbox,
    fake_fcm,
    fake_twilio,
    fcm_provider,
    smtp_inbox,
    smtp_provider,
    twilio_provider,
)


@dataclass
class NotificationRig:
    """The running service and its seams."""

    stub: pb_grpc.NotificationServiceStub
    tokens: TokenIssuer
    directory: InMemoryDirectory
    store: InMemoryStore
    bus: InProcessBus
    assembly: Assembly
    twilio: FakeTwilio
    fcm: FakeFcm
    inbox: SmtpInbox

    def auth(self, user_id: str) -> tuple[tuple[str, str], ...]:
        """Call metadata of ``user_id``."""
        return self.tokens.metadata(user_id)


@pytest.fixture
async def ns(fake_twilio: FakeTwilio, fake_fcm: FakeFcm, smtp_inbox: SmtpInbox) -> AsyncIterator[NotificationRig]:  # noqa: F811
    """The service on a free port."""
    tokens = TokenIssuer()
    clock = SystemClock()
    bus = InProcessBus()
    store = InMemoryStore()
    directory = InMemoryDirectory()
    assembly = assemble(
        settings=FAST,
        store=store,
        bus=bus,
        clock=clock,
        directory=directory,
        authenticator=JwtAuthenticator(StaticKeySource(tokens.jwks), issuer=tokens.issuer, audience=tokens.audience, clock=clock),
        providers={
            ChannelKind.SMS: twilio_provider(fake_twilio),
            ChannelKind.EMAIL: smtp_provider(smtp_inbox),
            ChannelKind.PUSH: fcm_provider(fake_fcm),
            ChannelKind.STREAM: StreamProvider(),
        },
    )
    async with running_server([assembly.registration]) as server:
        channel: grpc.aio.Channel = client_channel(server)
        try:
            yield NotificationRig(pb_grpc.NotificationServiceStub(channel), tokens, directory, store, bus, assembly,
                                  fake_twilio, fake_fcm, smtp_inbox)
        finally:
            await channel.close()
    await bus.close()
