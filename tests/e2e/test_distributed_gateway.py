"""The gateway's per-package mode: one cluster per service, routes by gRPC path prefix, accepted by Envoy 1.40."""

from __future__ import annotations

import pathlib

import pytest

from gateway.config import Endpoint, GatewaySettings, PackageUpstream, build_config, default_descriptor_set, write_config
from gateway.envoy import validate
from services.platform.catalogue import CATALOGUE


def _per_package(**overrides: object) -> GatewaySettings:
    upstreams = tuple(
        PackageUpstream(f"tastyplat.{e.name}.v1", (Endpoint("127.0.0.1", e.port),)) for e in CATALOGUE
    )
    return GatewaySettings(descriptor_set=default_descriptor_set(), upstreams=upstreams, **overrides)  # type: ignore[arg-type]


def _routes(config: dict) -> list[dict]:
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return manager["route_config"]["virtual_hosts"][0]["routes"]


def test_per_package_config_passes_envoy_validate(tmp_path: pathlib.Path) -> None:
    validate(write_config(_per_package(jwt_issuer="https://user.tastyplat"), tmp_path / "envoy.json"))


def test_each_package_has_its_own_cluster_on_its_own_port() -> None:
    clusters = {c["name"]: c for c in build_config(_per_package())["static_resources"]["clusters"]}
    for service in CATALOGUE:
        cluster = clusters[f"tastyplat_{service.name}"]
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == service.port
        assert "http2_protocol_options" in cluster["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
    assert "tastyplat_grpc" not in clusters


def test_routes_match_grpc_path_prefixes_so_transcoded_rest_calls_follow_them() -> None:
    routes = _routes(build_config(_per_package()))
    by_prefix = {r["match"]["prefix"]: r["route"]["cluster"] for r in routes}
    for service in CATALOGUE:
        assert by_prefix[f"/tastyplat.{service.name}.v1."] == f"tastyplat_{service.name}"
    assert routes[-1]["match"] == {"prefix": "/"}, "the catch-all comes last"
    assert by_prefix["/"] == "tastyplat_broker", "the first upstream serves health and reflection by default"


def test_the_default_package_serves_paths_of_no_package() -> None:
    routes = _routes(build_config(_per_package(default_package="tastyplat.user.v1")))
    assert routes[-1]["route"]["cluster"] == "tastyplat_user"


def test_routes_retry_only_calls_that_never_reached_a_server() -> None:
    (route,) = {r["route"]["retry_policy"]["retry_on"] for r in _routes(build_config(_per_package()))}
    assert set(route.split(",")) == {"connect-failure", "refused-stream", "reset-before-request"}


def test_replicas_share_a_cluster_and_a_dns_name_becomes_strict_dns() -> None:
    settings = GatewaySettings(
        descriptor_set=default_descriptor_set(),
        upstreams=(
            PackageUpstream("tastyplat.marketdata.v1", (Endpoint("127.0.0.1", 8082), Endpoint("127.0.0.1", 8182))),
            PackageUpstream("tastyplat.user.v1", (Endpoint("user", 8084),)),
        ),
    )
    clusters = {c["name"]: c for c in build_config(settings)["static_resources"]["clusters"]}
    marketdata = clusters["tastyplat_marketdata"]
    assert marketdata["type"] == "STATIC" and len(marketdata["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2
    assert marketdata["outlier_detection"]["max_ejection_percent"] == 50
    assert clusters["tastyplat_user"]["type"] == "STRICT_DNS"
    assert clusters["tastyplat_user"]["outlier_detection"]["max_ejection_percent"] == 0


def test_single_upstream_mode_is_unchanged() -> None:
    config = build_config(GatewaySettings(descriptor_set=default_descriptor_set(), upstream_port=50051))
    (route,) = _routes(config)
    assert route == {
        "match": {"prefix": "/"},
        "route": {"cluster": "tastyplat_grpc", "timeout": "0s", "max_stream_duration": {"grpc_timeout_header_max": "0s"}},
    }


@pytest.mark.parametrize(
    ("upstreams", "default", "message"),
    [
        ((PackageUpstream("tastyplat.user.v1", ()),), None, "at least one endpoint"),
        ((PackageUpstream("tastyplat.user.v1", (Endpoint("127.0.0.1", 1),)),) * 2, None, "two upstreams"),
        ((PackageUpstream("tastyplat.user.v1", (Endpoint("127.0.0.1", 1),)),), "tastyplat.nope.v1", "not among"),
    ],
)
def test_inconsistent_upstreams_are_refused(upstreams: tuple, default: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GatewaySettings(descriptor_set=default_descriptor_set(), upstreams=upstreams, default_package=default)
