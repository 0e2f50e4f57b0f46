"""The broker as the embedded runner wires it: paper demo for every user, links kept in PostgreSQL across restarts,
identity from the user service's JWKS over gRPC."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.broker.wiring import embedded
from services.embedded.resources import EmbeddedResources
from services.platform.bus import InProcessBus
from services.platform.cache import InProcessCache
from services.platform.clock import SystemClock
from services.platform.server import ServiceRegistration
from services.platform.testing import client_channel, running_server
from tastyplat.broker.v1 import broker_service_pb2 as pb
from tastyplat.broker.v1 import broker_service_pb2_grpc as pb_grpc
from tastyplat.user.v1 import user_service_pb2, user_service_pb2_grpc
from tests.service.broker.broker_harness import JWK, bearer

pytestmark = pytest.mark.integration
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


class JwksOnlyUserService(user_service_pb2_grpc.UserServiceServicer):
    """Stands in for the user service: publishes the test signing key."""

    async def GetJwks(self, request: object, context: object) -> user_service_pb2.GetJwksResponse:
        return user_service_pb2.GetJwksResponse(keys=[user_service_pb2.Jwk(**{k: JWK[k] for k in ("kty", "crv", "x", "kid", "use", "alg")})])


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"broker_embedded_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(ADMIN_DSN)
    except (OSError, asyncpg.PostgresError) as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at {ADMIN_DSN} is not reachable: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_embedded_broker_gives_each_user_a_demo_account_that_survives_a_restart(database: str) -> None:
    user_service = ServiceRegistration(
        add_to_server=user_service_pb2_grpc.add_UserServiceServicer_to_server,
        servicer=JwksOnlyUserService(),
        service_name="tastyplat.user.v1.UserService",
    )
    async with running_server([user_service]) as users:
        resources = EmbeddedResources(
            postgres_dsn=database, bus=InProcessBus(), cache=InProcessCache(), clock=SystemClock(), grpc_target=users.address
        )
        seen = []
        for _ in range(2):  # the second start reads the links and the sealing key the first one stored
            async with running_server([await embedded(resources)]) as server:
                channel = client_channel(server)
                stub = pb_grpc.BrokerServiceStub(channel)
                accounts = (await stub.ListAccounts(pb.ListAccountsRequest(), metadata=bearer("dana"))).accounts
                [account] = accounts
                balances = await stub.GetBalances(pb.GetBalancesRequest(account_number=account.account_number), metadata=bearer("dana"))
                seen.append((account.broker_link_id, balances.balances.account_number))
                await channel.close()
    assert seen[0] == seen[1]
    assert seen[0][1].startswith("PAPER")
