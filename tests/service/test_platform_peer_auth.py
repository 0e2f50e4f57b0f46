"""Peer authentication on a real server: signed calls accepted; unsigned, tampered, stale, replayed ones refused."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.platform import errors
from services.platform.clock import FakeClock
from services.platform.error_mapping import decode_error
from services.platform.peer_auth import (
    BODY_HASH_OF_EMPTY,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InMemoryNonceStore,
    NonceStoreUnavailable,
    PeerAuthServerInterceptor,
    PeerAuthSettings,
    PeerKeyring,
    PeerSigner,
    PeerVerifier,
    body_bytes,
    canonical_string,
    peer_auth_from_settings,
    signing_interceptors,
)
from services.platform.peers import create_channel
from services.platform.server import PlatformServer, ServiceRegistration
from services.platform.settings import InvalidSettingError, MissingSettingError
from services.platform.testing import client_channel, running_server

S = wrappers_pb2.StringValue
SERVICE = "tastyplat.peerauthtest.v1.Echo"
ECHO = f"/{SERVICE}/Echo"
OTHER = f"/{SERVICE}/Other"
PUBLIC = f"/{SERVICE}/Public"
DOMAIN = "peerauthtest.tastyplat"

OLD_SECRET = bytes(range(32))
NEW_SECRET = bytes(range(100, 140))
GOOD_TOKEN = "good-user-token"


class Echo:
    async def Echo(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return S(value=f"echo:{request.value}")

    async def Other(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return S(value=f"other:{request.value}")

    async def Public(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return S(value=f"public:{request.value}")

    async def EchoStream(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> AsyncIterator[S]:
        for i in range(2):
            yield S(value=f"{request.value}:{i}")

    async def EchoWrites(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> None:
        await context.write(S(value=f"written:{request.value}"))

    async def Collect(self, requests: AsyncIterator[S], context: grpc.aio.ServicerContext[S, S]) -> S:
        return S(value=",".join([r.value async for r in requests]))

    async def Chat(self, requests: AsyncIterator[S], context: grpc.aio.ServicerContext[S, S]) -> AsyncIterator[S]:
        async for r in requests:
            yield S(value=f"chat:{r.value}")


def add_echo(servicer: Echo, server: grpc.aio.Server) -> None:
    ser, des = S.SerializeToString, S.FromString
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(servicer.Echo, des, ser),
        "Other": grpc.unary_unary_rpc_method_handler(servicer.Other, des, ser),
        "Public": grpc.unary_unary_rpc_method_handler(servicer.Public, des, ser),
        "EchoStream": grpc.unary_stream_rpc_method_handler(servicer.EchoStream, des, ser),
        "EchoWrites": grpc.unary_stream_rpc_method_handler(servicer.EchoWrites, des, ser),
        "Collect": grpc.stream_unary_rpc_method_handler(servicer.Collect, des, ser),
        "Chat": grpc.stream_stream_rpc_method_handler(servicer.Chat, des, ser),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


async def check_bearer(token: str) -> str:
    """Stands in for a service's JWKS check."""
    if token != GOOD_TOKEN:
        raise errors.Unauthenticated("access token failed verification", reason="TOKEN_INVALID")
    return "user-1"


