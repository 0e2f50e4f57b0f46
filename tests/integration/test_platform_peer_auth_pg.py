"""Peer auth on PostgreSQL: the NonceStore contract (memory and PostgreSQL); replays refused across a restart.

Run as a script (``python tests/integration/test_platform_peer_auth_pg.py serve``) this module is the small
server the cross-process tests start: one echo method behind the platform and peer-auth interceptors, the
nonce store in PostgreSQL, configured from ``PEER_AUTH_*``; it prints ``READY <port>`` once serving.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2

from services.platform.clock import SystemClock
from services.platform.error_mapping import decode_error
from services.platform.peer_auth import (
    SIGNATURE_HEADER,
    InMemoryNonceStore,
    NonceStore,
    NonceStoreUnavailable,
    PeerAuthSettings,
    PeerKeyring,
    PeerSigner,
    PostgresNonceStore,
    body_bytes,
    peer_auth_from_settings,
    signing_interceptors,
)
from services.platform.peers import channel_options, create_channel
from services.platform.server import ServiceRegistration, build_server, run_until_signal
from services.platform.settings import ServerSettings

DSN = os.environ.get("TASTYPLAT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
S = wrappers_pb2.StringValue
SERVICE = "tastyplat.peerauthtest.v1.Echo"
ECHO = f"/{SERVICE}/Echo"
KEYS = {"k1": bytes(range(32)), "k2": bytes(range(50, 90))}
T0 = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)

pytestmark = pytest.mark.integration


async def _echo(request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
    return S(value=f"echo:{request.value}")


def add_echo(servicer: object, server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_echo, S.FromString, S.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler}),))


def keys_setting() -> str:
    return ",".join(f"{kid}:{base64.b64encode(secret).decode()}" for kid, secret in KEYS.items())


def unique_schema() -> str:
    return f"peer_auth_it_{secrets.token_hex(6)}"


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = unique_schema()
    try:
        yield name
    finally:
        await drop_schema(name)


# --- One contract suite for every NonceStore ---------------------------------------------------------------


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest, schema: str) -> AsyncIterator[NonceStore]:
    if request.param == "memory":
        yield InMemoryNonceStore()
        return
    postgres = PostgresNonceStore(DSN, schema=schema)
    await postgres.open()
    try:
        yield postgres
    finally:
        await postgres.close()


def nonce() -> bytes:
    return secrets.token_bytes(16)


async def test_first_claim_of_a_nonce_succeeds(store: NonceStore) -> None:
    assert await store.claim(nonce(), expires_at=T0 + timedelta(seconds=600), now=T0)


async def test_second_claim_of_a_live_nonce_fails(store: NonceStore) -> None:
    n = nonce()
    assert await store.claim(n, expires_at=T0 + timedelta(seconds=600), now=T0)
    assert not await store.claim(n, expires_at=T0 + timedelta(seconds=900), now=T0 + timedelta(seconds=300))


async def test_claim_of_an_expired_nonce_succeeds_again(store: NonceStore) -> None:
    n = nonce()
    assert await store.claim(n, expires_at=T0 + timedelta(seconds=600), now=T0)
    later = T0 + timedelta(seconds=600)
    assert await store.claim(n, expires_at=later + timedelta(seconds=600), now=later)
    assert not await store.claim(n, expires_at=later + timedelta(seconds=900), now=later + timedelta(seconds=1))


async def test_purge_forgets_only_expired_nonces(store: NonceStore) -> None:
    early, late = nonce(), nonce()
    await store.claim(early, expires_at=T0 + timedelta(seconds=10), now=T0)
    await store.claim(late, expires_at=T0 + timedelta(seconds=100), now=T0)
    assert await store.purge(T0 + timedelta(seconds=50)) == 1
    assert await store.purge(T0 + timedelta(seconds=50)) == 0
    assert not await store.claim(late, expires_at=T0 + timedelta(seconds=700), now=T0 + timedelta(seconds=50))


async def test_concurrent_claims_of_one_nonce_have_one_winner(store: NonceStore) -> None:
    n = nonce()
    results = await asyncio.gather(
        *(store.claim(n, expires_at=T0 + timedelta(seconds=600), now=T0) for _ in range(8))
    )
    assert sorted(results) == [False] * 7 + [True]


async def test_postgres_nonces_survive_a_restart_of_the_store(schema: str) -> None:
    n = nonce()
    first = PostgresNonceStore(DSN, schema=schema)
    await first.open()
    assert await first.claim(n, expires_at=T0 + timedelta(seconds=600), now=T0)
    await first.close()
    second = PostgresNonceStore(DSN, schema=schema)
    await second.open()
    try:
        assert not await second.claim(n, expires_at=T0 + timedelta(seconds=600), now=T0 + timedelta(seconds=5))
    finally:
        await second.close()


async def test_postgres_store_not_open_is_unavailable(schema: str) -> None:
    with pytest.raises(NonceStoreUnavailable):
        await PostgresNonceStore(DSN, schema=schema).claim(nonce(), expires_at=T0, now=T0)


async def test_postgres_store_unreachable_is_unavailable() -> None:
    with pytest.raises(NonceStoreUnavailable):
        await PostgresNonceStore("postgresql://postgres@127.0.0.1:1/test", schema="peer_auth_unused").open()


async def test_two_processes_opening_one_schema_at_once_both_succeed(schema: str) -> None:
    stores = [PostgresNonceStore(DSN, schema=schema) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        n = nonce()
        results = [await s.claim(n, expires_at=T0 + timedelta(seconds=60), now=T0) for s in stores]
        assert results == [True, False, False]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


# --- Across processes: a real server process with the PostgreSQL nonce store, restarted ------------------


class ServerProcess:
    """The module run as a server in a child process."""

    def __init__(self, schema: str, log_path: Path) -> None:
        self.schema = schema
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.address = ""

    async def start(self) -> None:
        environ = {
            **os.environ,
            "PEER_AUTH_KEYS": keys_setting(),
            "PEER_AUTH_KEY_ID": "k2",
            "PEER_AUTH_DATABASE_URL": DSN,
            "PEER_AUTH_DATABASE_SCHEMA": self.schema,
        }
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "serve", stdout=subprocess.PIPE, stderr=log, env=environ
            )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout=20)
        except TimeoutError:
            line = b""
        if not line.startswith(b"READY "):
            await self.stop()
            raise AssertionError(f"server did not start: {line!r}\n{self.log_path.read_text()}")
        self.address = f"127.0.0.1:{int(line.split()[1])}"

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture
async def server_process(schema: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(schema, tmp_path / "server.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Recorder(grpc.aio.UnaryUnaryClientInterceptor):
    """Keeps the metadata each call left with (after the signing interceptor ran)."""

    def __init__(self) -> None:
        self.sent: list[tuple[tuple[str, str], ...]] = []

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        self.sent.append(tuple((k, str(v)) for k, v in client_call_details.metadata or ()))
        return await continuation(client_call_details, request)


async def send_raw(address: str, request: S, metadata: tuple[tuple[str, str], ...]) -> S:
    """Send exactly ``metadata`` and the request's bytes, through no interceptor."""
    async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
        echo = channel.unary_unary(ECHO, request_serializer=S.SerializeToString, response_deserializer=S.FromString)
        response: S = await echo(request, metadata=metadata, timeout=5)
        return response


