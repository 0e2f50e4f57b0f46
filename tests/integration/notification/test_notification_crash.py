"""The notification consumer SIGKILLed at three points with real RabbitMQ and PostgreSQL, then restarted.

Every alert must be delivered; none twice where the provider can be reconciled (Twilio). SMTP cannot be asked,
so a crash between its acceptance and the SENT record resends the e-mail, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import pytest
from tastyplat.type.v1 import alert_pb2, channel_pb2

from services.notification.adapters.postgres_store import PostgresStore
from services.notification.domain.model import Channel, ChannelKind, ChannelState, DeliveryStatus, Preferences, Severity
from services.platform.bus import RabbitMqBus
from tests.fakes.twilio_api import FakeTwilio
from tests.unit.notification.conftest import SmtpInbox, fake_twilio, smtp_inbox  # noqa: F401

pytestmark = pytest.mark.integration

DSN = "postgresql://postgres@127.0.0.1:5432/test"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
USER = "crash-user"
PHONE = "+14155550100"
EMAIL = "trader@example.com"
WORKER = pathlib.Path(__file__).with_name("notification_crash_worker.py")


def _alert(alert_id: str) -> bytes:
    alert = alert_pb2.Alert(alert_id=alert_id, user_id=USER, account_number="5WW1", watch_id="w", kind=1,
                            severity=channel_pb2.SEVERITY_WARNING, state=alert_pb2.ALERT_STATE_OPEN,
                            title=f"alert {alert_id}", message="delta left its band")
    alert.raise_time.FromDatetime(datetime.now(UTC).replace(tzinfo=None))
    return alert.SerializeToString()


async def _start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), env={**os.environ, **env, "PYTHONPATH": str(pathlib.Path.cwd())},
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.strip() == b"READY", line
    return process


@pytest.mark.parametrize("point", ["before_send", "after_send", "before_ack"])
async def test_killed_consumer_delivers_everything_and_twilio_never_twice(
    point: str, fake_twilio: FakeTwilio, smtp_inbox: SmtpInbox, tmp_path: pathlib.Path  # noqa: F811
) -> None:
    run = uuid.uuid4().hex[:10]
    schema, exchange, queue = f"crash_{run}", f"test.crash.{run}", f"test.crash.alerts.{run}"
    store = PostgresStore(DSN, schema=schema)
    await store.start()
    await store.save_preferences(USER, Preferences(
        phone_number=PHONE, phone_verified=True, email=EMAIL, email_verified=True,
        severity_channels={Severity.WARNING: (ChannelKind.SMS, ChannelKind.EMAIL)},
        escalation_delay=__import__("datetime").timedelta(0),
    ))
    now = datetime.now(UTC)
    for kind, address in ((ChannelKind.SMS, PHONE), (ChannelKind.EMAIL, EMAIL)):
        await store.register_channel(Channel(str(uuid.uuid4()), USER, kind, address, "", ChannelState.ACTIVE, now), "", 10)
    bus = await RabbitMqBus.connect(RABBITMQ_URL, exchange=exchange)
    # Declare the durable queue before publishing (topology first, as at platform start).
    declared = await bus.subscribe(["deltamonitor.alert.raised", "deltamonitor.alert.acknowledged"], queue=queue)
    await declared.close()
    alert_ids = [f"alrt_{i:015d}" for i in range(1, 7)]
    env = {
        "TWILIO_SID": fake_twilio.account_sid, "TWILIO_TOKEN": fake_twilio.auth_token, "TWILIO_URL": fake_twilio.base_url,
        "SMTP_PORT": str(smtp_inbox.port), "RABBITMQ_URL": RABBITMQ_URL, "EXCHANGE": exchange, "QUEUE": queue,
        "DSN": DSN, "SCHEMA": schema, "MARKER": str(tmp_path / "crashed"), "CRASH_AT": point, "CRASH_ALERT": alert_ids[2],
    }
    worker = None
    try:
        for alert_id in alert_ids:
            await bus.publish("deltamonitor.alert.raised", _alert(alert_id), alert_id)
        worker = await _start_worker(env)
        assert await asyncio.wait_for(worker.wait(), 60) == -9
        assert (tmp_path / "crashed").read_text() == point
        worker = await _start_worker(env)

        async def all_sent() -> bool:
            rows = [await store.plan_deliveries(_notice(a), [], datetime.now(UTC)) for a in alert_ids]
            return all(len(r) == 2 and all(d.status is DeliveryStatus.SENT for d in r) for r in rows)

        deadline = asyncio.get_running_loop().time() + 60
        while not await all_sent():
            assert asyncio.get_running_loop().time() < deadline, "not every alert was delivered"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        sms = Counter(m.body.split("\n")[0] for m in fake_twilio.messages)
        assert sms == Counter({f"alert {a}": 1 for a in alert_ids})
        (crashed_sms,) = [d for d in await store.plan_deliveries(_notice(alert_ids[2]), [], datetime.now(UTC))
                          if d.channel_kind is ChannelKind.SMS]
        if point == "after_send":
            assert crashed_sms.attempt_count == 2 and fake_twilio.list_requests >= 1  # reconciled, not resent
        mails = Counter(m["Message-ID"] for m in smtp_inbox.messages)
        assert set(mails) == {f"<{a}@tastyplat>" for a in alert_ids}
        # SMTP cannot be asked whether an e-mail got through, so an e-mail in flight when the process died (the
        # crashed alert's, or another handled concurrently) is sent again, under the same Message-ID; such a
        # resend is always a recovered attempt (attempt count above 1), never a second send of a finished one.
        for alert_id in alert_ids:
            if mails[f"<{alert_id}@tastyplat>"] > 1:
                (email,) = [d for d in await store.plan_deliveries(_notice(alert_id), [], datetime.now(UTC))
                            if d.channel_kind is ChannelKind.EMAIL]
                assert email.attempt_count >= 2
        assert sum(mails.values()) - len(alert_ids) <= 4  # at most the consumer's concurrency in flight
    finally:
        if worker is not None and worker.returncode is None:
            worker.terminate()
            await worker.wait()
        await bus.delete_queue(queue)
        await bus.delete_exchanges()
        await bus.close()
        await store.close()
        connection = await asyncpg.connect(DSN)
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.close()


def _notice(alert_id: str):  # type: ignore[no-untyped-def]
    from services.notification.domain.model import AlertNotice

    return AlertNotice(alert_id, USER, Severity.WARNING, "", "", datetime.now(UTC))