@dataclasses.dataclass
class Env:
    server: PlatformServer
    clock: FakeClock
    nonces: InMemoryNonceStore
    raw: grpc.aio.Channel

    def signer(self, key_id: str = "k-old", secret: bytes | None = None) -> PeerSigner:
        keys = {key_id: secret if secret is not None else {"k-old": OLD_SECRET, "k-new": NEW_SECRET}[key_id]}
        return PeerSigner(PeerKeyring(keys, key_id), clock=self.clock)

    def signed_channel(self, signer: PeerSigner | None = None) -> grpc.aio.Channel:
        return create_channel(self.server.address, interceptors=signing_interceptors(signer or self.signer()))

    async def send(
        self, method: str, request: S, metadata: Sequence[tuple[str, str]] = ()
    ) -> S:
        """Send ``request`` as is with exactly ``metadata`` (no interceptor adds or changes anything)."""
        call = self.raw.unary_unary(method, request_serializer=S.SerializeToString, response_deserializer=S.FromString)
        response: S = await call(request, metadata=tuple(metadata), timeout=5)
        return response


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock(datetime(2025, 3, 4, 15, 0, tzinfo=UTC))
    nonces = InMemoryNonceStore()
    keyring = PeerKeyring({"k-old": OLD_SECRET, "k-new": NEW_SECRET}, "k-new")
    interceptor = PeerAuthServerInterceptor(
        PeerVerifier(keyring, nonces, clock=clock, window_seconds=300),
        bearer_verifier=check_bearer,
        public_methods={PUBLIC},
    )
    registration = ServiceRegistration(add_echo, Echo(), SERVICE)
    async with running_server([registration], interceptors=[interceptor]) as server:
        raw = client_channel(server)
        try:
            yield Env(server, clock, nonces, raw)
        finally:
            await raw.close()


async def refused(call: Any) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return decode_error(info.value)


def swap(metadata: Sequence[tuple[str, str]], key: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k == key else v) for k, v in metadata]


async def test_signed_unary_call_is_accepted(env: Env) -> None:
    channel = env.signed_channel()
    try:
        echo = channel.unary_unary(ECHO, request_serializer=S.SerializeToString, response_deserializer=S.FromString)
        assert (await echo(S(value="hi"))).value == "echo:hi"
    finally:
        await channel.close()


async def test_signed_streaming_calls_of_every_kind_are_accepted(env: Env) -> None:
    channel = env.signed_channel()
    ser, des = S.SerializeToString, S.FromString
    try:
        stream = channel.unary_stream(f"/{SERVICE}/EchoStream", request_serializer=ser, response_deserializer=des)
        assert [r.value async for r in stream(S(value="s"))] == ["s:0", "s:1"]
        writes = channel.unary_stream(f"/{SERVICE}/EchoWrites", request_serializer=ser, response_deserializer=des)
        assert [r.value async for r in writes(S(value="w"))] == ["written:w"]
        collect = channel.stream_unary(f"/{SERVICE}/Collect", request_serializer=ser, response_deserializer=des)
        assert (await collect(iter([S(value="a"), S(value="b")]))).value == "a,b"
        chat = channel.stream_stream(f"/{SERVICE}/Chat", request_serializer=ser, response_deserializer=des)
        assert [r.value async for r in chat(iter([S(value="x")]))] == ["chat:x"]
    finally:
        await channel.close()


async def test_unsigned_call_is_refused_signature_missing(env: Env) -> None:
    error = await refused(env.send(ECHO, S(value="hi")))
    assert (error.code, error.reason, error.domain) == (
        grpc.StatusCode.UNAUTHENTICATED, "PEER_SIGNATURE_MISSING", DOMAIN
    )


async def test_unsigned_streaming_calls_are_refused(env: Env) -> None:
    ser, des = S.SerializeToString, S.FromString
    stream = env.raw.unary_stream(f"/{SERVICE}/EchoStream", request_serializer=ser, response_deserializer=des)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        [r async for r in stream(S(value="s"))]
    assert decode_error(info.value).reason == "PEER_SIGNATURE_MISSING"
    chat = env.raw.stream_stream(f"/{SERVICE}/Chat", request_serializer=ser, response_deserializer=des)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        [r async for r in chat(iter([S(value="x")]))]
    assert decode_error(info.value).reason == "PEER_SIGNATURE_MISSING"


async def test_tampered_body_is_refused(env: Env) -> None:
    metadata = env.signer().sign(ECHO, body_bytes(S(value="pay 1")))
    error = await refused(env.send(ECHO, S(value="pay 1000"), metadata))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "PEER_SIGNATURE_INVALID")


