"""Alert deliveries per second per core of the notification process, wired as in distributed mode.

Three processes, so that only the notification service's own CPU is counted:

- this one (the orchestrator): creates a RabbitMQ vhost and a PostgreSQL schema for the run, registers
  ``--users`` users whose preferences send WARNING alerts to ``--channels`` (SMS and e-mail by default, every
  level at once), pre-publishes ``--alerts`` alerts onto the durable ``notification.alerts`` queue in the delta
  monitor's wire format (``deltamonitor.alert.raised``, serialized ``tastyplat.type.v1.Alert`` from
  ``services/deltamonitor/api/convert.py: encode_alert``, message id = alert id), then polls the store until
  every delivery is SENT;
- the fakes: the fake Twilio REST API (``tests/fakes/twilio_api.py``) and a real ``aiosmtpd`` SMTP server;
- the notification service: ``services.notification.wiring.distributed`` with ``NOTIFICATION_*`` settings
  (``PostgresStore``, ``RabbitMqBus``, the real twilio SDK pointed at the fake by ``TWILIO_BASE_URL``, SMTP
  with aiosmtplib), started with ``registration.start()`` (store, dead-letter queue, alert and user-event
  consumers, scheduler) but without the gRPC server, which no alert goes through.

The window runs from the moment the consumer is told to start until the last delivery's ``send_time``. The
notification process's CPU (user + system, every thread: the twilio SDK runs in worker threads) is read from
``/proc/<pid>/stat`` around the window. ``per core-second`` divides by that CPU, so it does not depend on how
much of the two cores PostgreSQL, RabbitMQ and the fakes took. A second, smaller pass counts the PostgreSQL
statements the process sent (an asyncpg query logger on every pool connection; it costs CPU, so that pass is
not timed). ``--record-path`` also times the delta monitor's alert write (``PostgresStore.record_alerts``,
what ``Monitor._record`` calls: one transaction per batch).

    PYTHONPATH=. .venv/bin/python benchmarks/notification/bench_deliveries.py [--alerts 2000] [--users 100]
        [--channels sms email] [--count-alerts 300] [--record-path] [--profile out.pstats] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

ROOT = pathlib.Path(__file__).resolve().parents[2]
DSN = "postgresql://postgres@127.0.0.1:5432/test"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
TICKS = os.sysconf("SC_CLK_TCK")
SENT = 3  # DeliveryStatus.SENT
FAILED = 5  # DeliveryStatus.FAILED
CHANNEL_KINDS = {"sms": 1, "email": 2}  # ChannelKind.SMS, ChannelKind.EMAIL


# ------------------------------------------------------------------------------------------------- helpers


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of every thread of ``pid``."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid``."""
    return sum(cpu_split(pid))


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICKS, sum(values[:8]) / TICKS


def rabbitmqctl(*args: str) -> None:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        raise SystemExit("rabbitmqctl is not installed (Debian's rabbitmq-server provides it)")
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise SystemExit(f"rabbitmqctl {' '.join(args)} failed: {result.stderr}")


