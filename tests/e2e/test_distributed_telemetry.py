"""Observability in distributed mode: spans from every process reach an OTLP receiver on loopback and join into
traces across processes (gRPC calls, and bus messages from market data to the delta monitor and from the delta
monitor to notification); every service's /metrics reports RPC, message and alert counters.

One trace follows a tick to its alert and its SMS: market data's publish, the delta monitor's processing of the
tick, the alert's publish (from the outbox, which keeps the trace context recorded with the alert), notification's
processing and its call to Twilio (the real twilio SDK against a fake Twilio API on loopback)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import httpx
import pytest
from distributed_proc import DistributedPlatform, cleanup, start_distributed
from embedded_proc import free_port, sign_up
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.fakes.twilio_api import FakeTwilio

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(200)]

PHONE = "+14155550142"
SERVER, CLIENT = trace_pb2.Span.SPAN_KIND_SERVER, trace_pb2.Span.SPAN_KIND_CLIENT
PRODUCER, CONSUMER = trace_pb2.Span.SPAN_KIND_PRODUCER, trace_pb2.Span.SPAN_KIND_CONSUMER


@dataclasses.dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(Span(attributes.get("service.name", ""), span.name, span.kind,
                                               span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex()))
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, predicate: Callable[[list[Span]], Any], timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self.snapshot())
            if found:
                return found
            time.sleep(0.25)
        services = collections.Counter((s.service, s.name) for s in self.snapshot())
        raise AssertionError(f"no such spans within {timeout} s; received: {services.most_common(40)}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    sink = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield sink, port
    finally:
        server.stop(0).wait()


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    """The fake Twilio API, served from its own event loop on a thread (the tests here are synchronous)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-twilio", daemon=True)
    thread.start()
    fake = FakeTwilio()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, receiver: tuple[Receiver, int], twilio: FakeTwilio
) -> Iterator[DistributedPlatform]:
    _, port = receiver
    running = start_distributed(
        tmp_path_factory.mktemp("telemetry"),
        extra_env={"TASTYPLAT_TRACES": "otlp", "TASTYPLAT_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                   "MARKETDATA_SIMULATOR_TICK_INTERVAL": "0.05", "DELTAMONITOR_HEARTBEAT_SECONDS": "1",
                   "NOTIFICATION_CHANNELS": "sms,stream", "NOTIFICATION_TWILIO_ACCOUNT_SID": twilio.account_sid,
                   "NOTIFICATION_TWILIO_AUTH_TOKEN": twilio.auth_token,
                   "NOTIFICATION_TWILIO_FROM_NUMBER": "+15005550006", "NOTIFICATION_TWILIO_BASE_URL": twilio.base_url},
    )
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()
        cleanup(running.run_id, running.vhost)


@pytest.fixture(scope="module")
def trader(platform: DistributedPlatform) -> dict[str, str]:
    user = sign_up(platform.rest_base, with_account=True)
    return {"token": user["access_token"], "account": user["account"]}


@pytest.fixture(scope="module")
def watch(platform: DistributedPlatform, trader: dict[str, str]) -> dict[str, Any]:
    body = {"watch": {"account_number": trader["account"], "display_name": "whole book", "account": {},
                      "metric": "DELTA_METRIC_DOLLARS", "static_band": {"lower": -1e12, "upper": 1e12}}}
    created = httpx.post(f"{platform.rest_base}/v1/watches", json=body, headers=_auth(trader), timeout=30)
    assert created.status_code == 200, created.text
    return created.json()["watch"]


