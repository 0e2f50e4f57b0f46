"""Peer channels retry UNAVAILABLE per their service config, and nothing else, against real servers on port 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2

from services.platform import errors
from services.platform.peers import PEER_KEEPALIVE_TIME_MS, PEER_RETRY_MAX_ATTEMPTS, channel_options, create_channel
from services.platform.server import ServiceRegistration, server_options
from services.platform.testing import running_server

S = wrappers_pb2.StringValue
SERVICE = "tastyplat.flaky.v1.Flaky"


class Flaky:
    """Fails the first ``failures`` calls of each method with its code, then answers; counts every attempt."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}

    async def _answer(self, name: str, code: grpc.StatusCode, context: grpc.aio.ServicerContext[S, S]) -> S:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] <= self.failures:
            await context.abort(code, f"attempt {self.calls[name]} fails")
        return S(value=str(self.calls[name]))

    async def Unavailable(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return await self._answer("Unavailable", grpc.StatusCode.UNAVAILABLE, context)

    async def InvalidArgument(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return await self._answer("InvalidArgument", grpc.StatusCode.INVALID_ARGUMENT, context)

    async def ResourceExhausted(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return await self._answer("ResourceExhausted", grpc.StatusCode.RESOURCE_EXHAUSTED, context)

    async def Stream(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> AsyncIterator[S]:
        yield await self._answer("Stream", grpc.StatusCode.UNAVAILABLE, context)


def _handlers(servicer: Flaky) -> grpc.GenericRpcHandler:
    ser, des = S.SerializeToString, S.FromString
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unavailable": grpc.unary_unary_rpc_method_handler(servicer.Unavailable, des, ser),
            "InvalidArgument": grpc.unary_unary_rpc_method_handler(servicer.InvalidArgument, des, ser),
            "ResourceExhausted": grpc.unary_unary_rpc_method_handler(servicer.ResourceExhausted, des, ser),
            "Stream": grpc.unary_stream_rpc_method_handler(servicer.Stream, des, ser),
        },
    )


async def _plain_server(servicer: Flaky) -> tuple[grpc.aio.Server, str]:
    # A bare grpc.aio server: its aborts are trailers-only responses, which gRPC may retry.
    server = grpc.aio.server(options=server_options())
    server.add_generic_rpc_handlers((_handlers(servicer),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _call(address: str, method: str) -> S:
    async with create_channel(address, default_timeout=10.0) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{method}", S.SerializeToString, S.FromString)
        return await call(S())  # type: ignore[no-any-return]


@pytest.fixture
async def flaky_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Flaky, str]]:
    servicer = Flaky(request.param)
    server, address = await _plain_server(servicer)
    try:
        yield servicer, address
    finally:
        await server.stop(0)


@pytest.mark.parametrize("flaky_server", [PEER_RETRY_MAX_ATTEMPTS - 1], indirect=True)
async def test_unavailable_fewer_times_than_max_attempts_is_retried_to_success(flaky_server: tuple[Flaky, str]) -> None:
    servicer, address = flaky_server
    answer = await _call(address, "Unavailable")
    assert answer.value == str(PEER_RETRY_MAX_ATTEMPTS)
    assert servicer.calls == {"Unavailable": PEER_RETRY_MAX_ATTEMPTS}


@pytest.mark.parametrize("flaky_server", [PEER_RETRY_MAX_ATTEMPTS], indirect=True)
async def test_unavailable_on_every_attempt_fails_after_max_attempts(flaky_server: tuple[Flaky, str]) -> None:
    servicer, address = flaky_server
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(address, "Unavailable")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == {"Unavailable": PEER_RETRY_MAX_ATTEMPTS}


@pytest.mark.parametrize("flaky_server", [1], indirect=True)
@pytest.mark.parametrize(
    ("method", "code"),
    [("InvalidArgument", grpc.StatusCode.INVALID_ARGUMENT), ("ResourceExhausted", grpc.StatusCode.RESOURCE_EXHAUSTED)],
)
async def test_other_codes_are_not_retried(flaky_server: tuple[Flaky, str], method: str, code: grpc.StatusCode) -> None:
    servicer, address = flaky_server
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(address, method)
    assert info.value.code() == code
    assert servicer.calls == {method: 1}


@pytest.mark.parametrize("flaky_server", [2], indirect=True)
async def test_a_server_stream_failing_before_its_first_message_is_retried(flaky_server: tuple[Flaky, str]) -> None:
    servicer, address = flaky_server
    async with create_channel(address, default_stream_timeout=10.0) as channel:
        stream = channel.unary_stream(f"/{SERVICE}/Stream", S.SerializeToString, S.FromString)
        answers = [message.value async for message in stream(S())]
    assert answers == ["3"] and servicer.calls == {"Stream": 3}


class Acting:
    """A platform-served handler that acts, then reports its backend unavailable."""

    def __init__(self) -> None:
        self.calls = 0

    async def Unavailable(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        self.calls += 1
        raise errors.Unavailable("the backend went away", reason="DATABASE_UNAVAILABLE")


async def test_an_unavailable_handler_of_a_platform_server_is_not_retried() -> None:
    # The platform server sends the initial metadata (request id) before the handler runs, which commits the
    # call: an UNAVAILABLE from a handler that may have acted already is never repeated by the client.
    servicer = Acting()

    def add(acting: Acting, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Unavailable": grpc.unary_unary_rpc_method_handler(acting.Unavailable, S.FromString, S.SerializeToString),
        }),))

    async with running_server([ServiceRegistration(add, servicer, SERVICE)]) as server:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _call(server.address, "Unavailable")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 1


def test_servers_accept_the_ping_rate_of_peer_channels() -> None:
    client: dict[str, Any] = dict(channel_options())
    server: dict[str, Any] = dict(server_options())
    assert client["grpc.keepalive_time_ms"] == PEER_KEEPALIVE_TIME_MS
    # Pings without calls and without data: the server must permit both, at the client's rate.
    assert client["grpc.keepalive_permit_without_calls"] == 1 and server["grpc.keepalive_permit_without_calls"] == 1
    assert client["grpc.http2.max_pings_without_data"] == 0
    assert server["grpc.http2.min_ping_interval_without_data_ms"] <= client["grpc.keepalive_time_ms"]


def test_the_service_config_retries_unavailable_only() -> None:
    options: dict[str, Any] = dict(channel_options())
    assert options["grpc.enable_retries"] == 1
    (method,) = json.loads(options["grpc.service_config"])["methodConfig"]
    assert method["name"] == [{}] and "timeout" not in method
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert 3 <= method["retryPolicy"]["maxAttempts"] == PEER_RETRY_MAX_ATTEMPTS <= 4
