"""Envoy in front of a real gRPC server: JWT checks, identity headers, rate limits, mTLS and reflection.

The upstream is a real platform server whose UserService publishes this test's JWKS and answers GetUser with
what the gateway forwarded, so each test sees exactly what reaches a service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from embedded_proc import free_port, tool
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.certs import create_ca, ensure_pki, issue
from gateway.config import GatewaySettings, default_descriptor_set, write_config
from gateway.envoy import EnvoyProcess, validate
from services.platform.catalogue import entry
from services.platform.server import ServiceRegistration
from services.platform.testing import running_server
from tastyplat.user.v1 import user_service_pb2 as user_pb2
from tastyplat.user.v1 import user_service_pb2_grpc as user_grpc

ISSUER = "https://auth.tastyplat.test"
AUDIENCE = "tastyplat"
KEY = Ed25519PrivateKey.generate()
KID = "test-key-1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub: str = "user-1", *, roles: tuple[str, ...] = ("trader",), **overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300,
        "jti": str(uuid.uuid4()), "roles": list(roles),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": KID})


class IdentityEchoUserService(user_grpc.UserServiceServicer):
    """GetJwks publishes the test key; GetUser answers with the identity headers the gateway forwarded."""

    async def GetJwks(self, request, context):  # noqa: N802 - generated name
        from cryptography.hazmat.primitives import serialization

        raw = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return user_pb2.GetJwksResponse(
            keys=[user_pb2.Jwk(kty="OKP", crv="Ed25519", x=_b64(raw), kid=KID, use="sig", alg="EdDSA")]
        )

    async def Login(self, request, context):  # noqa: N802 - generated name
        # A public route: no token is checked there, so this shows what identity header (if any) got through.
        return user_pb2.LoginResponse(user_id=dict(context.invocation_metadata()).get("x-jwt-sub", ""))

    async def GetUser(self, request, context):  # noqa: N802 - generated name
        headers = dict(context.invocation_metadata())
        return user_pb2.GetUserResponse(
            user=user_pb2.User(user_id=headers.get("x-jwt-sub", ""), email=headers.get("x-jwt-payload", ""))
        )


async def _gateway(tmp: pathlib.Path, upstream_port: int, **settings: object) -> tuple[EnvoyProcess, GatewaySettings]:
    gateway = GatewaySettings(
        descriptor_set=default_descriptor_set(),
        upstream_port=upstream_port,
        http_port=free_port(),
        https_port=free_port(),
        admin_port=free_port(),
        pki=ensure_pki(tmp / "pki"),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        access_log_path=str(tmp / "access.log"),
        **settings,  # type: ignore[arg-type]
    )
    config = write_config(gateway, tmp / "envoy.json")
    validate(config)
    envoy = EnvoyProcess(config, gateway.admin_port, log_path=tmp / "envoy.log")
    await envoy.start()
    # The JWKS is fetched asynchronously through the gateway itself; wait until a token is accepted.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as client:
        for _ in range(100):
            response = await client.get("/v1/users/me", headers={"authorization": f"Bearer {token()}"})
            if response.status_code == 200:
                break
            await asyncio.sleep(0.1)
    return envoy, gateway


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    user = entry("user")
    registrations = [
        ServiceRegistration(user_grpc.add_UserServiceServicer_to_server, IdentityEchoUserService(), user.full_name),
    ]
    async with running_server(registrations) as server:
        yield server.port


@pytest.fixture
async def gateway(tmp_path: pathlib.Path, upstream: int) -> AsyncIterator[GatewaySettings]:
    envoy, settings = await _gateway(tmp_path, upstream)
    try:
        yield settings
    finally:
        await envoy.stop(drain_seconds=0)


@pytest.fixture
async def rest(gateway: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
        yield client


async def test_valid_token_reaches_the_service_with_its_subject(rest: httpx.AsyncClient) -> None:
    response = await rest.get("/v1/users/me", headers={"authorization": f"Bearer {token('alice')}"})
    assert response.status_code == 200
    assert response.json()["user"]["user_id"] == "alice"


@pytest.mark.parametrize(
    "bad",
    {
        "missing": None,
        "expired": token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "without exp": token(exp=None),
        "tampered": token()[:-4] + ("AAAA" if not token().endswith("AAAA") else "BBBB"),
        "alg none": jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}, None, algorithm="none"),
        "wrong issuer": token(iss="https://evil.example"),
    }.items(),
    ids=lambda item: item[0] if isinstance(item, tuple) else str(item),
)
async def test_bad_tokens_get_401_with_a_json_body(rest: httpx.AsyncClient, bad: tuple[str, str | None]) -> None:
    headers = {} if bad[1] is None else {"authorization": f"Bearer {bad[1]}"}
    response = await rest.get("/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == 401


async def test_token_in_the_query_string_is_not_accepted(rest: httpx.AsyncClient) -> None:
    response = await rest.get("/v1/users/me", params={"access_token": token()})
    assert response.status_code == 401


async def test_wrong_audience_gets_403(rest: httpx.AsyncClient) -> None:
    response = await rest.get("/v1/users/me", headers={"authorization": f"Bearer {token(aud='someone-else')}"})
    assert response.status_code == 403


async def test_public_routes_need_no_token(rest: httpx.AsyncClient) -> None:
    response = await rest.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json()["keys"][0]["kid"] == KID


async def test_forged_identity_headers_from_a_client_are_removed(rest: httpx.AsyncClient) -> None:
    forged = {"x-jwt-sub": "admin", "x-jwt-payload": "forged"}
    response = await rest.get("/v1/users/me", headers={**forged, "authorization": f"Bearer {token('mallory')}"})
    assert response.json()["user"]["user_id"] == "mallory"
    assert response.json()["user"]["email"] != "forged"


async def test_forged_identity_headers_on_a_public_route_do_not_reach_services(rest: httpx.AsyncClient) -> None:
    response = await rest.post("/v1/auth:login", json={"email": "a@b.c", "password": "x"}, headers={"x-jwt-sub": "admin"})
    assert response.status_code == 200
    assert response.json()["user_id"] == ""


async def test_forged_identity_header_without_a_token_is_refused(gateway: GatewaySettings) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.http_port}") as channel:
        stub = user_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=[("x-jwt-sub", "admin")], timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_native_grpc_call_with_a_token_passes_the_gateway(gateway: GatewaySettings) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.http_port}") as channel:
        reply = await user_grpc.UserServiceStub(channel).GetUser(
            user_pb2.GetUserRequest(user_id="me"), metadata=[("authorization", f"Bearer {token('bob')}")], timeout=5
        )
    assert reply.user.user_id == "bob"


async def test_health_over_grpc_needs_no_token(gateway: GatewaySettings) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.http_port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _grpcurl(gateway: GatewaySettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("grpcurl"), "-plaintext", *args, f"127.0.0.1:{gateway.http_port}", "list"],
        capture_output=True, text=True, timeout=30, check=False,
    )


async def test_reflection_through_the_gateway_needs_an_admin_token(gateway: GatewaySettings) -> None:
    trader = await asyncio.to_thread(_grpcurl, gateway, "-H", f"authorization: Bearer {token(roles=('trader',))}")
    admin = await asyncio.to_thread(_grpcurl, gateway, "-H", f"authorization: Bearer {token(roles=('admin',))}")
    assert trader.returncode != 0 and "PermissionDenied" in trader.stderr
    assert admin.returncode == 0, admin.stderr
    assert "tastyplat.user.v1.UserService" in admin.stdout


def _mtls_get(gateway: GatewaySettings, cert: tuple[str, str] | None) -> int:
    assert gateway.pki is not None
    context = ssl.create_default_context(cafile=str(gateway.pki.ca_cert))
    if cert is not None:
        context.load_cert_chain(*cert)
    with httpx.Client(verify=context, timeout=10) as client:
        return client.get(f"https://localhost:{gateway.https_port}/.well-known/jwks.json").status_code


async def test_mtls_accepts_the_platform_client_certificate(gateway: GatewaySettings) -> None:
    assert gateway.pki is not None
    status = await asyncio.to_thread(_mtls_get, gateway, (str(gateway.pki.client_cert), str(gateway.pki.client_key)))
    assert status == 200


async def test_mtls_refuses_a_client_without_a_certificate(gateway: GatewaySettings) -> None:
    with pytest.raises((httpx.HTTPError, ssl.SSLError)):
        await asyncio.to_thread(_mtls_get, gateway, None)


async def test_mtls_refuses_a_certificate_from_another_ca(gateway: GatewaySettings, tmp_path: pathlib.Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    rogue_ca, rogue_key = create_ca("rogue CA")
    cert, key = issue(rogue_ca, rogue_key, "rogue", server=False,
                      sans=[x509.UniformResourceIdentifier("spiffe://tastyplat/client/rogue")])
    (tmp_path / "rogue.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "rogue.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises((httpx.HTTPError, ssl.SSLError)):
        await asyncio.to_thread(_mtls_get, gateway, (str(tmp_path / "rogue.crt"), str(tmp_path / "rogue.key")))


async def test_rate_limit_answers_429_json_over_rest_and_resource_exhausted_over_grpc(
    tmp_path: pathlib.Path, upstream: int
) -> None:
    envoy, gateway = await _gateway(tmp_path, upstream, rate_limit_requests=4, rate_limit_interval_seconds=60)
    try:
        bearer = {"authorization": f"Bearer {token('carol')}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
            statuses = [(await client.get("/v1/users/me", headers=bearer)).status_code for _ in range(6)]
            limited = await client.get("/v1/users/me", headers=bearer)
            other = await client.get("/v1/users/me", headers={"authorization": f"Bearer {token('dave')}"})
        assert 429 in statuses and limited.status_code == 429
        assert limited.json()["code"] == 429
        assert other.status_code == 200  # keyed per subject: another user is not limited by carol's calls
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.http_port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await user_grpc.UserServiceStub(channel).GetUser(
                    user_pb2.GetUserRequest(user_id="me"), metadata=list(bearer.items()), timeout=5
                )
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await envoy.stop(drain_seconds=0)


def test_generated_config_is_valid_with_every_feature(tmp_path: pathlib.Path) -> None:
    settings = GatewaySettings(
        descriptor_set=default_descriptor_set(), pki=ensure_pki(tmp_path / "pki"), jwt_issuer=ISSUER
    )
    validate(write_config(settings, tmp_path / "envoy.json"))
    assert json.loads((tmp_path / "envoy.json").read_text())["static_resources"]["listeners"][1]["name"] == "gateway_mtls"
