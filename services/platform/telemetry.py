"""Tracing (OpenTelemetry) and metrics (Prometheus) for a service process, configured from the environment.

Theory of operation. ``install(settings)`` runs once per process before the gRPC server and the peer channels
are made. With tracing on it sets a tracer provider (OTLP/gRPC exporter, or the console in development) and
instruments ``grpc.aio`` with opentelemetry-instrumentation-grpc: every served call gets a SERVER span whose
parent comes from the caller's ``traceparent`` metadata, and every peer call a CLIENT span that sends it on.
The message bus (``services.platform.bus``) carries the same context in message headers: ``publish`` runs in a
PRODUCER span and sends its ``traceparent``; a subscription makes each delivery's CONSUMER span the current
context of the consuming task until the delivery is settled, so what the consumer calls or publishes joins the
trace: one trace follows a tick from market data through the delta monitor to notification. Log records carry
``trace_id`` and ``span_id`` (the JSON log lines show them). With metrics on, a Prometheus endpoint serves
``/metrics``; a server interceptor counts every RPC by service, method and status code and times it, and
``counter`` / ``gauge`` / ``histogram`` give services their own instruments on the same registry.

Environment (the OpenTelemetry names where one exists):

=============================== ================================================================
``OTEL_TRACES_EXPORTER``        ``otlp``, ``console`` or ``none`` (default)
``OTEL_EXPORTER_OTLP_ENDPOINT`` collector address, default ``http://127.0.0.1:4317`` (OTLP/gRPC)
``OTEL_SERVICE_NAME``           ``service.name`` of the spans
``OTEL_TRACES_SAMPLER_ARG``     share of new traces sampled (0..1, default 1); child spans follow their parent
``TASTYPLAT_METRICS_PORT``      serve ``/metrics`` on this port (unset: no endpoint)
``TASTYPLAT_METRICS_HOST``      its address (default ``0.0.0.0``)
=============================== ================================================================

``python -m services.platform.telemetry services.<svc> [args]`` installs telemetry from the environment and
then runs ``python -m services.<svc>``: the entry point of the distributed launcher and the Kubernetes pods.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import runpy
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar

import grpc
import grpc.aio
import prometheus_client
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from services.platform.settings import InvalidSettingError, Settings, env, exit_on_settings_error

__all__ = [
    "MetricsServerInterceptor",
    "TelemetrySettings",
    "client_span",
    "consume_span",
    "continue_trace",
    "counter",
    "expose",
    "gauge",
    "histogram",
    "inject_headers",
    "install",
    "installed",
    "main",
    "publish_span",
]

log = logging.getLogger("tastyplat.telemetry")

_EXPORTERS = ("otlp", "console", "none")
_TRACER_NAME = "tastyplat"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TelemetrySettings(Settings):
    """Telemetry of one process (variables without a service prefix; see the module docstring)."""

    env_prefix: ClassVar[str] = ""
    traces_exporter: str = env("OTEL_TRACES_EXPORTER", absolute=True, default="none", help="otlp, console or none")
    otlp_endpoint: str = env("OTEL_EXPORTER_OTLP_ENDPOINT", absolute=True, default="http://127.0.0.1:4317")
    service_name: str = env("OTEL_SERVICE_NAME", absolute=True, default="tastyplat")
    sample_ratio: float = env("OTEL_TRACES_SAMPLER_ARG", absolute=True, default=1.0, ge=0.0, le=1.0)
    metrics_port: int | None = env("TASTYPLAT_METRICS_PORT", absolute=True, default=None)
    metrics_host: str = env("TASTYPLAT_METRICS_HOST", absolute=True, default="0.0.0.0")

    def __post_init__(self) -> None:
        if self.traces_exporter not in _EXPORTERS:
            raise InvalidSettingError("OTEL_TRACES_EXPORTER", f"expected one of {', '.join(_EXPORTERS)}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise InvalidSettingError("TASTYPLAT_METRICS_PORT", f"must be within 0..65535, got {self.metrics_port}")

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded and exported."""
        return self.traces_exporter != "none"


@dataclasses.dataclass
class _State:
    tracing: bool = False
    metrics: bool = False
    metrics_port: int | None = None
    provider: Any = None


_state = _State()
_lock = threading.RLock()


def installed() -> _State:
    """What ``install`` turned on in this process (``tracing``, ``metrics``, the bound ``metrics_port``)."""
    return _state