async def test_tampered_method_is_refused(env: Env) -> None:
    request = S(value="hi")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    error = await refused(env.send(OTHER, request, metadata))
    assert error.reason == "PEER_SIGNATURE_INVALID"


async def test_tampered_timestamp_is_refused(env: Env) -> None:
    request = S(value="hi")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    ts = int(dict(metadata)[TIMESTAMP_HEADER])
    error = await refused(env.send(ECHO, request, swap(metadata, TIMESTAMP_HEADER, str(ts + 60))))
    assert error.reason == "PEER_SIGNATURE_INVALID"


async def test_tampered_nonce_is_refused(env: Env) -> None:
    request = S(value="hi")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    error = await refused(env.send(ECHO, request, swap(metadata, NONCE_HEADER, "0" * 32)))
    assert error.reason == "PEER_SIGNATURE_INVALID"


async def test_signature_with_the_wrong_secret_is_refused(env: Env) -> None:
    forger = env.signer("k-old", secret=b"\x07" * 32)
    request = S(value="hi")
    error = await refused(env.send(ECHO, request, forger.sign(ECHO, body_bytes(request))))
    assert error.reason == "PEER_SIGNATURE_INVALID"


async def test_unknown_key_id_is_refused(env: Env) -> None:
    stranger = env.signer("k-other", secret=OLD_SECRET)
    request = S(value="hi")
    error = await refused(env.send(ECHO, request, stranger.sign(ECHO, body_bytes(request))))
    assert (error.reason, error.metadata) == ("PEER_KEY_UNKNOWN", {"key_id": "k-other"})


@pytest.mark.parametrize("skew", [-301, 301])
async def test_timestamp_outside_the_window_is_refused(env: Env, skew: int) -> None:
    request = S(value="hi")
    now = int(env.clock.now().timestamp())
    metadata = env.signer().sign(ECHO, body_bytes(request), timestamp=now + skew)
    error = await refused(env.send(ECHO, request, metadata))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "PEER_TIMESTAMP_STALE")


async def test_request_older_than_the_window_is_refused(env: Env) -> None:
    request = S(value="hi")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    env.clock.advance(301)
    error = await refused(env.send(ECHO, request, metadata))
    assert error.reason == "PEER_TIMESTAMP_STALE"


async def test_timestamp_at_the_edge_of_the_window_is_accepted(env: Env) -> None:
    request = S(value="hi")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    env.clock.advance(300)
    assert (await env.send(ECHO, request, metadata)).value == "echo:hi"


async def test_replayed_request_is_refused(env: Env) -> None:
    request = S(value="transfer")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    assert (await env.send(ECHO, request, metadata)).value == "echo:transfer"
    env.clock.advance(10)
    error = await refused(env.send(ECHO, request, metadata))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "PEER_NONCE_REPLAYED")


async def test_replay_is_refused_even_with_a_valid_bearer_token(env: Env) -> None:
    request = S(value="x")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    await env.send(ECHO, request, metadata)
    error = await refused(env.send(ECHO, request, [*metadata, ("authorization", f"Bearer {GOOD_TOKEN}")]))
    assert error.reason == "PEER_NONCE_REPLAYED"


async def test_refused_signature_does_not_burn_the_nonce(env: Env) -> None:
    request = S(value="hi")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    await refused(env.send(ECHO, S(value="tampered"), metadata))
    assert (await env.send(ECHO, request, metadata)).value == "echo:hi"


async def test_key_rotation_old_and_new_keys_both_verify(env: Env) -> None:
    for key_id in ("k-old", "k-new"):
        channel = env.signed_channel(env.signer(key_id))
        try:
            echo = channel.unary_unary(ECHO, request_serializer=S.SerializeToString, response_deserializer=S.FromString)
            assert (await echo(S(value=key_id))).value == f"echo:{key_id}"
        finally:
            await channel.close()


async def test_bearer_token_without_signature_is_accepted_when_verified(env: Env) -> None:
    response = await env.send(ECHO, S(value="u"), [("authorization", f"Bearer {GOOD_TOKEN}")])
    assert response.value == "echo:u"


