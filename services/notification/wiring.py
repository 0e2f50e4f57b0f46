"""Composition root of the notification service: providers, stores and peers for embedded and distributed mode."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tastyplat.notification.v1 import notification_service_pb2 as pb
from tastyplat.notification.v1 import notification_service_pb2_grpc as pb_grpc

from services.embedded.resources import EmbeddedResources
from services.notification.adapters.dead_letters import BusDeadLetters
from services.notification.adapters.directory import GrpcUserDirectory
from services.platform.identity import GrpcJwksSource, JwtAuthenticator
from services.notification.adapters.postgres_store import PostgresStore
from services.notification.adapters.providers import FcmPushProvider, SmtpEmailProvider, StreamProvider, TwilioSmsProvider
from services.notification.api.convert import decode_alert_event
from services.notification.api.servicer import NotificationServicer
from services.notification.app import (
    AlertConsumer,
    Deliverer,
    DeliveryHooks,
    NotificationApp,
    NotificationAppSettings,
    Scheduler,
    UserEventConsumer,
)
from services.notification.config import NotificationSettings
from services.notification.domain.model import ChannelKind
from services.notification.ports import Authenticator, ContactDirectory, Provider, Store
from services.platform.bus import MessageBus
from services.platform.clock import Clock
from services.platform.peers import create_channel
from services.platform.server import ServiceRegistration
from services.platform.settings import Secret

__all__ = ["Assembly", "assemble", "distributed", "embedded", "providers_from_settings"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NotificationService"].full_name


@dataclass
class Assembly:
    """The wired service and the parts tests reach into."""

    registration: ServiceRegistration
    app: NotificationApp
    consumer: AlertConsumer
    scheduler: Scheduler
    deliverer: Deliverer
    user_events: UserEventConsumer


def assemble(
    *,
    settings: NotificationAppSettings,
    store: Store,
    bus: MessageBus,
    clock: Clock,
    directory: ContactDirectory,
    authenticator: Authenticator,
    providers: dict[ChannelKind, Provider],
    hooks: DeliveryHooks | None = None,
    close: list[Any] | None = None,
) -> Assembly:
    """Wire the application, consumer, scheduler and servicer with their lifecycle hooks."""
    dead_letters = BusDeadLetters(bus)
    deliverer = Deliverer(
        store=store, providers=providers, dead_letters=dead_letters, clock=clock, settings=settings, hooks=hooks
    )
    consumer = AlertConsumer(
        bus=bus, store=store, deliverer=deliverer, decode=decode_alert_event, clock=clock, settings=settings, hooks=hooks
    )
    scheduler = Scheduler(store=store, deliverer=deliverer, clock=clock, settings=settings)
    user_events = UserEventConsumer(bus=bus, store=store, providers=providers, clock=clock, settings=settings)
    app = NotificationApp(store=store, directory=directory, deliverer=deliverer, clock=clock, settings=settings)
    closables = close or []

    async def start() -> None:
        await store.start()
        # Queues are declared when the platform starts, not on first use (see the RabbitMQ notes in reference/).
        await dead_letters.declare()
        await consumer.start()
        await user_events.start()
        await scheduler.start()

    async def stop() -> None:
        await consumer.stop()
        await user_events.stop()
        await scheduler.stop()
        await store.close()
        for item in closables:
            with contextlib.suppress(Exception):
                await item.close()

    registration = ServiceRegistration(
        add_to_server=pb_grpc.add_NotificationServiceServicer_to_server,
        servicer=NotificationServicer(app, authenticator),
        service_name=SERVICE_NAME,
        start=start,
        stop=stop,
    )
    return Assembly(registration, app, consumer, scheduler, deliverer, user_events)



def providers_from_settings(settings: NotificationSettings) -> dict[ChannelKind, Provider]:
    """The providers of the enabled channels."""
    providers: dict[ChannelKind, Provider] = {}
    if "stream" in settings.channels:
        providers[ChannelKind.STREAM] = StreamProvider()
    if "sms" in settings.channels:
        from twilio.rest import Client

        assert settings.twilio_auth_token is not None
        client = Client(settings.twilio_account_sid, settings.twilio_auth_token.reveal())
        if settings.twilio_base_url:
            client.api.base_url = settings.twilio_base_url.rstrip("/")
        providers[ChannelKind.SMS] = TwilioSmsProvider(
            client,
            from_number=settings.twilio_from_number or "",
            messaging_service_sid=settings.twilio_messaging_service_sid or "",
        )
    if "email" in settings.channels:
        assert settings.smtp_host is not None and settings.smtp_sender is not None
        providers[ChannelKind.EMAIL] = SmtpEmailProvider(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            username=settings.smtp_username or "",
            password=settings.smtp_password.reveal() if settings.smtp_password else "",
            use_tls=settings.smtp_tls == "tls",
            start_tls=True if settings.smtp_tls == "starttls" else False,
        )
    if "push" in settings.channels:
        import firebase_admin
        from firebase_admin import credentials

        credential = (
            credentials.Certificate(settings.fcm_credentials_file)
            if settings.fcm_credentials_file
            else credentials.ApplicationDefault()
        )
        app = firebase_admin.initialize_app(
            credential, {"projectId": settings.fcm_project_id}, name=f"notification-{uuid.uuid4()}"
        )
        providers[ChannelKind.PUSH] = FcmPushProvider(app, endpoint=settings.fcm_endpoint)
    return providers


def _from_settings(
    settings: NotificationSettings, *, store: Store, bus: MessageBus, clock: Clock, user_target: str, peer_timeout: float
) -> Assembly:
    channel = create_channel(user_target, default_timeout=peer_timeout)
    authenticator = JwtAuthenticator(
        GrpcJwksSource(channel, timeout=peer_timeout), issuer=settings.jwt_issuer, audience=settings.jwt_audience, clock=clock
    )
    return assemble(
        settings=settings.app_settings(),
        store=store,
        bus=bus,
        clock=clock,
        directory=GrpcUserDirectory(channel),
        authenticator=authenticator,
        providers=providers_from_settings(settings),
        close=[channel],
    )


async def embedded(resources: EmbeddedResources, environ: Mapping[str, str] | None = None) -> ServiceRegistration:
    """The notification service inside the embedded platform; ``NOTIFICATION_*`` configures its providers."""
    settings = NotificationSettings.from_env(
        os.environ if environ is None else environ,
        database_url=Secret(resources.postgres_dsn),
        rabbitmq_url=Secret("in-process"),
        user_target=resources.grpc_target,
    )
    store = PostgresStore(resources.postgres_dsn, schema=settings.db_schema)
    return _from_settings(
        settings, store=store, bus=resources.bus, clock=resources.clock, user_target=resources.grpc_target,
        peer_timeout=resources.peer_timeout_seconds,
    ).registration


async def distributed(settings: NotificationSettings, clock: Clock) -> tuple[ServiceRegistration, MessageBus]:
    """The notification service alone: real PostgreSQL and RabbitMQ, the user service by its target."""
    from services.platform.bus import RabbitMqBus

    bus = await RabbitMqBus.connect(settings.rabbitmq_url.reveal())
    store = PostgresStore(settings.database_url.reveal(), schema=settings.db_schema)
    assembly = _from_settings(
        settings, store=store, bus=bus, clock=clock, user_target=settings.user_target,
        peer_timeout=settings.peer_timeout_seconds,
    )
    return assembly.registration, bus
