"""Message headers on both buses (what carries the trace context between processes), and the RPC metrics
interceptor on a real server, without installing process-wide telemetry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.platform import telemetry
from services.platform.bus import InProcessBus, MessageBus, RabbitMqBus
from services.platform.settings import ServerSettings
from services.platform.server import build_server

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[MessageBus]:
    if request.param == "memory":
        memory = InProcessBus()
        yield memory
        await memory.close()
        return
    rabbit = await RabbitMqBus.connect("amqp://guest:guest@127.0.0.1:5672/", exchange=f"test.headers.{uuid.uuid4().hex[:10]}")
    try:
        yield rabbit
    finally:
        await rabbit.delete_exchanges()
        await rabbit.close()


async def test_headers_travel_with_the_message(bus: MessageBus) -> None:
    async with await bus.subscribe("alerts.#") as subscription:
        await bus.publish("alerts.raised", b"{}", "m-1", headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
        await bus.publish("alerts.raised", b"{}", "m-2")
        first = await subscription.__anext__()
        await first.ack()
        second = await subscription.__anext__()
        await second.ack()
    assert first.headers == {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    assert second.headers == {}


@pytest.mark.parametrize("headers", [{"x-death": "1"}, {"": "v"}, {"k": 1}])
async def test_broker_owned_or_malformed_headers_are_refused(bus: MessageBus, headers: dict) -> None:
    with pytest.raises(ValueError, match="header"):
        await bus.publish("alerts.raised", b"{}", "m-3", headers=headers)


async def test_the_metrics_interceptor_counts_calls_by_method_and_code() -> None:
    interceptor = telemetry.MetricsServerInterceptor()
    handled = interceptor.handled
    server = build_server([], ServerSettings.from_env({}, host="127.0.0.1", port=0), interceptors=[interceptor])
    async with server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            labels = ("grpc.health.v1.Health", "Check")
            ok_before = handled.labels(*labels, "OK")._value.get()
            missing_before = handled.labels(*labels, "NOT_FOUND")._value.get()
            await check(health_pb2.HealthCheckRequest(service=""))
            with pytest.raises(grpc.aio.AioRpcError):
                await check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert handled.labels(*labels, "OK")._value.get() == ok_before + 1
    assert handled.labels(*labels, "NOT_FOUND")._value.get() == missing_before + 1


def test_the_registry_api_returns_one_collector_per_name_and_refuses_a_clash() -> None:
    first = telemetry.counter("test_widgets_total", "widgets", ("kind",))
    assert telemetry.counter("test_widgets_total", "widgets", ("kind",)) is first
    with pytest.raises(ValueError, match="another type or labels"):
        telemetry.gauge("test_widgets_total", "widgets", ("kind",))
