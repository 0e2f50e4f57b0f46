"""A notification consumer process for the crash tests: real RabbitMQ and PostgreSQL, providers on loopback fakes.

It SIGKILLs itself at the point named by ``CRASH_AT`` (``before_send``: after the ATTEMPTING record, before the
provider call; ``after_send``: after the provider accepted, before the SENT record; ``before_ack``: after every
delivery of the alert is recorded, before the bus acknowledgement) for the alert ``CRASH_ALERT``, once: a
marker file records that it already died there.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys

from services.notification.adapters.dead_letters import BusDeadLetters
from services.notification.adapters.postgres_store import PostgresStore
from services.notification.adapters.providers import SmtpEmailProvider, TwilioSmsProvider
from services.notification.api.convert import decode_alert_event
from services.notification.app import AlertConsumer, Deliverer, NotificationAppSettings, Scheduler
from services.notification.domain.model import ChannelKind, Delivery
from services.platform.bus import RabbitMqBus
from services.platform.clock import SystemClock


class Crash:
    """DeliveryHooks that kill the process once at the configured point."""

    def __init__(self, point: str, alert_id: str, marker: pathlib.Path) -> None:
        self.point, self.alert_id, self.marker = point, alert_id, marker

    def _maybe(self, point: str, alert_id: str) -> None:
        if point == self.point and alert_id == self.alert_id and not self.marker.exists():
            self.marker.write_text(point)
            os.kill(os.getpid(), signal.SIGKILL)

    def before_send(self, delivery: Delivery) -> None:
        if delivery.channel_kind is ChannelKind.SMS:
            self._maybe("before_send", delivery.alert_id)

    def after_send(self, delivery: Delivery) -> None:
        # The SMS: the message Twilio accepted must be found in its log, not sent again.
        if delivery.channel_kind is ChannelKind.SMS:
            self._maybe("after_send", delivery.alert_id)

    def before_ack(self, alert_id: str) -> None:
        self._maybe("before_ack", alert_id)


async def main() -> None:
    env = os.environ
    from twilio.rest import Client

    client = Client(env["TWILIO_SID"], env["TWILIO_TOKEN"])
    client.api.base_url = env["TWILIO_URL"]
    providers = {
        ChannelKind.SMS: TwilioSmsProvider(client, from_number="+15005550006"),
        ChannelKind.EMAIL: SmtpEmailProvider(hostname="127.0.0.1", port=int(env["SMTP_PORT"]), sender="a@tastyplat.test",
                                             start_tls=False),
    }
    settings = NotificationAppSettings(max_attempts=5, backoff_initial=0.05, backoff_max=0.2, lease_seconds=1.5,
                                       scheduler_seconds=0.2, concurrency=4)
    clock = SystemClock()
    bus = await RabbitMqBus.connect(env["RABBITMQ_URL"], exchange=env["EXCHANGE"])
    store = PostgresStore(env["DSN"], schema=env["SCHEMA"])
    await store.start()
    hooks = Crash(env.get("CRASH_AT", ""), env.get("CRASH_ALERT", ""), pathlib.Path(env["MARKER"]))
    deliverer = Deliverer(store=store, providers=providers, dead_letters=BusDeadLetters(bus), clock=clock,
                          settings=settings, hooks=hooks)
    consumer = AlertConsumer(bus=bus, store=store, deliverer=deliverer, decode=decode_alert_event, clock=clock,
                             settings=settings, hooks=hooks, queue=env["QUEUE"])
    scheduler = Scheduler(store=store, deliverer=deliverer, clock=clock, settings=settings)
    await consumer.start()
    await scheduler.start()
    print("READY", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await consumer.stop()
    await scheduler.stop()
    await store.close()
    await bus.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