def install(settings: TelemetrySettings) -> None:
    """Turn on tracing and metrics as ``settings`` say, once per process (a second call changes nothing).

    Call it before the gRPC server and the peer channels are created: the instrumentation wraps
    ``grpc.aio.server``, ``grpc.aio.insecure_channel`` and ``grpc.aio.secure_channel``.
    """
    with _lock:
        if settings.tracing and not _state.tracing:
            _install_tracing(settings)
        if settings.metrics_port is not None and not _state.metrics:
            _install_metrics(settings)


def _install_tracing(settings: TelemetrySettings) -> None:
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer, filters
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    exporter: SpanExporter
    if settings.traces_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=settings.otlp_endpoint.startswith("http://"))
    else:
        exporter = ConsoleSpanExporter(service_name=settings.service_name)
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    # Short batches: a trace crossing processes shows up within a second, and little is lost on a kill.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    # Health probes every few seconds from kubelet and Envoy would drown the real traces.
    quiet = filters.negate(filters.health_check())
    GrpcAioInstrumentorServer(filter_=quiet).instrument(tracer_provider=provider)
    GrpcAioInstrumentorClient(filter_=quiet).instrument(tracer_provider=provider)
    _stamp_log_records()
    _state.tracing = True
    _state.provider = provider


def _stamp_log_records() -> None:
    # A record factory, not a handler filter: services.platform.logging replaces its handler when it configures.
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        return record

    logging.setLogRecordFactory(factory)


# ------------------------------------------------------------------------------------------------- bus


def inject_headers(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The current trace context as message headers (``traceparent``, ``tracestate``); empty when not tracing."""
    headers = dict(carrier or {})
    if _state.tracing:
        propagate.inject(headers)
    return headers


@contextlib.contextmanager
def publish_span(topic: str, headers: Mapping[str, str] | None) -> Iterator[dict[str, str]]:
    """A PRODUCER span around one publish; yields the headers to send (``headers`` plus the trace context).

    Without tracing it yields ``headers`` unchanged and records nothing.
    """
    if not _state.tracing:
        yield dict(headers or {})
        return
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        f"{topic} publish",
        kind=trace.SpanKind.PRODUCER,
        attributes={"messaging.system": "rabbitmq", "messaging.destination.name": topic,
                    "messaging.operation.type": "publish"},
    ):
        yield inject_headers(dict(headers or {}))


def consume_span(topic: str, message_id: str, headers: Mapping[str, str]) -> Callable[[], None] | None:
    """Start a delivery's CONSUMER span (child of the publisher's) and make it the task's current context.

    The subscription calls this as it hands out a delivery, in the consuming task, so what the consumer does
    next (peer calls, publishes, logs) joins the publisher's trace. Returns the function that ends the span
    (called when the delivery is settled or the next one arrives), or None when not tracing.
    """
    if not _state.tracing:
        return None
    parent = propagate.extract(dict(headers))
    span = trace.get_tracer(_TRACER_NAME).start_span(
        f"{topic} process",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={"messaging.system": "rabbitmq", "messaging.destination.name": topic,
                    "messaging.message.id": message_id, "messaging.operation.type": "process"},
    )
    # Replaces the consuming task's context outright (no token kept): a consumer loop moves from one message's
    # trace to the next, there is no enclosing context to restore.
    otel_context.attach(trace.set_span_in_context(span, parent))
    ended = False

    def end() -> None:
        nonlocal ended
        if not ended:
            ended = True
            span.end()

    return end


@contextlib.contextmanager
def continue_trace(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Make the trace context kept in ``headers`` current for the block (no-op without tracing or context).

    For work done later on behalf of an earlier one, e.g. an outbox relay publishing an entry recorded while a
    message was being processed: the relay's PRODUCER span becomes a child of that processing.
    """
    if not _state.tracing or not headers:
        yield
        return
    token = otel_context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def client_span(name: str, attributes: Mapping[str, str | int] | None = None) -> Iterator[None]:
    """A CLIENT span around a call to an outside system that carries no trace context (an SMS or e-mail API).

    A failure inside the block marks the span as an error and propagates. Without tracing, records nothing.
    """
    if not _state.tracing:
        yield
        return
    with trace.get_tracer(_TRACER_NAME).start_as_current_span(
        name, kind=trace.SpanKind.CLIENT, attributes=dict(attributes or {})
    ):
        yield


# ------------------------------------------------------------------------------------------------- metrics

_REGISTRY = prometheus_client.REGISTRY
_collectors: dict[str, Any] = {}

RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _collector(kind: type, name: str, documentation: str, labels: Sequence[str], **kwargs: Any) -> Any:
    full = name if name.startswith("tastyplat_") else f"tastyplat_{name}"
    with _lock:
        existing = _collectors.get(full)
        if existing is not None:
            if not isinstance(existing, kind) or tuple(existing._labelnames) != tuple(labels):
                raise ValueError(f"metric {full} already exists with another type or labels")
            return existing
        created = kind(full, documentation, list(labels), registry=_REGISTRY, **kwargs)
        _collectors[full] = created
        return created


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> prometheus_client.Counter:
    """A counter on the process's registry (``tastyplat_`` prefixed); the same object for the same name.

    Raises:
        ValueError: ``name`` exists with another type or other labels.
    """
    return _collector(prometheus_client.Counter, name, documentation, labels)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> prometheus_client.Gauge:
    """A gauge on the process's registry (``tastyplat_`` prefixed); the same object for the same name."""
    return _collector(prometheus_client.Gauge, name, documentation, labels)


def histogram(
    name: str, documentation: str, labels: Sequence[str] = (), buckets: Sequence[float] = RPC_BUCKETS
) -> prometheus_client.Histogram:
    """A histogram on the process's registry (``tastyplat_`` prefixed); the same object for the same name."""
    return _collector(prometheus_client.Histogram, name, documentation, labels, buckets=tuple(buckets))


Sample = tuple[Mapping[str, str], float]


class _Exposed:
    """A collector reading its samples from a callback at scrape time (state the service already keeps)."""

    def __init__(self, name: str, documentation: str, kind: str, read: Callable[[], Iterator[Sample] | Sequence[Sample]]):
        self.name, self.documentation, self.kind, self.read = name, documentation, kind, read

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        family_type = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        try:
            samples = list(self.read())
        except Exception:  # noqa: BLE001 - a failing reader must not break the whole scrape
            log.exception("metric reader failed", extra={"metric": self.name})
            return
        labels = sorted({key for sample_labels, _ in samples for key in sample_labels})
        family = family_type(self.name, self.documentation, labels=labels)
        for sample_labels, value in samples:
            family.add_metric([sample_labels.get(key, "") for key in labels], value)
        yield family


def expose(
    name: str, documentation: str, read: Callable[[], Iterator[Sample] | Sequence[Sample]], *, kind: str = "gauge"
) -> None:
    """Serve ``tastyplat_<name>`` from ``read()`` at each scrape: ``(labels, value)`` pairs.

    For figures a service keeps anyway (subscriber counts, totals in its stats, a breaker's state), so the hot
    path pays nothing. ``kind`` is ``gauge`` or ``counter`` (then ``read`` must be monotonic, and the name gets
    ``_total`` in the exposition). Exposing a name again replaces its reader (the latest wiring wins).
    """
    if kind not in ("gauge", "counter"):
        raise ValueError(f"kind must be 'gauge' or 'counter', got {kind!r}")
    full = name if name.startswith("tastyplat_") else f"tastyplat_{name}"
    with _lock:
        existing = _collectors.get(full)
        if existing is not None and not isinstance(existing, _Exposed):
            raise ValueError(f"metric {full} already exists with another type")
        if isinstance(existing, _Exposed):
            existing.documentation, existing.kind, existing.read = documentation, kind, read
            return
        created = _Exposed(full.removesuffix("_total") if kind == "counter" else full, documentation, kind, read)
        _REGISTRY.register(created)  # type: ignore[arg-type]
        _collectors[full] = created


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class MetricsServerInterceptor(grpc.aio.ServerInterceptor):
    """Counts every RPC by service, method and final status code, times it, and tracks calls in flight.

    Metrics: ``tastyplat_rpc_server_handled_total{grpc_service, grpc_method, grpc_code}``,
    ``tastyplat_rpc_server_handling_seconds{grpc_service, grpc_method}`` (a histogram; for streams the whole
    stream) and ``tastyplat_rpc_server_in_flight{grpc_service, grpc_method}``.
    """

    def __init__(self) -> None:
        """Register (or reuse) the RPC metrics."""
        labels = ("grpc_service", "grpc_method")
        self.handled = counter("rpc_server_handled_total", "RPCs completed, by status code", (*labels, "grpc_code"))
        self.seconds = histogram("rpc_server_handling_seconds", "Time from call start to status", labels)
        self.in_flight = gauge("rpc_server_in_flight", "RPCs being served", labels)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Return the handler wrapped so its outcome is counted (unknown methods pass through)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _measured(handler, *_split(handler_call_details.method), self)


