"""The generated Envoy bootstrap: accepted by Envoy 1.40 and routing every contract in the descriptor set."""

from __future__ import annotations

import json
import pathlib

import pytest
from google.protobuf import descriptor_pb2

from gateway.config import GatewaySettings, build_config, default_descriptor_set, write_config
from gateway.envoy import EnvoyError, validate

SERVICES = {
    "tastyplat.user.v1.UserService",
    "tastyplat.broker.v1.BrokerService",
    "tastyplat.marketdata.v1.MarketDataService",
    "tastyplat.calculator.v1.CalculatorService",
    "tastyplat.deltamonitor.v1.DeltaMonitorService",
    "tastyplat.notification.v1.NotificationService",
    "tastyplat.portfolio.v1.PortfolioService",
    "tastyplat.reporting.v1.ReportingService",
}


def _transcoder(config: dict) -> dict:
    filters = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    (transcoder,) = [f for f in filters["http_filters"] if f["name"] == "envoy.filters.http.grpc_json_transcoder"]
    return transcoder["typed_config"]


def test_generated_config_passes_envoy_validate(tmp_path: pathlib.Path) -> None:
    path = write_config(GatewaySettings(descriptor_set=default_descriptor_set()), tmp_path / "envoy.json")
    validate(path)


def test_transcoder_routes_every_platform_service_and_health() -> None:
    transcoder = _transcoder(build_config(GatewaySettings(descriptor_set=default_descriptor_set())))
    assert set(transcoder["services"]) == SERVICES | {"grpc.health.v1.Health"}


def test_transcoder_refuses_unknown_paths_and_keeps_proto_field_names() -> None:
    transcoder = _transcoder(build_config(GatewaySettings(descriptor_set=default_descriptor_set())))
    assert transcoder["request_validation_options"] == {
        "reject_unknown_method": True,
        "reject_unknown_query_parameters": True,
    }
    assert transcoder["print_options"]["preserve_proto_field_names"] is True


def test_descriptor_set_carries_error_details_for_json_errors() -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(default_descriptor_set().read_bytes())
    names = {f.name for f in files.file}
    assert {"google/rpc/error_details.proto", "google/rpc/status.proto", "grpc/health/v1/health.proto"} <= names


def test_upstream_cluster_speaks_http2() -> None:
    (cluster,) = build_config(GatewaySettings(descriptor_set=default_descriptor_set()))["static_resources"]["clusters"]
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]


def test_envoy_rejects_a_broken_config(tmp_path: pathlib.Path) -> None:
    config = build_config(GatewaySettings(descriptor_set=default_descriptor_set()))
    _transcoder(config)["services"].append("tastyplat.nope.v1.NopeService")
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(config))
    with pytest.raises(EnvoyError, match="NopeService"):
        validate(path)