async def test_bad_bearer_token_is_refused_by_the_services_check(env: Env) -> None:
    error = await refused(env.send(ECHO, S(value="u"), [("authorization", "Bearer forged")]))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_non_bearer_authorization_counts_as_no_credential(env: Env) -> None:
    error = await refused(env.send(ECHO, S(value="u"), [("authorization", "Basic dXNlcjpwYXNz")]))
    assert error.reason == "PEER_SIGNATURE_MISSING"


async def test_bad_signature_is_refused_whatever_bearer_token_comes_with_it(env: Env) -> None:
    metadata = env.signer().sign(ECHO, body_bytes(S(value="a")))
    error = await refused(env.send(ECHO, S(value="b"), [*metadata, ("authorization", f"Bearer {GOOD_TOKEN}")]))
    assert error.reason == "PEER_SIGNATURE_INVALID"


async def test_service_without_bearer_verifier_refuses_bearer_only_calls() -> None:
    clock = FakeClock()
    keyring = PeerKeyring({"k-old": OLD_SECRET}, "k-old")
    interceptor = PeerAuthServerInterceptor(
        PeerVerifier(keyring, InMemoryNonceStore(), clock=clock), bearer_verifier=None
    )
    async with running_server([ServiceRegistration(add_echo, Echo(), SERVICE)], interceptors=[interceptor]) as server:
        channel = client_channel(server)
        try:
            echo = channel.unary_unary(ECHO, request_serializer=S.SerializeToString, response_deserializer=S.FromString)
            error = await refused(echo(S(value="u"), metadata=(("authorization", f"Bearer {GOOD_TOKEN}"),)))
            assert error.reason == "PEER_SIGNATURE_MISSING"
        finally:
            await channel.close()


async def test_public_method_needs_no_credential(env: Env) -> None:
    assert (await env.send(PUBLIC, S(value="p"))).value == "public:p"


async def test_public_method_still_verifies_a_signature_it_carries(env: Env) -> None:
    metadata = env.signer().sign(PUBLIC, body_bytes(S(value="a")))
    error = await refused(env.send(PUBLIC, S(value="b"), metadata))
    assert error.reason == "PEER_SIGNATURE_INVALID"


async def test_health_and_reflection_need_no_credential(env: Env) -> None:
    health: Any = health_pb2_grpc.HealthStub(env.raw)
    response = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(cast(Any, env.raw))
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    answers = [a async for a in reflection.ServerReflectionInfo(iter([request]), timeout=5)]
    assert SERVICE in {s.name for s in answers[0].list_services_response.service}


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (SIGNATURE_HEADER, "AB" * 32),  # uppercase hex
        (SIGNATURE_HEADER, "ab" * 31),  # wrong length
        (TIMESTAMP_HEADER, "-5"),
        (TIMESTAMP_HEADER, "1.7e9"),
        (NONCE_HEADER, "xyz"),
    ],
)
async def test_malformed_signature_headers_are_refused(env: Env, header: str, value: str) -> None:
    request = S(value="hi")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    error = await refused(env.send(ECHO, request, swap(metadata, header, value)))
    assert (error.reason, error.metadata["header"]) == ("PEER_SIGNATURE_INVALID", header)


async def test_incomplete_signature_headers_are_refused(env: Env) -> None:
    request = S(value="hi")
    metadata = [p for p in env.signer().sign(ECHO, body_bytes(request)) if p[0] != NONCE_HEADER]
    error = await refused(env.send(ECHO, request, metadata))
    assert (error.reason, error.metadata["header"]) == ("PEER_SIGNATURE_INVALID", NONCE_HEADER)


async def test_signature_headers_without_signature_are_refused_missing(env: Env) -> None:
    request = S(value="hi")
    metadata = [p for p in env.signer().sign(ECHO, body_bytes(request)) if p[0] != SIGNATURE_HEADER]
    error = await refused(env.send(ECHO, request, [*metadata, ("authorization", f"Bearer {GOOD_TOKEN}")]))
    assert error.reason == "PEER_SIGNATURE_MISSING"