def _code_of(context: Any, error: BaseException | None) -> str:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is None:
        return "OK"
    if isinstance(error, grpc.aio.AbortError):
        return "UNKNOWN"
    if isinstance(error, BaseException) and not isinstance(error, Exception):
        return "CANCELLED"
    from services.platform.error_mapping import status_code_for

    mapped = status_code_for(error) if isinstance(error, Exception) else None
    return mapped.name if mapped is not None else "UNKNOWN"


@contextlib.contextmanager
def _observe(metrics: MetricsServerInterceptor, service: str, method: str, context: Any) -> Iterator[None]:
    started = time.perf_counter()
    metrics.in_flight.labels(service, method).inc()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        metrics.in_flight.labels(service, method).dec()
        metrics.seconds.labels(service, method).observe(time.perf_counter() - started)
        metrics.handled.labels(service, method, _code_of(context, error)).inc()


def _measured(
    handler: grpc.RpcMethodHandler[Any, Any], service: str, method: str, metrics: MetricsServerInterceptor
) -> grpc.RpcMethodHandler[Any, Any]:
    des, ser = handler.request_deserializer, handler.response_serializer

    def unary(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(behaviour)
        async def call(request: Any, context: Any) -> Any:
            with _observe(metrics, service, method, context):
                return await behaviour(request, context)

        return call

    def streaming(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        # grpc.aio picks the calling convention from the shape (async generator or coroutine): keep it.
        if inspect.isasyncgenfunction(behaviour):

            async def generate(request: Any, context: Any) -> AsyncIterator[Any]:
                with _observe(metrics, service, method, context):
                    async for response in behaviour(request, context):
                        yield response

            return generate
        return unary(behaviour)

    if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), request_deserializer=des,
                                                   response_serializer=ser)
    if handler.stream_unary is not None and inspect.iscoroutinefunction(handler.stream_unary):
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), request_deserializer=des,
                                                    response_serializer=ser)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), request_deserializer=des,
                                                    response_serializer=ser)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), request_deserializer=des,
                                                     response_serializer=ser)
    return handler


def _install_metrics(settings: TelemetrySettings) -> None:
    assert settings.metrics_port is not None
    server, _thread = prometheus_client.start_http_server(settings.metrics_port, addr=settings.metrics_host)
    _state.metrics_port = server.server_address[1]
    original = grpc.aio.server
    interceptor = MetricsServerInterceptor()

    def server_with_metrics(*args: Any, **kwargs: Any) -> grpc.aio.Server:
        # Outermost, so the code counted is the one the caller sees (after the platform's error mapping).
        kwargs["interceptors"] = [interceptor, *(kwargs.get("interceptors") or ())]
        return original(*args, **kwargs)

    grpc.aio.server = server_with_metrics
    _state.metrics = True
    log.info("metrics endpoint", extra={"port": _state.metrics_port})


def _topic_label(topic: str) -> str:
    # Market data publishes one topic per underlying (thousands): one series per kind, not per symbol.
    words = topic.split(".")
    if words[0] == "marketdata" and len(words) >= 3:
        return f"{words[0]}.{words[1]}.*"
    return topic


def count_published(topic: str) -> None:
    """Count one confirmed publish on ``topic`` (``tastyplat_bus_published_total``), when metrics are on."""
    if _state.metrics:
        counter("bus_published_total", "Messages published and confirmed, by topic", ("topic",)).labels(
            _topic_label(topic)).inc()


def count_settled(topic: str, outcome: str) -> None:
    """Count one delivery settled by a consumer (``tastyplat_bus_consumed_total``, outcome acked/rejected)."""
    if _state.metrics:
        counter("bus_consumed_total", "Deliveries settled by consumers, by topic and outcome", ("topic", "outcome")).labels(
            _topic_label(topic), outcome).inc()


# ------------------------------------------------------------------------------------------------- runner


def main(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """``python -m services.platform.telemetry services.<svc> [args...]``: install, then run the service."""
    if len(argv) < 2 or not argv[1].startswith("services."):
        print("usage: python -m services.platform.telemetry services.<svc> [args...]", file=sys.stderr)
        raise SystemExit(2)
    install(exit_on_settings_error(TelemetrySettings, environ))
    module = argv[1]
    sys.argv = [module, *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    import os

    # Run the imported module's main, not this __main__ copy's: the bus and the interceptors see the state of
    # ``services.platform.telemetry``.
    from services.platform import telemetry as _telemetry

    _telemetry.main(sys.argv, dict(os.environ))
