"""Peer calls: request id propagation and a deadline on every outbound call, against real servers."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2

from services.platform import errors
from services.platform.context import current_request_id
from services.platform.peers import create_channel, create_channel_from_settings, translate_peer_error
from services.platform.server import PlatformServer, ServiceRegistration
from services.platform.testing import client_channel, local_settings, running_server

S = wrappers_pb2.StringValue
B_SERVICE = "tastyplat.peerb.v1.PeerB"
A_SERVICE = "tastyplat.peera.v1.PeerA"


def at_most(limit: float) -> float:
    """Upper bound for a deadline seen by the server: grpc-timeout travels rounded up to coarse units
    (120.0 s arrived as 120.999 s), so allow 2 % or half a second."""
    return limit + max(0.5, 0.02 * limit)


def _report(context: grpc.aio.ServicerContext[Any, Any]) -> S:
    """What the peer saw: the request id in its call context and the deadline it was given."""
    return S(value=json.dumps({"request_id": current_request_id(), "remaining": context.time_remaining()}))


class PeerB:
    async def Who(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return _report(context)

    async def WhoStream(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> AsyncIterator[S]:
        yield _report(context)

    async def WhoClientStream(self, requests: AsyncIterator[S], context: grpc.aio.ServicerContext[S, S]) -> S:
        async for _ in requests:
            pass
        return _report(context)

    async def WhoBidi(self, requests: AsyncIterator[S], context: grpc.aio.ServicerContext[S, S]) -> AsyncIterator[S]:
        async for _ in requests:
            yield _report(context)

    async def Size(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return S(value=str(len(request.value)))


def add_peer_b(servicer: PeerB, server: grpc.aio.Server) -> None:
    ser, des = S.SerializeToString, S.FromString
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                B_SERVICE,
                {
                    "Who": grpc.unary_unary_rpc_method_handler(servicer.Who, des, ser),
                    "WhoStream": grpc.unary_stream_rpc_method_handler(servicer.WhoStream, des, ser),
                    "WhoClientStream": grpc.stream_unary_rpc_method_handler(servicer.WhoClientStream, des, ser),
                    "WhoBidi": grpc.stream_stream_rpc_method_handler(servicer.WhoBidi, des, ser),
                    "Size": grpc.unary_unary_rpc_method_handler(servicer.Size, des, ser),
                },
            ),
        )
    )


class PeerA:
    """Relays to B through a platform peer channel, as a service's gRPC client adapter does."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.who = channel.unary_unary(f"/{B_SERVICE}/Who", S.SerializeToString, S.FromString)

    async def Relay(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return await self.who(S())


def add_peer_a(servicer: PeerA, server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                A_SERVICE,
                {"Relay": grpc.unary_unary_rpc_method_handler(servicer.Relay, S.FromString, S.SerializeToString)},
            ),
        )
    )


@pytest.fixture
async def peer_b() -> AsyncIterator[PlatformServer]:
    async with running_server([ServiceRegistration(add_peer_b, PeerB(), B_SERVICE)]) as srv:
        yield srv


@pytest.fixture
async def peer_a(peer_b: PlatformServer) -> AsyncIterator[PlatformServer]:
    async with create_channel(peer_b.address, default_timeout=30.0) as channel:
        async with running_server([ServiceRegistration(add_peer_a, PeerA(channel), A_SERVICE)]) as srv:
            yield srv


async def _relay(peer_a: PlatformServer, **call: Any) -> dict[str, Any]:
    async with client_channel(peer_a) as channel:
        relay = channel.unary_unary(f"/{A_SERVICE}/Relay", S.SerializeToString, S.FromString)
        return json.loads((await relay(S(), **call)).value)  # type: ignore[no-any-return]


async def test_request_id_propagates_to_the_peer(peer_a: PlatformServer) -> None:
    seen = await _relay(peer_a, metadata=(("x-request-id", "req-chain-1"),), timeout=10)
    assert seen["request_id"] == "req-chain-1"