async def expect_refusal(
    address: str, request: S, metadata: tuple[tuple[str, str], ...]
) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await send_raw(address, request, metadata)
    error = decode_error(info.value)
    return error.code, error.reason


def client_signer() -> PeerSigner:
    return PeerSigner(PeerKeyring(KEYS, "k1"), clock=SystemClock())


async def test_unsigned_call_is_refused_by_another_process(server_process: ServerProcess) -> None:
    assert await expect_refusal(server_process.address, S(value="x"), ()) == (
        grpc.StatusCode.UNAUTHENTICATED, "PEER_SIGNATURE_MISSING"
    )


async def test_signed_call_replayed_is_refused_also_after_the_server_restarts(server_process: ServerProcess) -> None:
    recorder = Recorder()
    channel = create_channel(server_process.address, interceptors=[*signing_interceptors(client_signer()), recorder])
    request = S(value="transfer 100")
    try:
        echo = channel.unary_unary(ECHO, request_serializer=S.SerializeToString, response_deserializer=S.FromString)
        assert (await echo(request)).value == "echo:transfer 100"
    finally:
        await channel.close()
    (captured,) = recorder.sent
    assert any(k == SIGNATURE_HEADER for k, _ in captured)

    assert await expect_refusal(server_process.address, request, captured) == (
        grpc.StatusCode.UNAUTHENTICATED, "PEER_NONCE_REPLAYED"
    )

    await server_process.stop()
    await server_process.start()
    assert await expect_refusal(server_process.address, request, captured) == (
        grpc.StatusCode.UNAUTHENTICATED, "PEER_NONCE_REPLAYED"
    )
    fresh = client_signer().sign(ECHO, body_bytes(request))
    assert (await send_raw(server_process.address, request, fresh)).value == "echo:transfer 100"


async def test_tampered_signed_call_is_refused_by_another_process(server_process: ServerProcess) -> None:
    metadata = client_signer().sign(ECHO, body_bytes(S(value="pay 1")))
    assert await expect_refusal(server_process.address, S(value="pay 1000"), metadata) == (
        grpc.StatusCode.UNAUTHENTICATED, "PEER_SIGNATURE_INVALID"
    )


async def _serve() -> None:
    settings = PeerAuthSettings.from_env(os.environ)
    auth = peer_auth_from_settings(settings, clock=SystemClock(), bearer_verifier=None)
    server = build_server(
        [ServiceRegistration(add_echo, object(), SERVICE)],
        ServerSettings(host="127.0.0.1", port=0, drain_seconds=0.0, grace_seconds=1.0),
        adapters=[auth.adapter],
        interceptors=[auth.server_interceptor],
    )
    await run_until_signal(server, on_ready=lambda s: print(f"READY {s.port}", flush=True))


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    asyncio.run(_serve())