@pytest.fixture(scope="module")
def sms_channel(platform: DistributedPlatform, trader: dict[str, str], twilio: FakeTwilio) -> dict[str, Any]:
    """The trader's phone, verified with the code notification texted to it, as the channel of every severity."""
    every = [{"severity": s, "channels": ["CHANNEL_KIND_SMS"]}
             for s in ("SEVERITY_INFO", "SEVERITY_WARNING", "SEVERITY_CRITICAL")]
    with httpx.Client(base_url=platform.rest_base, headers=_auth(trader), timeout=30) as client:
        # A new phone number is sent a verification code at once (user service -> bus -> notification -> Twilio).
        changed = client.patch("/v1/users/me/notificationPreferences", json={
            "notification_preferences": {"phone_number": PHONE, "severity_channels": every},
            "update_mask": "phoneNumber,severityChannels"})
        assert changed.status_code == 200, changed.text
        deadline = time.monotonic() + 30
        while not (codes := [m for m in list(twilio.messages) if m.to == PHONE and "code is" in m.body]):
            assert time.monotonic() < deadline, "no verification code reached the fake Twilio"
            time.sleep(0.2)
        code = re.search(r"code is (\d+)", codes[-1].body)
        assert code, codes[-1].body
        verified = client.post("/v1/users/me/contacts:verify", json={"channel": "CHANNEL_KIND_SMS", "code": code[1]})
        assert verified.status_code == 200, verified.text
        registered = client.post("/v1/channels", json={"kind": "CHANNEL_KIND_SMS", "address": PHONE,
                                                       "display_name": "phone"})
        assert registered.status_code == 200, registered.text
    return registered.json()["channel"]


def _auth(trader: dict[str, str]) -> dict[str, str]:
    return {"authorization": f"Bearer {trader['token']}"}


def _by_trace(spans: list[Span]) -> dict[str, list[Span]]:
    traces: dict[str, list[Span]] = collections.defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    return traces


def test_a_rest_call_is_one_trace_across_the_service_and_the_peer_it_calls(
    receiver: tuple[Receiver, int], watch: dict[str, Any]
) -> None:
    sink, _ = receiver

    def create_watch_trace(spans: list[Span]) -> list[Span] | None:
        for trace in _by_trace(spans).values():
            names = {(s.service, s.kind, s.name) for s in trace}
            if ("deltamonitor", SERVER, "/tastyplat.deltamonitor.v1.DeltaMonitorService/CreateWatch") in names and any(
                s.service == "broker" and s.kind == SERVER for s in trace
            ):
                return trace
        return None

    trace = sink.wait_for(create_watch_trace)
    server = next(s for s in trace if s.service == "deltamonitor" and s.kind == SERVER)
    clients = [s for s in trace if s.service == "deltamonitor" and s.kind == CLIENT]
    broker = [s for s in trace if s.service == "broker" and s.kind == SERVER]
    assert clients and all(c.parent_id == server.span_id for c in clients), "peer calls are children of the call"
    assert {b.parent_id for b in broker} <= {c.span_id for c in clients}, "the broker's span continues the client's"


def test_a_tick_is_one_trace_from_marketdata_to_the_deltamonitor(
    receiver: tuple[Receiver, int], watch: dict[str, Any]
) -> None:
    sink, _ = receiver

    def tick_trace(spans: list[Span]) -> tuple[Span, Span] | None:
        producers = {s.span_id: s for s in spans if s.service == "marketdata" and s.kind == PRODUCER
                     and s.name.startswith("marketdata.quotes.")}
        for span in spans:
            if span.service == "deltamonitor" and span.kind == CONSUMER and span.parent_id in producers:
                return producers[span.parent_id], span
        return None

    producer, consumer = sink.wait_for(tick_trace)
    assert producer.trace_id == consumer.trace_id
    assert consumer.name == producer.name.replace(" publish", " process")


