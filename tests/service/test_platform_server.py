"""The shared runtime against a real grpc.aio server on a free port: health, reflection, request ids,
error mapping for every handler kind, message size limits and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from services.platform import errors
from services.platform.context import current_request_id
from services.platform.error_mapping import decode_error
from services.platform.server import (
    Adapter,
    BindError,
    PlatformServer,
    ServiceRegistration,
    build_server,
    run_until_signal,
)
from services.platform.testing import client_channel, local_settings, running_server

SERVICE = "tastyplat.testsvc.v1.TestService"
SECRET_TEXT = "db password hunter2 at /srv/secret.py"
log = logging.getLogger("tests.testsvc")

S = wrappers_pb2.StringValue


class DemoError(errors.DomainError):
    """Base of the test service's errors."""


class WidgetNotFound(DemoError, errors.NotFound):
    reason = "WIDGET_NOT_FOUND"


class StrikeInvalid(DemoError, errors.InvalidArgument):
    reason = "STRIKE_INVALID"


class QuotaHit(DemoError, errors.ResourceExhausted):
    reason = "QUOTA_HIT"


def _raise_for(kind: str) -> None:
    if kind == "notfound":
        raise WidgetNotFound("widget w-1 not found", metadata={"widget_id": "w-1"})
    if kind == "invalid":
        raise StrikeInvalid(
            "strike must be positive",
            field_violations=[errors.FieldViolation("legs[0].strike", "must be > 0, got -5")],
        )
    if kind == "unimplemented":
        raise errors.NotImplementedYet(6, "Live data: the Tastytrade integration")
    if kind == "boom":
        raise RuntimeError(SECRET_TEXT)
    if kind == "bare":
        raise errors.DomainError("a domain error with no category")