async def test_duplicated_signature_header_is_refused(env: Env) -> None:
    request = S(value="hi")
    metadata = env.signer().sign(ECHO, body_bytes(request))
    error = await refused(env.send(ECHO, request, [*metadata, (NONCE_HEADER, "1" * 32)]))
    assert (error.reason, error.metadata["header"]) == ("PEER_SIGNATURE_INVALID", NONCE_HEADER)


async def test_unreachable_nonce_store_refuses_signed_calls_unavailable() -> None:
    class DownStore:
        async def claim(self, nonce: bytes, *, expires_at: datetime, now: datetime) -> bool:
            raise NonceStoreUnavailable("the peer nonce store failed: ConnectionRefusedError")

        async def purge(self, now: datetime) -> int:
            raise NonceStoreUnavailable("down")

    clock = FakeClock()
    keyring = PeerKeyring({"k-old": OLD_SECRET}, "k-old")
    interceptor = PeerAuthServerInterceptor(PeerVerifier(keyring, DownStore(), clock=clock), bearer_verifier=None)
    async with running_server([ServiceRegistration(add_echo, Echo(), SERVICE)], interceptors=[interceptor]) as server:
        channel = create_channel(server.address, interceptors=signing_interceptors(PeerSigner(keyring, clock=clock)))
        try:
            echo = channel.unary_unary(ECHO, request_serializer=S.SerializeToString, response_deserializer=S.FromString)
            error = await refused(echo(S(value="x")))
            assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "PEER_NONCE_STORE_UNAVAILABLE")
        finally:
            await channel.close()


def test_signature_is_hmac_sha256_over_the_documented_canonical_string() -> None:
    import hashlib
    import hmac

    clock = FakeClock(datetime(2025, 1, 1, tzinfo=UTC))
    signer = PeerSigner(PeerKeyring({"k1": OLD_SECRET}, "k1"), clock=clock)
    body = body_bytes(S(value="v"))
    metadata = dict(signer.sign(ECHO, body, nonce="ab" * 16))
    message = "\n".join(
        ["tastyplat-peer-v1", "POST", ECHO, "1735689600", "ab" * 16, "k1", hashlib.sha256(body).hexdigest()]
    ).encode()
    assert message == canonical_string(
        method=ECHO, timestamp="1735689600", nonce="ab" * 16, key_id="k1", body_sha256=hashlib.sha256(body).hexdigest()
    )
    assert metadata[SIGNATURE_HEADER] == hmac.new(OLD_SECRET, message, hashlib.sha256).hexdigest()
    assert BODY_HASH_OF_EMPTY == hashlib.sha256(b"").hexdigest()


