"""Integration tests of the user service on real PostgreSQL: migrations, sessions, keys, audit log, processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import grpc
import grpc.aio
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tastyplat.type.v1 import channel_pb2
from tastyplat.user.v1 import user_service_pb2 as pb
from tastyplat.user.v1 import user_service_pb2_grpc as pb_grpc

from services.embedded.resources import EmbeddedResources
from services.platform.audit import AuditSigner
from services.platform.bus import InProcessBus, RabbitMqBus
from services.platform.cache import InProcessCache
from services.platform.clock import FakeClock, SystemClock
from services.platform.crypto import SecretDecryptionError, generate_key
from services.platform.testing import client_channel, running_server
from services.user.adapters.postgres import MIGRATIONS, PostgresDatabase, migrate
from services.user.domain.errors import RefreshTokenInvalid, RefreshTokenReused
from services.user.testing import LOCAL_POSTGRES_DSN, drop_schema, postgres_settings, unique_schema
from services.user.wiring import UserComponents, build, embedded

pytestmark = pytest.mark.integration

PASSWORD = "integration passphrase"
RABBITMQ_URL = os.environ.get("TASTYPLAT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture
async def service(schema: str) -> AsyncIterator[UserComponents]:
    components = build(postgres_settings(LOCAL_POSTGRES_DSN, schema), clock=FakeClock())
    await components.start()
    try:
        yield components
    finally:
        await components.stop()


async def raw(schema: str) -> asyncpg.Connection:
    return await asyncpg.connect(LOCAL_POSTGRES_DSN, server_settings={"search_path": schema})


# Migrations ---------------------------------------------------------------------------------------------


async def test_migrations_apply_once_even_when_replicas_start_together(schema: str) -> None:
    connections = [await asyncpg.connect(LOCAL_POSTGRES_DSN) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(c, schema) for c in connections))
    finally:
        for c in connections:
            await c.close()
    assert sorted(applied, key=len) == [[], [], [m.version for m in MIGRATIONS]]
    db = PostgresDatabase(LOCAL_POSTGRES_DSN, schema)
    assert await db.connect() == []
    await db.close()


async def test_unreachable_database_fails_start_up_loudly() -> None:
    settings = postgres_settings("postgresql://postgres@127.0.0.1:1/test", unique_schema())
    components = build(settings, clock=FakeClock())
    with pytest.raises(OSError):
        await components.start()


# Flows on PostgreSQL ------------------------------------------------------------------------------------


async def test_login_refresh_and_reuse_detection_on_postgres(service: UserComponents) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    grant = await service.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")
    rotated = await service.app.refresh(refresh_token=grant.refresh_token)
    with pytest.raises(RefreshTokenReused):
        await service.app.refresh(refresh_token=grant.refresh_token)
    with pytest.raises(RefreshTokenInvalid):
        await service.app.refresh(refresh_token=rotated.refresh_token)


async def test_refresh_tokens_are_stored_only_as_hashes(service: UserComponents, schema: str) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    grant = await service.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")
    conn = await raw(schema)
    try:
        dump = " ".join(str(r) for r in await conn.fetch("SELECT * FROM refresh_tokens"))
        users = " ".join(str(r) for r in await conn.fetch("SELECT * FROM users"))
    finally:
        await conn.close()
    assert grant.refresh_token not in dump and PASSWORD not in users and "$argon2id$" in users


async def test_second_replica_verifies_tokens_and_extends_the_audit_chain(schema: str) -> None:
    settings = postgres_settings(LOCAL_POSTGRES_DSN, schema)
    first, second = build(settings, clock=SystemClock()), build(settings, clock=SystemClock())
    await first.start()
    await second.start()
    try:
        await first.app.create_user(email="alice@example.com", password=PASSWORD)
        grant = await first.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")
        assert (await second.app.authenticate(grant.access_token)).user_id == grant.user_id
        await second.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")
        report = await first.audit.verify()
        assert report.ok and report.entries == 3
    finally:
        await second.stop()
        await first.stop()


async def test_key_rotated_by_one_replica_is_trusted_by_the_other(schema: str) -> None:
    clock = FakeClock()
    settings = postgres_settings(LOCAL_POSTGRES_DSN, schema)
    first, second = build(settings, clock=clock), build(settings, clock=clock)
    await first.start()
    await second.start()
    try:
        await first.app.create_user(email="alice@example.com", password=PASSWORD)
        old = await first.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")
        new_key = await first.app.rotate_signing_key()
        clock.advance(settings.key_prepublish_seconds + 1)
        fresh = await first.app.refresh(refresh_token=old.refresh_token)
        assert jwt.get_unverified_header(fresh.access_token)["kid"] == new_key.kid
        assert (await second.app.authenticate(fresh.access_token)).user_id == fresh.user_id
        assert (await second.app.authenticate(old.access_token)).user_id == old.user_id
        old_kid = jwt.get_unverified_header(old.access_token)["kid"]
        assert {k["kid"] for k in await second.app.jwks()} == {new_key.kid, old_kid}
    finally:
        await second.stop()
        await first.stop()


async def test_private_signing_keys_are_encrypted_at_rest(service: UserComponents, schema: str) -> None:
    conn = await raw(schema)
    try:
        sealed = await conn.fetchval("SELECT private_key FROM signing_keys")
        assert b"PRIVATE KEY" not in sealed
        await conn.execute("UPDATE signing_keys SET private_key = overlay(private_key placing '\\xff'::bytea from 30 for 1)")
    finally:
        await conn.close()
    with pytest.raises(SecretDecryptionError):
        await service.app.keys.load()


# Audit log on PostgreSQL --------------------------------------------------------------------------------


async def _audited(service: UserComponents) -> None:
    for i in range(4):
        await service.app.create_user(email=f"user{i}@example.com", password=PASSWORD)


@pytest.mark.parametrize(
    ("tamper", "broken_seq"),
    [
        ("UPDATE audit_log SET payload = replace(payload, 'user.created', 'user.renamed') WHERE seq = 2", 2),
        ("DELETE FROM audit_log WHERE seq = 3", 3),
        ("DELETE FROM audit_log WHERE seq >= 3", 3),
        ("DELETE FROM audit_head", 5),
    ],
    ids=["edit", "delete", "truncate", "head"],
)
async def test_audit_tampering_is_detected_on_postgres(
    service: UserComponents, schema: str, tamper: str, broken_seq: int
) -> None:
    await _audited(service)
    assert (await service.audit.verify()).ok
    conn = await raw(schema)
    try:
        await conn.execute(tamper)
    finally:
        await conn.close()
    report = await service.audit.verify()
    assert not report.ok and report.broken_seq == broken_seq


async def test_audit_verify_command_reports_first_broken_entry(schema: str) -> None:
    signer = AuditSigner.generate()
    from services.platform.settings import Secret

    components = build(postgres_settings(LOCAL_POSTGRES_DSN, schema, audit_signing_key=Secret(signer.seed_b64())),
                       clock=FakeClock())
    await components.start()
    try:
        await _audited(components)
    finally:
        await components.stop()
    command = [sys.executable, "-m", "services.platform.audit", "verify", "--dsn", LOCAL_POSTGRES_DSN,
               "--schema", schema, "--public-key", signer.public_key_b64()]
    ok = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 4 entries")
    conn = await raw(schema)
    try:
        await conn.execute("UPDATE audit_log SET payload = replace(payload, 'trader', 'admin') WHERE seq = 3")
    finally:
        await conn.close()
    broken = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert broken.returncode == 1 and broken.stdout.startswith("BROKEN at seq 3")


# The process --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USER_")}
    env["PEER_AUTH_MODE"] = "off"  # this process test is about the user service; peer auth is tested apart
    env.update(values)
    return env


async def test_main_without_required_setting_stops_naming_it() -> None:
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services.user"], capture_output=True, text=True, cwd=ROOT,
        env=_environment(USER_STORAGE="memory"), timeout=60,
    )
    assert result.returncode == 2 and "USER_AUDIT_SIGNING_KEY" in result.stderr


async def test_main_serves_on_postgres_and_rabbitmq_and_stops_on_sigterm(schema: str) -> None:
    port = _free_port()
    env = _environment(
        USER_HOST="127.0.0.1", USER_PORT=str(port), USER_DATABASE_URL=LOCAL_POSTGRES_DSN, USER_DATABASE_SCHEMA=schema,
        USER_SECRET_KEYS=f"1:{generate_key()}", USER_AUDIT_SIGNING_KEY=AuditSigner.generate().seed_b64(),
        USER_DRAIN_SECONDS="0", USER_RABBITMQ_URL=RABBITMQ_URL,
    )
    bus = await RabbitMqBus.connect(RABBITMQ_URL)
    codes = await bus.subscribe("user.code.requested")
    process = subprocess.Popen([sys.executable, "-m", "services.user"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(200):
                try:
                    status = await health.Check(health_pb2.HealthCheckRequest(service="tastyplat.user.v1.UserService"),
                                                timeout=1)
                    if status.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("user service never became SERVING")
            stub = pb_grpc.UserServiceStub(channel)
            await stub.CreateUser(pb.CreateUserRequest(email="alice@example.com", password=PASSWORD))
            login = await stub.Login(pb.LoginRequest(email="alice@example.com", password=PASSWORD))
            auth = [("authorization", f"Bearer {login.tokens.access_token}")]
            me = await stub.GetUser(pb.GetUserRequest(user_id="me"), metadata=auth)
            assert me.user.email == "alice@example.com"
            await stub.SendVerificationCode(
                pb.SendVerificationCodeRequest(user_id="me", channel=channel_pb2.CHANNEL_KIND_EMAIL), metadata=auth
            )
            while True:
                delivery = await asyncio.wait_for(anext(codes), 10)
                await delivery.ack()
                message = json.loads(delivery.payload)
                if message["user_id"] == me.user.user_id:
                    break
            verified = await stub.VerifyContact(
                pb.VerifyContactRequest(user_id="me", channel=channel_pb2.CHANNEL_KIND_EMAIL, code=message["code"]),
                metadata=auth,
            )
            assert verified.notification_preferences.email_verified
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        await codes.close()
        await bus.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


async def test_rotate_signing_key_command(schema: str) -> None:
    env = _environment(
        USER_DATABASE_URL=LOCAL_POSTGRES_DSN, USER_DATABASE_SCHEMA=schema, USER_SECRET_KEYS=f"1:{generate_key()}",
        USER_AUDIT_SIGNING_KEY=AuditSigner.generate().seed_b64(), USER_CODE_DELIVERY="outbox",
    )
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services.user", "rotate-signing-key"], capture_output=True, text=True,
        cwd=ROOT, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    conn = await raw(schema)
    try:
        assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 2
    finally:
        await conn.close()


# Embedded mode on PostgreSQL 18 -------------------------------------------------------------------------


async def test_embedded_wiring_on_postgres18_keeps_keys_across_restarts(postgres18_dsn: str) -> None:
    resources = EmbeddedResources(postgres_dsn=postgres18_dsn, bus=InProcessBus(), cache=InProcessCache(),
                                  clock=SystemClock(), grpc_target="127.0.0.1:0")
    try:
        async with running_server([await embedded(resources)]) as server:
            channel = client_channel(server)
            stub = pb_grpc.UserServiceStub(channel)
            await stub.CreateUser(pb.CreateUserRequest(email="alice@example.com", password=PASSWORD))
            login = await stub.Login(pb.LoginRequest(email="alice@example.com", password=PASSWORD))
            await channel.close()
        async with running_server([await embedded(resources)]) as server:
            channel = client_channel(server)
            stub = pb_grpc.UserServiceStub(channel)
            me = await stub.GetUser(pb.GetUserRequest(user_id="me"),
                                    metadata=[("authorization", f"Bearer {login.tokens.access_token}")])
            assert me.user.email == "alice@example.com"
            await channel.close()
        conn = await asyncpg.connect(postgres18_dsn)
        try:
            assert (await conn.fetchval("SHOW server_version")).startswith("18")
            tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'user_service'")}
        finally:
            await conn.close()
        assert {"users", "sessions", "refresh_tokens", "signing_keys", "audit_log", "audit_head"} <= tables
    finally:
        await drop_schema(postgres18_dsn, "user_service")


async def test_service_recovers_from_killed_database_connections(service: UserComponents, schema: str) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    conn = await asyncpg.connect(LOCAL_POSTGRES_DSN)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            f"tastyplat-user:{schema}",
        )
    finally:
        await conn.close()
    assert killed >= 1
    # A call racing the kill may answer UNAVAILABLE (DATABASE_UNAVAILABLE, retryable); the service recovers
    # without a restart: within a few attempts the pool has replaced its connections.
    from services.user.domain.errors import DatabaseUnavailable

    for attempt in range(20):
        try:
            grant = await service.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")
            break
        except DatabaseUnavailable:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the service did not recover from killed database connections")
    assert grant.access_token and attempt < 5


async def test_exhausted_pool_answers_database_unavailable(schema: str) -> None:
    from services.user.adapters.postgres import PostgresUserRepository
    from services.user.domain.errors import DatabaseUnavailable

    db = PostgresDatabase(LOCAL_POSTGRES_DSN, schema, min_size=1, max_size=1, acquire_timeout=0.2)
    await db.connect()
    try:
        async with db.pool.acquire():
            with pytest.raises(DatabaseUnavailable) as caught:
                await PostgresUserRepository(db).get_by_email("alice@example.com")
        assert caught.value.reason == "DATABASE_UNAVAILABLE"
    finally:
        await db.close()