class DemoServicer:
    """A servicer with one method of every handler kind and shape."""

    def __init__(self) -> None:
        self.slow_entered = asyncio.Event()
        self.slow_seconds = 0.3
        self.seen_request_ids: list[str | None] = []
        self.events: list[str] = []

    async def Echo(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        log.info("echo handled", extra={"payload_size": len(request.value)})
        self.seen_request_ids.append(current_request_id())
        return S(value=current_request_id() or "")

    async def Fail(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        _raise_for(request.value)
        return S(value="no failure")

    async def SelfAbort(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        await context.abort(grpc.StatusCode.OUT_OF_RANGE, "page beyond the end")
        raise AssertionError("unreachable")

    async def Slow(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        self.slow_entered.set()
        await asyncio.sleep(self.slow_seconds)
        self.events.append("slow finished")
        return S(value="finished")

    async def Big(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> S:
        return S(value=request.value[::-1])

    async def Count(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> AsyncIterator[S]:
        n, _, then = request.value.partition(":")
        for i in range(int(n)):
            yield S(value=str(i))
        if then == "quota":
            raise QuotaHit("3 items is the quota", retry_after=1.5)
        if then == "boom":
            raise RuntimeError(SECRET_TEXT)

    async def CountWriter(self, request: S, context: grpc.aio.ServicerContext[S, S]) -> None:
        n, _, then = request.value.partition(":")
        for i in range(int(n)):
            await context.write(S(value=str(i)))
        _raise_for(then)

    async def Join(self, request_iterator: AsyncIterator[S], context: grpc.aio.ServicerContext[S, S]) -> S:
        parts = [r.value async for r in request_iterator]
        _raise_for(parts[-1] if parts else "")
        return S(value="+".join(parts))

    async def Chat(
        self, request_iterator: AsyncIterator[S], context: grpc.aio.ServicerContext[S, S]
    ) -> AsyncIterator[S]:
        async for r in request_iterator:
            _raise_for(r.value)
            yield S(value=r.value.upper())


def add_demo_servicer_to_server(servicer: DemoServicer, server: grpc.aio.Server) -> None:
    """The shape of a generated ``add_XServicer_to_server``, built from the generic handler helpers."""
    ser, des = S.SerializeToString, S.FromString
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(getattr(servicer, name), des, ser)
        for name in ("Echo", "Fail", "SelfAbort", "Slow", "Big")
    }
    handlers["Count"] = grpc.unary_stream_rpc_method_handler(servicer.Count, des, ser)
    handlers["CountWriter"] = grpc.unary_stream_rpc_method_handler(servicer.CountWriter, des, ser)
    handlers["Join"] = grpc.stream_unary_rpc_method_handler(servicer.Join, des, ser)
    handlers["Chat"] = grpc.stream_stream_rpc_method_handler(servicer.Chat, des, ser)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def registration(servicer: DemoServicer | None = None, **hooks: Any) -> ServiceRegistration:
    return ServiceRegistration(add_demo_servicer_to_server, servicer or DemoServicer(), SERVICE, **hooks)


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"


class Client:
    """Typed-enough callables for the test service over one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        ser, des = S.SerializeToString, S.FromString
        self.echo = channel.unary_unary(_method("Echo"), ser, des)
        self.fail = channel.unary_unary(_method("Fail"), ser, des)
        self.self_abort = channel.unary_unary(_method("SelfAbort"), ser, des)
        self.slow = channel.unary_unary(_method("Slow"), ser, des)
        self.big = channel.unary_unary(_method("Big"), ser, des)
        self.count = channel.unary_stream(_method("Count"), ser, des)
        self.count_writer = channel.unary_stream(_method("CountWriter"), ser, des)
        self.join = channel.stream_unary(_method("Join"), ser, des)
        self.chat = channel.stream_stream(_method("Chat"), ser, des)
        self.health = health_pb2_grpc.HealthStub(channel)


@pytest.fixture
def servicer() -> DemoServicer:
    return DemoServicer()


@pytest.fixture
async def server(servicer: DemoServicer) -> AsyncIterator[PlatformServer]:
    async with running_server([registration(servicer)]) as srv:
        yield srv


@pytest.fixture
async def client(server: PlatformServer) -> AsyncIterator[Client]:
    async with client_channel(server) as channel:
        yield Client(channel)


async def _health(client: Client, service: str = "") -> int:
    response = await client.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return response.status


def _metadata_value(metadata: Any, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else v
    return None


async def _access_lines(
    json_logs: Callable[[], list[dict[str, Any]]], request_id: str
) -> list[dict[str, Any]]:
    """The access lines of one call; they are written on the server loop's next turn, so wait for them."""
    for _ in range(100):
        lines = [e for e in json_logs() if e["logger"] == "tastyplat.access" and e["request_id"] == request_id]
        if lines:
            return lines
        await asyncio.sleep(0.02)
    return []


# --- health -------------------------------------------------------------------------------------------


async def test_health_is_not_serving_until_start_hooks_finish_then_serving() -> None:
    release = asyncio.Event()

    async def connect_adapters() -> None:
        await release.wait()

    srv = build_server([registration(start=connect_adapters)], local_settings())
    starting = asyncio.create_task(srv.start())
    try:
        async with client_channel(srv) as channel:
            client = Client(channel)
            await channel.channel_ready()
            while srv.state != "starting":
                await asyncio.sleep(0.01)
            assert await _health(client) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await _health(client, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
            release.set()
            await starting
            assert await _health(client) == health_pb2.HealthCheckResponse.SERVING
            assert await _health(client, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    finally:
        release.set()
        await srv.stop(0)


async def test_health_turns_not_serving_when_shutdown_begins() -> None:
    in_drain = asyncio.Event()
    finish_drain = asyncio.Event()

    async def drain() -> None:
        in_drain.set()
        await finish_drain.wait()

    srv = build_server([registration(drain=drain)], local_settings())
    await srv.start()
    async with client_channel(srv) as channel:
        client = Client(channel)
        assert await _health(client) == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(srv.stop(1))
        await in_drain.wait()
        assert await _health(client) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await _health(client, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
        finish_drain.set()
        await stopping
    assert srv.state == "stopped"


async def test_health_of_an_unknown_service_is_not_found(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.health.Check(health_pb2.HealthCheckRequest(service="tastyplat.nope.v1.Nope"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_set_not_serving_then_serving_is_visible_to_health_checks(server: PlatformServer, client: Client) -> None:
    await server.set_not_serving(SERVICE)
    assert await _health(client, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert await _health(client) == health_pb2.HealthCheckResponse.SERVING
    await server.set_serving(SERVICE)
    assert await _health(client, SERVICE) == health_pb2.HealthCheckResponse.SERVING


async def test_failing_start_hook_stops_the_server_and_the_hooks_already_started() -> None:
    events: list[str] = []

    async def ok_start() -> None:
        events.append("a started")

    async def ok_stop() -> None:
        events.append("a stopped")

    async def bad_start() -> None:
        raise ConnectionRefusedError("database down")

    failing = ServiceRegistration(lambda s, server: None, object(), "tastyplat.other.v1.Other", start=bad_start)
    srv = build_server([registration(start=ok_start, stop=ok_stop), failing], local_settings())
    with pytest.raises(ConnectionRefusedError):
        await srv.start()
    assert events == ["a started", "a stopped"]
    assert srv.state == "stopped"


# --- reflection ---------------------------------------------------------------------------------------


async def test_reflection_lists_registered_services_health_and_reflection(server: PlatformServer) -> None:
    async with client_channel(server) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        responses = [r async for r in call]
    names = {s.name for s in responses[0].list_services_response.service}
    assert names == {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


@pytest.mark.skipif(shutil.which("grpcurl", path=str(Path(sys.executable).parent)) is None, reason="no grpcurl")
async def test_grpcurl_list_sees_the_registered_services(server: PlatformServer) -> None:
    grpcurl = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    assert grpcurl is not None
    proc = await asyncio.create_subprocess_exec(
        grpcurl, "-plaintext", server.address, "list",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert set(out.decode().split()) >= {SERVICE, "grpc.health.v1.Health"}


# --- request id ---------------------------------------------------------------------------------------


async def test_given_request_id_is_echoed_in_initial_and_trailing_metadata(client: Client) -> None:
    call = client.echo(S(value="x"), metadata=(("x-request-id", "req-42.abc"),), timeout=5)
    response = await call
    assert response.value == "req-42.abc"  # the handler saw it in the call context
    assert _metadata_value(await call.initial_metadata(), "x-request-id") == "req-42.abc"
    assert _metadata_value(await call.trailing_metadata(), "x-request-id") == "req-42.abc"


async def test_absent_request_id_is_generated_and_returned(client: Client) -> None:
    call = client.echo(S(value="x"), timeout=5)
    response = await call
    generated = _metadata_value(await call.initial_metadata(), "x-request-id")
    assert generated is not None and uuid.UUID(generated).version == 4
    assert response.value == generated
    assert _metadata_value(await call.trailing_metadata(), "x-request-id") == generated


@pytest.mark.parametrize("forged", ['a"}, {"level": "ERROR', "x" * 129, "-starts-with-dash"])
async def test_unsafe_request_id_is_replaced(client: Client, forged: str) -> None:
    response = await client.echo(S(value="x"), metadata=(("x-request-id", forged),), timeout=5)
    assert uuid.UUID(response.value).version == 4


async def test_concurrent_calls_keep_their_own_request_ids(client: Client) -> None:
    ids = [f"req-{i}" for i in range(20)]
    results = await asyncio.gather(
        *(client.echo(S(value="x"), metadata=(("x-request-id", i),), timeout=5) for i in ids)
    )
    assert [r.value for r in results] == ids


async def test_every_log_line_of_a_call_carries_its_request_id(
    client: Client, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    await client.echo(S(value="abc"), metadata=(("x-request-id", "req-log-1"),), timeout=5)
    (access,) = await _access_lines(json_logs, "req-log-1")
    lines = [line for line in json_logs() if line["request_id"] == "req-log-1"]
    handler_line = next(line for line in lines if line["message"] == "echo handled")
    assert handler_line["payload_size"] == 3 and handler_line["logger"] == "tests.testsvc"
    assert access["method"] == _method("Echo")
    assert access["code"] == "OK"
    assert access["duration_ms"] >= 0


# --- domain errors ------------------------------------------------------------------------------------


async def test_domain_error_arrives_as_mapped_code_with_error_info(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.fail(S(value="notfound"), metadata=(("x-request-id", "req-nf"),), timeout=5)
    err = info.value
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "widget w-1 not found"
    status = rpc_status.from_call(err)
    assert status is not None and status.code == code_pb2.NOT_FOUND
    error_info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(error_info)
    assert error_info.reason == "WIDGET_NOT_FOUND"
    assert error_info.domain == "testsvc.tastyplat"
    assert dict(error_info.metadata) == {"widget_id": "w-1"}
    assert _metadata_value(err.trailing_metadata(), "x-request-id") == "req-nf"


async def test_invalid_argument_carries_bad_request_field_violations(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.fail(S(value="invalid"), timeout=5)
    status = rpc_status.from_call(info.value)
    assert status is not None and status.code == code_pb2.INVALID_ARGUMENT
    bad = next(d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR))
    bad_request = error_details_pb2.BadRequest()
    bad.Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("legs[0].strike", "must be > 0, got -5")
    ]
    assert decode_error(info.value).reason == "STRIKE_INVALID"


async def test_not_implemented_yet_is_unimplemented_naming_the_issue(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.fail(S(value="unimplemented"), timeout=5)
    rich = decode_error(info.value)
    assert rich.code == grpc.StatusCode.UNIMPLEMENTED
    assert rich.message == "not implemented yet: issue #6 (Live data: the Tastytrade integration)"
    assert rich.reason == "NOT_IMPLEMENTED_YET" and rich.metadata == {"issue": "6"}


async def test_unmapped_exception_is_internal_without_internals(
    client: Client, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.fail(S(value="boom"), metadata=(("x-request-id", "req-boom"),), timeout=5)
    err = info.value
    assert err.code() == grpc.StatusCode.INTERNAL
    assert err.details() == "internal error; request id req-boom"
    everything_sent = repr(err.details()) + repr(err.trailing_metadata()) + repr(err.initial_metadata())
    for leak in ("hunter2", "RuntimeError", "Traceback", "secret.py", "_raise_for"):
        assert leak not in everything_sent
    rich = decode_error(err)
    assert (rich.reason, rich.domain, rich.request_id) == ("INTERNAL", "testsvc.tastyplat", "req-boom")
    logged = next(line for line in json_logs() if line["logger"] == "tastyplat.errors")
    assert logged["request_id"] == "req-boom"
    assert "RuntimeError: db password hunter2" in logged["exception"]


async def test_domain_error_without_category_is_internal(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.fail(S(value="bare"), timeout=5)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "no category" not in info.value.details()


async def test_handler_abort_keeps_its_own_status(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.self_abort(S(value=""), timeout=5)
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert info.value.details() == "page beyond the end"


async def test_unknown_method_is_unimplemented(server: PlatformServer) -> None:
    async with client_channel(server) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Nope", S.SerializeToString, S.FromString)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(S(value=""), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- streaming handler kinds --------------------------------------------------------------------------


async def test_server_stream_async_generator_error_after_messages(client: Client) -> None:
    call = client.count(S(value="3:quota"), timeout=5)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for item in call:
            received.append(item.value)
    assert received == ["0", "1", "2"]
    rich = decode_error(info.value)
    assert (rich.code, rich.reason, rich.retry_after) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_HIT", 1.5)
    assert _metadata_value(await call.initial_metadata(), "x-request-id") == rich.request_id


async def test_server_stream_async_generator_success_returns_request_id(client: Client) -> None:
    call = client.count(S(value="2"), metadata=(("x-request-id", "req-s"),), timeout=5)
    assert [item.value async for item in call] == ["0", "1"]
    assert await call.code() == grpc.StatusCode.OK
    assert _metadata_value(await call.trailing_metadata(), "x-request-id") == "req-s"


async def test_server_stream_unmapped_error_is_internal(client: Client) -> None:
    call = client.count(S(value="1:boom"), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in info.value.details()


async def test_server_stream_writer_coroutine_is_wrapped(client: Client) -> None:
    call = client.count_writer(S(value="2:notfound"), timeout=5)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for item in call:
            received.append(item.value)
    assert received == ["0", "1"]
    assert decode_error(info.value).reason == "WIDGET_NOT_FOUND"


async def test_client_stream_success_and_mapped_error(client: Client) -> None:
    assert (await client.join(iter([S(value="a"), S(value="b")]), timeout=5)).value == "a+b"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.join(iter([S(value="a"), S(value="invalid")]), timeout=5)
    assert decode_error(info.value).field_violations == [("legs[0].strike", "must be > 0, got -5")]


async def test_bidi_stream_success_and_mapped_error(client: Client) -> None:
    call = client.chat(iter([S(value="a"), S(value="b")]), metadata=(("x-request-id", "req-bidi"),), timeout=5)
    assert [r.value async for r in call] == ["A", "B"]
    assert _metadata_value(await call.trailing_metadata(), "x-request-id") == "req-bidi"
    failing = client.chat(iter([S(value="a"), S(value="notfound")]), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in failing:
            pass
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


# --- limits and binding -------------------------------------------------------------------------------


async def test_messages_above_grpc_default_4_mib_pass(client: Client) -> None:
    payload = "x" * (10 * 1024 * 1024) + "end"
    response = await client.big(S(value=payload), timeout=30)
    assert len(response.value) == len(payload) and response.value.startswith("dne")


async def test_message_above_configured_limit_is_refused() -> None:
    async with running_server([registration()], max_message_bytes=4 * 1024 * 1024) as srv:
        async with client_channel(srv) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await Client(channel).big(S(value="x" * (5 * 1024 * 1024)), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_binding_a_port_in_use_fails_loudly(server: PlatformServer) -> None:
    with pytest.raises(BindError, match=str(server.port)):
        build_server([registration()], local_settings(port=server.port))


def test_registering_a_service_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        build_server([registration(), registration()], local_settings())


# --- graceful shutdown --------------------------------------------------------------------------------


async def test_graceful_stop_lets_in_flight_call_finish_before_stop_hooks(servicer: DemoServicer) -> None:
    async def stop_hook() -> None:
        servicer.events.append("stop hook")

    srv = build_server([registration(servicer, stop=stop_hook)], local_settings())
    await srv.start()
    async with client_channel(srv) as channel:
        client = Client(channel)
        in_flight = asyncio.ensure_future(client.slow(S(value=""), timeout=10))
        await servicer.slow_entered.wait()
        stopping = asyncio.create_task(srv.stop(5))
        response = await in_flight
        await stopping
    assert response.value == "finished"
    assert servicer.events == ["slow finished", "stop hook"]


async def test_calls_still_running_after_grace_are_cancelled(servicer: DemoServicer) -> None:
    servicer.slow_seconds = 30
    srv = build_server([registration(servicer)], local_settings())
    await srv.start()
    async with client_channel(srv) as channel:
        in_flight = asyncio.ensure_future(Client(channel).slow(S(value=""), timeout=60))
        await servicer.slow_entered.wait()
        await srv.stop(0.2)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await in_flight
    assert info.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


async def test_sigterm_sets_not_serving_and_drains_in_flight_call(servicer: DemoServicer) -> None:
    servicer.slow_seconds = 0.5
    ready = asyncio.Event()
    srv = build_server([registration(servicer)], local_settings(drain_seconds=0.2))
    runner = asyncio.create_task(run_until_signal(srv, on_ready=lambda _: ready.set(), signals=(signal.SIGTERM,)))
    await ready.wait()
    async with client_channel(srv) as channel:
        client = Client(channel)
        in_flight = asyncio.ensure_future(client.slow(S(value=""), timeout=10))
        await servicer.slow_entered.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)  # inside the drain delay: still answering, but NOT_SERVING
        assert await _health(client) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert (await in_flight).value == "finished"
        await asyncio.wait_for(runner, 10)
    assert srv.state == "stopped"


async def test_generated_registered_methods_go_through_the_interceptor(
    client: Client, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    # grpc_health's generated code registers its methods with add_registered_method_handlers, as the
    # tastyplat stubs do: that path must be intercepted too.
    call = client.health.Check(health_pb2.HealthCheckRequest(), metadata=(("x-request-id", "req-hc"),), timeout=5)
    await call
    assert _metadata_value(await call.initial_metadata(), "x-request-id") == "req-hc"
    access = await _access_lines(json_logs, "req-hc")
    assert [(a["method"], a["request_id"], a["level"]) for a in access] == [
        ("/grpc.health.v1.Health/Check", "req-hc", "DEBUG")
    ]


async def test_client_deadline_is_logged_as_deadline_exceeded(
    servicer: DemoServicer, client: Client, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    servicer.slow_seconds = 5
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.slow(S(value=""), metadata=(("x-request-id", "req-late"),), timeout=0.2)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    access = await _access_lines(json_logs, "req-late")
    assert [(line["code"], line["level"]) for line in access] == [("DEADLINE_EXCEEDED", "WARNING")]


async def test_client_cancel_is_logged_as_cancelled(
    servicer: DemoServicer, client: Client, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    servicer.slow_seconds = 5
    call = client.slow(S(value=""), metadata=(("x-request-id", "req-cancel"),), timeout=10)
    await servicer.slow_entered.wait()
    call.cancel()
    access = await _access_lines(json_logs, "req-cancel")
    assert [line["code"] for line in access] == ["CANCELLED"]


async def test_request_id_only_in_trailers_when_initial_metadata_is_off() -> None:
    async with running_server([registration()], request_id_in_initial_metadata=False) as srv:
        async with client_channel(srv) as channel:
            call = Client(channel).echo(S(value="x"), metadata=(("x-request-id", "req-t"),), timeout=5)
            assert (await call).value == "req-t"
            assert _metadata_value(await call.initial_metadata(), "x-request-id") is None
            assert _metadata_value(await call.trailing_metadata(), "x-request-id") == "req-t"


async def test_sigterm_during_a_hanging_start_hook_still_stops() -> None:
    events: list[str] = []
    hook_entered = asyncio.Event()

    async def adapter_start() -> None:
        events.append("adapter started")

    async def adapter_stop() -> None:
        events.append("adapter stopped")

    async def hangs() -> None:
        hook_entered.set()
        await asyncio.Event().wait()  # a backend that never answers

    srv = build_server(
        [registration(start=hangs)],
        local_settings(),
        adapters=[Adapter("db", start=adapter_start, stop=adapter_stop)],
    )
    runner = asyncio.create_task(run_until_signal(srv, signals=(signal.SIGTERM,)))
    await hook_entered.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(runner, 10)
    assert srv.state == "stopped"
    assert events == ["adapter started", "adapter stopped"]
