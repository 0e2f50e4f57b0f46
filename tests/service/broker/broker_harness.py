"""Harness for broker service tests: a real server on 127.0.0.1 port 0 (memory store, paper + Tastytrade at the fake)."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc.aio
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from services.broker.adapters.identity import JwtIdentityVerifier, StaticJwks
from services.broker.config import BrokerSettings
from services.broker.wiring import BrokerComponents, build, registration
from services.platform.clock import SystemClock
from services.platform.server import PlatformServer
from services.platform.settings import Secret
from services.platform.testing import client_channel, running_server
from tastyplat.broker.v1 import broker_service_pb2_grpc as pb_grpc
from tests.fakes.tastytrade_api import FakeTastytrade

ISSUER, AUDIENCE = "https://user.tastyplat", "tastyplat"
SIGNING_KEY = Ed25519PrivateKey.generate()
JWK = {**OKPAlgorithm.to_jwk(SIGNING_KEY.public_key(), as_dict=True), "kid": "test-key", "alg": "EdDSA", "use": "sig"}


def bearer(user_id: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying an access token for ``user_id``, as the user service would sign it."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "iat": now, "exp": now + 600, "jti": "j", "roles": ["user"], "sid": "s"}
    token = jwt.encode(claims, SIGNING_KEY, algorithm="EdDSA", headers={"kid": "test-key", "typ": "at+jwt"})
    return (("authorization", f"Bearer {token}"),)


@dataclass
class BrokerHarness:
    """The running server, a stub to it, the fake Tastytrade and the built components."""

    server: PlatformServer
    stub: pb_grpc.BrokerServiceStub
    channel: grpc.aio.Channel
    fake: FakeTastytrade
    components: BrokerComponents


@pytest.fixture
async def harness() -> AsyncIterator[BrokerHarness]:
    async with FakeTastytrade() as fake:
        settings = BrokerSettings.from_env(
            {},
            port=0,
            storage="memory",
            secret_keys=Secret("1:" + base64.b64encode(os.urandom(32)).decode()),
            environments=("production", "paper"),
            tastytrade_client_secret=Secret(fake.client_secret),
            tastytrade_client_id=fake.client_id,
            tastytrade_production_url=fake.url,
            tastytrade_initial_backoff_seconds=0.01,
            tastytrade_max_backoff_seconds=0.05,
            tastytrade_max_attempts=3,
            tastytrade_breaker_failures=3,
            tastytrade_rate_limit_pause_seconds=0.0,
        )
        clock = SystemClock()
        verifier = JwtIdentityVerifier(StaticJwks([JWK]), issuer=ISSUER, audience=AUDIENCE, clock=clock)
        components = build(settings, clock=clock, verifier=verifier)
        async with running_server([registration(components)]) as server:
            components.attach_health(server.health)
            channel = client_channel(server)
            try:
                yield BrokerHarness(server, pb_grpc.BrokerServiceStub(channel), channel, fake, components)
            finally:
                await channel.close()