def child(role: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", role],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def ask(process: subprocess.Popen[str], line: str | None = None) -> str:
    assert process.stdin is not None and process.stdout is not None
    if line is not None:
        process.stdin.write(line + "\n")
        process.stdin.flush()
    answer = process.stdout.readline()
    if not answer:
        raise SystemExit(f"child {process.args[-1]} ended (exit {process.wait()})")
    return answer.strip()


# ------------------------------------------------------------------------------------------------- fakes


def fakes_main() -> None:
    """The fake Twilio API and a real SMTP server; answers COUNT with what they received, ends on EOF."""
    from aiosmtpd.controller import Controller

    from tests.e2e.embedded_proc import free_port
    from tests.fakes.twilio_api import FakeTwilio

    message_id = re.compile(rb"^Message-ID:\s*(\S+)", re.MULTILINE | re.IGNORECASE)

    class Inbox:
        def __init__(self) -> None:
            self.ids: Counter[bytes] = Counter()

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            found = message_id.search(envelope.content)
            self.ids[found.group(1) if found else b""] += 1
            return "250 Message accepted for delivery"

    async def main() -> None:
        twilio = FakeTwilio()
        await twilio.start()
        inbox = Inbox()
        port = free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        print(json.dumps({"twilio_url": twilio.base_url, "twilio_sid": twilio.account_sid,
                          "twilio_token": twilio.auth_token, "smtp_port": port}), flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "COUNT":
                sms = Counter(m.body.rsplit("[ref ", 1)[-1] for m in twilio.messages)
                print(json.dumps({"sms": len(twilio.messages), "sms_distinct": len(sms),
                                  "email": sum(inbox.ids.values()), "email_distinct": len(inbox.ids),
                                  "twilio_list_requests": twilio.list_requests}), flush=True)
        controller.stop()
        await twilio.stop()

    asyncio.run(main())


# ------------------------------------------------------------------------------------------------- notification


def notification_main() -> None:
    """The notification service as ``python -m services.notification`` wires it, minus the gRPC server.

    READY once wired (bus connected); GO starts it (store pool, queues, consumers, scheduler); STOP prints the
    statement counts (when BENCH_COUNT_STATEMENTS is set) and stops it.
    """
    statements: Counter[str] = Counter()
    queries: Counter[str] = Counter()
    if os.environ.get("BENCH_COUNT_STATEMENTS") == "1":
        create_pool = asyncpg.create_pool

        def classify(record: Any) -> None:
            queries[" ".join(record.query.split())[:90]] += 1
            query = record.query.strip().upper()
            if query.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                statements["transaction"] += 1
            elif query.startswith("SELECT PG_ADVISORY_UNLOCK_ALL"):
                statements["pool reset"] += 1
            else:
                statements["data"] += 1

        async def init(connection: asyncpg.Connection) -> None:
            connection.add_query_logger(classify)

        def counting_pool(*args: Any, **kwargs: Any) -> Any:
            return create_pool(*args, init=init, **kwargs)

        asyncpg.create_pool = counting_pool  # type: ignore[assignment]

        from services.platform import postgres

        open_pool = postgres.open_migrated_pool

        async def counted_from_here(*args: Any, **kwargs: Any) -> Any:
            pool = await open_pool(*args, **kwargs)
            # The migration check is start-up, not deliveries: count from the moment the store is ready.
            statements.clear()
            queries.clear()
            return pool

        postgres.open_migrated_pool = counted_from_here  # type: ignore[assignment]

    from services.notification.config import NotificationSettings
    from services.notification.wiring import distributed
    from services.platform.clock import SystemClock
    from services.platform.logging import configure_logging

    settings = NotificationSettings.from_env(os.environ)
    configure_logging(settings.log_level)

    async def main() -> None:
        registration, bus = await distributed(settings, SystemClock())
        loop = asyncio.get_running_loop()
        print("READY", flush=True)
        assert (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "GO"
        profile_path = os.environ.get("BENCH_PROFILE")
        profiler = cProfile.Profile() if profile_path else None
        if profiler is not None:
            profiler.enable()
        assert registration.start is not None
        await registration.start()
        print("STARTED", flush=True)
        assert (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "STOP"
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        print(json.dumps({"statements": dict(statements), "queries": dict(queries.most_common())}), flush=True)
        assert registration.stop is not None
        await registration.stop()
        await bus.close()

    asyncio.run(main())


# ------------------------------------------------------------------------------------------------- orchestrator


def alert_payloads(count: int, users: list[str]) -> list[tuple[str, bytes]]:
    """Alerts as the delta monitor's outbox relay publishes them: (alert id, encode_alert(alert))."""
    from services.deltamonitor.api.convert import encode_alert
    from services.deltamonitor.domain.model import (
        Alert, AlertKind, AlertState, BreachDirection, DeltaBreach, ExposureGreeks, Metric, Severity, alert_id_for,
    )

    now = datetime.now(UTC)
    out = []
    for i in range(1, count + 1):
        user = users[i % len(users)]
        detail = DeltaBreach(
            metric=Metric.SHARES, delta_before=180.0, delta_after=260.0 + i % 7, band_lower=-200.0, band_upper=200.0,
            direction=BreachDirection.ABOVE_UPPER, underlying_symbol="SPY", underlying_price=512.34,
            implied_volatility=0.18, exposure=ExposureGreeks(260.0, 12.5, -35.2, 80.1, 1.2, -0.4),
            benchmark_symbol="", benchmark_price=0.0, beta=1.0, hedge_symbol="SPY", suggested_hedge_quantity=-60.0,
            tick_time=now,
        )
        alert = Alert(
            alert_id=alert_id_for(i), user_id=user, account_number=f"5WT{i % 1000:05d}", watch_id=f"w-{user}",
            kind=AlertKind.DELTA_BREACH, severity=Severity.WARNING, state=AlertState.OPEN,
            title="SPY delta above band", message=f"Share delta 180 -> {260 + i % 7} left the band [-200, 200]",
            raise_time=now, detail=detail, sequence=i,
        )
        out.append((alert.alert_id, encode_alert(alert)))
    return out


async def prepare(schema: str, url: str, users: list[str], kinds: list[int], alerts: int) -> None:
    """Users, channels and preferences in the store; ``alerts`` alerts on the durable queue."""
    from services.notification.adapters.postgres_store import PostgresStore
    from services.notification.domain.model import Channel, ChannelKind, ChannelState, Preferences, Severity
    from services.notification.ports import ALERT_PATTERNS, ALERT_QUEUE
    from services.platform.bus import RabbitMqBus

    store = PostgresStore(DSN, schema=schema)
    await store.start()
    now = datetime.now(UTC)
    for n, user in enumerate(users):
        phone, mail = f"+1415555{n:04d}", f"trader{n}@example.com"
        await store.save_preferences(user, Preferences(
            phone_number=phone, phone_verified=True, email=mail, email_verified=True,
            severity_channels={Severity.WARNING: tuple(ChannelKind(k) for k in kinds)},
            escalation_delay=timedelta(0), fetched_at=now,
        ))
        for kind in kinds:
            address = phone if kind == ChannelKind.SMS else mail
            await store.register_channel(
                Channel(str(uuid.uuid4()), user, ChannelKind(kind), address, "", ChannelState.ACTIVE, now), "", 20)
    await store.close()
    bus = await RabbitMqBus.connect(url)
    # The queue is declared first (topology before traffic, as at platform start), with the consumer's arguments.
    declared = await bus.subscribe(list(ALERT_PATTERNS), queue=ALERT_QUEUE)
    await declared.close()
    payloads = alert_payloads(alerts, users)
    for start in range(0, len(payloads), 200):
        await asyncio.gather(*(bus.publish("deltamonitor.alert.raised", body, alert_id)
                               for alert_id, body in payloads[start:start + 200]))
    await bus.close()


async def poll(schema: str, expected: int, deadline: float) -> tuple[int, int]:
    connection = await asyncpg.connect(DSN)
    try:
        while True:
            row = await connection.fetchrow(
                f"SELECT count(*) FILTER (WHERE status = {SENT}) AS sent,"
                f" count(*) FILTER (WHERE status = {FAILED}) AS failed FROM {schema}.deliveries")
            if row["sent"] + row["failed"] >= expected or time.monotonic() > deadline:
                return int(row["sent"]), int(row["failed"])
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def db_one(sql: str) -> Any:
    connection = await asyncpg.connect(DSN)
    try:
        return await connection.fetchrow(sql)
    finally:
        await connection.close()


def run_once(
    alerts: int, users_count: int, channels: list[str], *, count_statements: bool, profile: pathlib.Path | None = None
) -> dict[str, Any]:
    """One full run on a fresh vhost and schema; every resource is removed afterwards."""
    run_id = uuid.uuid4().hex[:10]
    vhost, schema = f"bench_{run_id}", f"bench_notif_{run_id}"
    url = f"{RABBITMQ}{vhost}"
    kinds = [CHANNEL_KINDS[c] for c in channels]
    users = [f"bench-user-{n}" for n in range(users_count)]
    expected = alerts * len(kinds)
    rabbitmqctl("add_vhost", vhost)
    fakes = notification = None
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        fakes = child("fakes")
        endpoints = json.loads(ask(fakes))
        started = time.monotonic()
        asyncio.run(prepare(schema, url, users, kinds, alerts))
        prepare_seconds = time.monotonic() - started
        notification = child("notification", {
            "NOTIFICATION_DATABASE_URL": DSN, "NOTIFICATION_DB_SCHEMA": schema, "NOTIFICATION_RABBITMQ_URL": url,
            "NOTIFICATION_USER_TARGET": "127.0.0.1:9",  # never called: no RPC reaches the service here
            "NOTIFICATION_CHANNELS": ",".join(channels),
            "NOTIFICATION_TWILIO_ACCOUNT_SID": endpoints["twilio_sid"],
            "NOTIFICATION_TWILIO_AUTH_TOKEN": endpoints["twilio_token"],
            "NOTIFICATION_TWILIO_FROM_NUMBER": "+15005550006", "NOTIFICATION_TWILIO_BASE_URL": endpoints["twilio_url"],
            "NOTIFICATION_SMTP_HOST": "127.0.0.1", "NOTIFICATION_SMTP_PORT": str(endpoints["smtp_port"]),
            "NOTIFICATION_SMTP_SENDER": "alerts@tastyplat.test", "NOTIFICATION_SMTP_TLS": "none",
            "NOTIFICATION_LOG_LEVEL": "WARNING",
            "BENCH_COUNT_STATEMENTS": "1" if count_statements else "0",
            **({"BENCH_PROFILE": str(profile.resolve())} if profile else {}),
        })
        assert ask(notification) == "READY"
        split0, fakes_cpu0, machine0 = cpu_split(notification.pid), cpu_seconds(fakes.pid), machine_busy()
        wall0 = datetime.now(UTC)
        mono0 = time.monotonic()
        assert ask(notification, "GO") == "STARTED"
        sent, failed = asyncio.run(poll(schema, expected, mono0 + max(120.0, alerts * 0.2)))
        split1, fakes_cpu1, machine1 = cpu_split(notification.pid), cpu_seconds(fakes.pid), machine_busy()
        polled = time.monotonic() - mono0
        row = asyncio.run(db_one(f"SELECT max(send_time) AS last, avg(attempt_count)::float AS attempts"
                                 f" FROM {schema}.deliveries WHERE status = {SENT}"))
        # Idle cost of the started service (scheduler pass every second, consumer waiting), for reference.
        idle0 = cpu_seconds(notification.pid)
        time.sleep(2.0)
        idle_per_second = (cpu_seconds(notification.pid) - idle0) / 2.0
        logged = json.loads(ask(notification, "STOP"))
        statements = logged["statements"]
        received = json.loads(ask(fakes, "COUNT"))
        notification.wait(30)
        wall = (row["last"] - wall0).total_seconds() if row["last"] is not None else polled
        cpu = sum(split1) - sum(split0)
        system = split1[1] - split0[1]
        busy = machine1[0] - machine0[0]
        total = machine1[1] - machine0[1]
        return {
            "alerts": alerts, "users": users_count, "channels": channels, "deliveries_expected": expected,
            "deliveries_sent": sent, "deliveries_failed": failed, "mean_attempts": row["attempts"],
            "received_by_fakes": received, "prepare_seconds": round(prepare_seconds, 2),
            "wall_seconds": round(wall, 3), "notification_cpu_seconds": round(cpu, 2),
            "notification_system_cpu_share": round(system / cpu, 2) if cpu else None,
            "fakes_cpu_seconds": round(fakes_cpu1 - fakes_cpu0, 2),
            "machine_busy_cores": round(busy / total * (os.cpu_count() or 1), 2) if total else None,
            "notification_cores": round(cpu / wall, 2) if wall else None,
            "deliveries_per_second": round(sent / wall, 1) if wall else None,
            "alerts_per_second": round(sent / len(kinds) / wall, 1) if wall else None,
            "deliveries_per_core_second": round(sent / cpu, 1) if cpu else None,
            "alerts_per_core_second": round(sent / len(kinds) / cpu, 1) if cpu else None,
            "cpu_ms_per_alert": round(cpu * 1000 / (sent / len(kinds)), 2) if sent else None,
            "idle_cpu_per_second": round(idle_per_second, 3),
            "statements": statements,
            "statements_by_query": logged["queries"],
            "statements_per_delivery": {k: round(v / sent, 2) for k, v in statements.items()} if sent else {},
        }
    finally:
        for process in (notification, fakes):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        asyncio.run(drop_schema(schema))
        subprocess.run([shutil.which("rabbitmqctl") or "rabbitmqctl", "delete_vhost", vhost],
                       capture_output=True, timeout=60, check=False)


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


async def record_path(batches: int, batch_size: int) -> dict[str, Any]:
    """The delta monitor's alert write: ``PostgresStore.record_alerts`` (alert rows + outbox, one transaction)."""
    from services.deltamonitor.adapters.postgres_store import PostgresStore as MonitorStore
    from services.deltamonitor.domain.model import Alert

    schema = f"bench_dm_{uuid.uuid4().hex[:10]}"
    store = MonitorStore(DSN, schema=schema)
    await store.start()
    try:
        drafts = [Alert(**{**_fields(a), "alert_id": "", "sequence": 0})
                  for a in _domain_alerts(batch_size)]
        await store.record_alerts(drafts, {})  # warm the pool and the prepared statements
        cpu0, started = time.process_time(), time.perf_counter()
        for _ in range(batches):
            await store.record_alerts(drafts, {})
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    finally:
        await store.close()
        await drop_schema(schema)
    alerts = batches * batch_size
    return {"batch_size": batch_size, "batches": batches, "alerts_per_second": round(alerts / wall, 1),
            "ms_per_batch": round(wall * 1000 / batches, 2), "client_cpu_ms_per_alert": round(cpu * 1000 / alerts, 3)}


def _domain_alerts(count: int) -> list[Any]:
    from services.deltamonitor.api.convert import decode_alert

    return [decode_alert(body) for _, body in alert_payloads(count, ["bench-user-0"])]


def _fields(alert: Any) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in alert.__dataclass_fields__}


def table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", choices=["fakes", "notification"], help=argparse.SUPPRESS)
    parser.add_argument("--alerts", type=int, default=2000, help="alerts in the timed run (default 2000)")
    parser.add_argument("--users", type=int, default=100, help="users the alerts are spread over (default 100)")
    parser.add_argument("--channels", nargs="+", choices=sorted(CHANNEL_KINDS), default=["sms", "email"])
    parser.add_argument("--count-alerts", type=int, default=300,
                        help="alerts in the untimed statement-counting run (0: skip it)")
    parser.add_argument("--record-path", action="store_true", help="also time the delta monitor's alert write")
    parser.add_argument("--profile", type=pathlib.Path,
                        help="cProfile the notification process's event loop thread in the statement-counting run"
                             " and write the stats here (pstats format)")
    parser.add_argument("--json", type=pathlib.Path, help="write the results here too")
    args = parser.parse_args()
    if args.role == "fakes":
        return fakes_main()
    if args.role == "notification":
        return notification_main()

    timed = run_once(args.alerts, args.users, args.channels, count_statements=False)
    counted = run_once(args.count_alerts, args.users, args.channels, count_statements=True,
                       profile=args.profile) if args.count_alerts else None
    recorded = None
    if args.record_path:
        recorded = [asyncio.run(record_path(200, size)) for size in (1, 10)]
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg_after": os.getloadavg()},
        "timed": timed, "statement_count_run": counted, "deltamonitor_record_alerts": recorded,
    }
    t = timed
    rows = [
        ("alerts / deliveries", f"{t['alerts']} / {t['deliveries_sent']} sent, {t['deliveries_failed']} failed "
                                f"({'+'.join(t['channels'])}, {t['users']} users)"),
        ("received by fakes", f"sms {t['received_by_fakes']['sms']}, e-mail {t['received_by_fakes']['email']}"),
        ("wall seconds", t["wall_seconds"]),
        ("deliveries/s (wall)", t["deliveries_per_second"]),
        ("alerts/s (wall)", t["alerts_per_second"]),
        ("notification CPU s", f"{t['notification_cpu_seconds']} ({t['notification_cores']} cores, "
                               f"{t['notification_system_cpu_share']:.0%} system)"),
        ("deliveries per core-second", t["deliveries_per_core_second"]),
        ("alerts per core-second", t["alerts_per_core_second"]),
        ("CPU ms per alert", t["cpu_ms_per_alert"]),
        ("fakes CPU s", t["fakes_cpu_seconds"]),
        ("machine busy (cores of 2)", t["machine_busy_cores"]),
        ("idle CPU s per s", t["idle_cpu_per_second"]),
    ]
    if counted:
        per = counted["statements_per_delivery"]
        rows.append(("PG statements per delivery",
                     f"{sum(per.values()):.2f} ({', '.join(f'{k} {v}' for k, v in per.items())}; "
                     f"{counted['alerts']}-alert run)"))
    for r in recorded or []:
        rows.append((f"record_alerts, batch {r['batch_size']}",
                     f"{r['alerts_per_second']} alerts/s, {r['ms_per_batch']} ms per batch"))
    print(table(rows))
    print(json.dumps(result, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