async def test_inbound_deadline_caps_the_peer_call(peer_a: PlatformServer) -> None:
    seen = await _relay(peer_a, timeout=2.0)
    assert 0 < seen["remaining"] <= at_most(2.0)


async def test_peer_call_without_timeout_gets_the_default_deadline(peer_a: PlatformServer) -> None:
    seen = await _relay(peer_a)  # the inbound call has no deadline: the 30 s default applies
    assert 25 < seen["remaining"] <= at_most(30.0)


async def test_call_outside_a_request_gets_a_new_request_id_and_a_deadline(peer_b: PlatformServer) -> None:
    async with create_channel(peer_b.address, default_timeout=3.0) as channel:
        who = channel.unary_unary(f"/{B_SERVICE}/Who", S.SerializeToString, S.FromString)
        seen = json.loads((await who(S())).value)
    assert uuid.UUID(seen["request_id"]).version == 4
    assert 0 < seen["remaining"] <= at_most(3.0)


async def test_caller_timeout_and_request_id_are_kept(peer_b: PlatformServer) -> None:
    async with create_channel(peer_b.address, default_timeout=3.0) as channel:
        who = channel.unary_unary(f"/{B_SERVICE}/Who", S.SerializeToString, S.FromString)
        seen = json.loads((await who(S(), timeout=1.0, metadata=(("x-request-id", "mine"),))).value)
    assert seen["request_id"] == "mine" and 0 < seen["remaining"] <= at_most(1.0)


async def test_streaming_peer_call_gets_the_stream_default(peer_b: PlatformServer) -> None:
    settings = local_settings(peer_timeout_seconds=1.0, peer_stream_timeout_seconds=120.0)
    async with create_channel_from_settings(peer_b.address, settings) as channel:
        stream = channel.unary_stream(f"/{B_SERVICE}/WhoStream", S.SerializeToString, S.FromString)
        (report,) = [json.loads(r.value) async for r in stream(S())]
    assert 100 < report["remaining"] <= at_most(120.0)


async def test_client_streaming_and_bidi_peer_calls_get_id_and_deadline(peer_b: PlatformServer) -> None:
    async with create_channel(peer_b.address, default_timeout=2.0, default_stream_timeout=50.0) as channel:
        client_stream = channel.stream_unary(f"/{B_SERVICE}/WhoClientStream", S.SerializeToString, S.FromString)
        bidi = channel.stream_stream(f"/{B_SERVICE}/WhoBidi", S.SerializeToString, S.FromString)
        unary_report = json.loads((await client_stream(iter([S()]))).value)
        (bidi_report,) = [json.loads(r.value) async for r in bidi(iter([S()]))]
    assert 0 < unary_report["remaining"] <= at_most(2.0) and 40 < bidi_report["remaining"] <= at_most(50.0)
    assert uuid.UUID(unary_report["request_id"]) and uuid.UUID(bidi_report["request_id"])


async def test_peer_channel_carries_messages_above_4_mib(peer_b: PlatformServer) -> None:
    async with create_channel(peer_b.address) as channel:
        size = channel.unary_unary(f"/{B_SERVICE}/Size", S.SerializeToString, S.FromString)
        assert (await size(S(value="x" * (6 * 1024 * 1024)))).value == str(6 * 1024 * 1024)


async def test_unreachable_peer_translates_to_unavailable() -> None:
    async with running_server([]) as gone:
        address = gone.address
    async with create_channel(address, default_timeout=2.0) as channel:
        who = channel.unary_unary(f"/{B_SERVICE}/Who", S.SerializeToString, S.FromString)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await who(S())
    translated = translate_peer_error(info.value, "peerb")
    assert isinstance(translated, errors.Unavailable)
    assert translated.reason == "PEER_UNAVAILABLE" and translated.metadata == {"peer": "peerb"}


def test_default_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        create_channel("127.0.0.1:1", default_timeout=0)