def test_nonces_are_128_random_bits_and_distinct() -> None:
    signer = PeerSigner(PeerKeyring({"k1": OLD_SECRET}, "k1"), clock=FakeClock())
    nonces = {dict(signer.sign(ECHO, b""))[NONCE_HEADER] for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(len(n) == 32 and int(n, 16) >= 0 for n in nonces)


def test_body_is_the_deterministic_serialization() -> None:
    from google.protobuf import struct_pb2

    message = struct_pb2.Struct()
    for key in ("z", "a", "m", "b"):
        message[key] = key
    assert body_bytes(message) == message.SerializeToString(deterministic=True)
    assert body_bytes(b"raw") == b"raw"
    with pytest.raises(TypeError):
        body_bytes(object())


def _b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


def _settings_env(**extra: str) -> dict[str, str]:
    environ = {
        "PEER_AUTH_KEYS": f"k-old:{_b64(OLD_SECRET)}, k-new:{_b64(NEW_SECRET)}",
        "PEER_AUTH_KEY_ID": "k-new",
        "PEER_AUTH_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    }
    environ.update(extra)
    return environ


def test_settings_parse_keys_and_redact_them() -> None:
    settings = PeerAuthSettings.from_env(_settings_env(PEER_AUTH_WINDOW_SECONDS="120"))
    keyring = settings.keyring()
    assert (keyring.key_ids, keyring.signing_key_id, settings.window_seconds) == (("k-new", "k-old"), "k-new", 120.0)
    assert _b64(OLD_SECRET) not in repr(settings) and _b64(OLD_SECRET) not in repr(keyring)


@pytest.mark.parametrize("missing", ["PEER_AUTH_KEYS", "PEER_AUTH_KEY_ID", "PEER_AUTH_DATABASE_URL"])
def test_settings_missing_value_names_it(missing: str) -> None:
    environ = _settings_env()
    del environ[missing]
    with pytest.raises(MissingSettingError) as info:
        PeerAuthSettings.from_env(environ)
    assert info.value.variable == missing


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"PEER_AUTH_KEY_ID": "k-gone"}, "PEER_AUTH_KEY_ID"),
        ({"PEER_AUTH_KEYS": f"k1:{_b64(b'short')}"}, "PEER_AUTH_KEYS"),
        ({"PEER_AUTH_KEYS": "k1:not base64!"}, "PEER_AUTH_KEYS"),
        ({"PEER_AUTH_KEYS": f"k-new:{_b64(OLD_SECRET)},k-new:{_b64(NEW_SECRET)}"}, "PEER_AUTH_KEYS"),
        ({"PEER_AUTH_KEYS": _b64(OLD_SECRET)}, "PEER_AUTH_KEYS"),
        ({"PEER_AUTH_KEYS": " , "}, "PEER_AUTH_KEYS"),
        ({"PEER_AUTH_WINDOW_SECONDS": "0"}, "PEER_AUTH_WINDOW_SECONDS"),
        ({"PEER_AUTH_DATABASE_SCHEMA": "x; DROP"}, "PEER_AUTH_DATABASE_SCHEMA"),
    ],
)
def test_settings_invalid_value_names_it(extra: dict[str, str], variable: str) -> None:
    with pytest.raises(InvalidSettingError) as info:
        PeerAuthSettings.from_env(_settings_env(**extra))
    assert info.value.variable == variable
    assert _b64(OLD_SECRET) not in str(info.value)


async def test_peer_auth_from_settings_wires_signer_and_interceptor(env: Env) -> None:
    settings = PeerAuthSettings.from_env(_settings_env())
    auth = peer_auth_from_settings(settings, clock=env.clock, bearer_verifier=None, nonces=InMemoryNonceStore())
    assert auth.signer.key_id == "k-new"
    channel = create_channel(env.server.address, interceptors=auth.client_interceptors())
    try:
        echo = channel.unary_unary(ECHO, request_serializer=S.SerializeToString, response_deserializer=S.FromString)
        assert (await echo(S(value="wired"))).value == "echo:wired"
    finally:
        await channel.close()
    assert auth.adapter.start is not None and auth.adapter.stop is not None
    await auth.adapter.start()
    await auth.adapter.stop()


async def test_adapter_janitor_purges_expired_nonces_on_its_interval() -> None:
    clock = FakeClock(datetime(2025, 3, 4, 15, 0, tzinfo=UTC))
    store = InMemoryNonceStore()
    settings = PeerAuthSettings.from_env(_settings_env(PEER_AUTH_PURGE_INTERVAL_SECONDS="60"))
    auth = peer_auth_from_settings(settings, clock=clock, bearer_verifier=None, nonces=store)
    await store.claim(b"\x01" * 16, expires_at=clock.now() + timedelta(seconds=30), now=clock.now())
    await store.claim(b"\x02" * 16, expires_at=clock.now() + timedelta(seconds=600), now=clock.now())
    assert auth.adapter.start is not None and auth.adapter.stop is not None
    await auth.adapter.start()
    try:
        await asyncio.sleep(0)
        clock.advance(60)
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(store) == 1
    finally:
        await auth.adapter.stop()
    assert clock.sleepers == 0