def test_a_tick_its_alert_and_its_sms_are_one_trace_across_three_processes(
    platform: DistributedPlatform, receiver: tuple[Receiver, int], trader: dict[str, str], watch: dict[str, Any],
    sms_channel: dict[str, Any], twilio: FakeTwilio,
) -> None:
    sink, _ = receiver
    url = f"{platform.rest_base}/v1/watches/{watch['watch_id']}"
    deadline = time.monotonic() + 30
    while httpx.get(url, headers=_auth(trader), timeout=10).json()["watch"]["state"] != "WATCH_STATE_ARMED":
        assert time.monotonic() < deadline, "the watch never armed (no ticks reached the delta monitor)"
        time.sleep(0.3)
    # Move the band above any delta the book can have: the next tick breaches it and raises an alert.
    moved = httpx.patch(url, headers=_auth(trader), timeout=10, json={
        "watch": {"static_band": {"lower": 1e12, "upper": 2e12}}, "update_mask": "static_band"})
    assert moved.status_code == 200, moved.text

    def sms_chain(spans: list[Span]) -> list[Span] | None:
        # From the SMS delivery span up its parents to market data's publish of the tick, root first; None while
        # a link is missing (each process exports in its own batches).
        by_id = {s.span_id: s for s in spans}
        for sms in spans:
            if (sms.service, sms.kind, sms.name) != ("notification", CLIENT, "notification.deliver sms"):
                continue
            chain = [sms]
            while chain[-1].parent_id in by_id and not (chain[-1].service == "marketdata" and chain[-1].kind == PRODUCER):
                chain.append(by_id[chain[-1].parent_id])
            if chain[-1].service == "marketdata" and chain[-1].kind == PRODUCER:
                return chain[::-1]
        return None

    chain = sink.wait_for(sms_chain, timeout=60)
    assert {s.trace_id for s in chain} == {chain[0].trace_id}, "one trace"
    hops = [(s.service, s.kind) for s in chain]
    expected = [("marketdata", PRODUCER), ("deltamonitor", CONSUMER), ("deltamonitor", PRODUCER),
                ("notification", CONSUMER), ("notification", CLIENT)]
    assert [hop for hop in hops if hop in expected] == expected, hops
    assert chain[0].name.startswith("marketdata.") and chain[0].name.endswith(" publish")
    assert next(s for s in chain if s.kind == CONSUMER and s.service == "deltamonitor").name.startswith("marketdata.")
    assert next(s for s in chain if s.kind == PRODUCER and s.service == "deltamonitor").name == (
        "deltamonitor.alert.raised publish")
    assert next(s for s in chain if s.kind == CONSUMER and s.service == "notification").name == (
        "deltamonitor.alert.raised process")
    assert any(m.to == PHONE and "code is" not in m.body for m in list(twilio.messages)), "the alert's SMS was sent"

    # The counters: the alert raised in the delta monitor and published, consumed and delivered by SMS in notification.
    deadline = time.monotonic() + 10
    while True:
        deltamonitor, notification = platform.metrics("deltamonitor"), platform.metrics("notification")
        delivered = _sample(notification, "tastyplat_notification_deliveries_total", channel="sms", status="SENT")
        if delivered >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert delivered >= 1
    assert _sample(deltamonitor, "tastyplat_deltamonitor_alerts_raised_total", kind="DELTA_BREACH") >= 1
    assert _sample(deltamonitor, "tastyplat_bus_published_total", topic="deltamonitor.alert.raised") >= 1
    assert _sample(notification, "tastyplat_bus_consumed_total", topic="deltamonitor.alert.raised", outcome="acked") >= 1


def test_metrics_endpoints_count_rpcs_by_method_and_code(
    platform: DistributedPlatform, trader: dict[str, str], watch: dict[str, Any]
) -> None:
    missing = httpx.get(f"{platform.rest_base}/v1/watches/nope", headers=_auth(trader), timeout=10)
    assert missing.status_code == 404
    service = "tastyplat.deltamonitor.v1.DeltaMonitorService"
    # The server records a call once its response has gone out, so the scrape may be a moment early.
    deadline = time.monotonic() + 10
    while True:
        text = platform.metrics("deltamonitor")
        labels = {"grpc_service": service, "grpc_method": "GetWatch", "grpc_code": "NOT_FOUND"}
        if _sample(text, "tastyplat_rpc_server_handled_total", **labels) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert _sample(text, "tastyplat_rpc_server_handled_total", grpc_service=service, grpc_method="CreateWatch",
                   grpc_code="OK") >= 1
    assert _sample(text, "tastyplat_rpc_server_handled_total", grpc_service=service, grpc_method="GetWatch",
                   grpc_code="NOT_FOUND") >= 1
    assert _sample(text, "tastyplat_rpc_server_handling_seconds_count", grpc_service=service,
                   grpc_method="CreateWatch") >= 1
    assert _sample(platform.metrics("marketdata"), "tastyplat_bus_published_total", topic="marketdata.quotes.*") >= 1


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
