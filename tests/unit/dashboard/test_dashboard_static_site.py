"""The dashboard's loopback static server and its gateway routes (generated config, Envoy validate)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx
import pytest

from gateway.config import DASHBOARD_CLUSTER, Endpoint, GatewaySettings, build_config, default_descriptor_set, write_config
from gateway.envoy import validate
from gateway.static_site import CONTENT_SECURITY_POLICY, DashboardNotBuilt, StaticSite, load_site

INDEX = b"<!doctype html><title>t</title><script type=module src=/assets/app-1a2b.js></script>"
SCRIPT = b"console.log('hi')"


@pytest.fixture
def build(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_bytes(INDEX)
    (tmp_path / "assets" / "app-1a2b.js").write_bytes(SCRIPT)
    (tmp_path / "secret.txt").write_text("outside assets")
    return tmp_path


@pytest.fixture
def site(build: pathlib.Path) -> Iterator[httpx.Client]:
    server = StaticSite(build)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
            yield client
    finally:
        server.stop()


def test_index_is_served_uncached_with_a_same_origin_policy(site: httpx.Client) -> None:
    response = site.get("/")
    assert response.status_code == 200
    assert response.content == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY


def test_hashed_assets_are_served_immutable_with_their_type(site: httpx.Client) -> None:
    response = site.get("/assets/app-1a2b.js")
    assert response.status_code == 200
    assert response.content == SCRIPT
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    ["/secret.txt", "/index.html", "/assets/", "/assets/missing.js", "/assets/../secret.txt", "/assets/%2e%2e/secret.txt"],
)
def test_paths_outside_the_build_are_not_found(site: httpx.Client, path: str) -> None:
    response = site.get(path)
    assert response.status_code == 404
    assert b"outside assets" not in response.content


def test_head_answers_headers_only(site: httpx.Client) -> None:
    response = site.head("/assets/app-1a2b.js")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(SCRIPT))
    assert response.content == b""


def test_writes_are_refused(site: httpx.Client) -> None:
    response = site.post("/", content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_a_missing_build_names_the_make_target(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DashboardNotBuilt, match="make dashboard"):
        load_site(tmp_path)


def _routes(config: dict) -> list[dict]:
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return manager["route_config"]["virtual_hosts"][0]["routes"]


def _jwt_rules(config: dict) -> list[dict]:
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    (jwt,) = [f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn"]
    return jwt["typed_config"]["rules"]


def _settings(dashboard: Endpoint | None) -> GatewaySettings:
    return GatewaySettings(descriptor_set=default_descriptor_set(), jwt_issuer="https://user.tastyplat", dashboard=dashboard)


def test_dashboard_routes_precede_the_services_without_the_transcoder() -> None:
    routes = _routes(build_config(_settings(Endpoint("127.0.0.1", 20001))))
    assert [r["match"] for r in routes[:2]] == [{"path": "/"}, {"prefix": "/assets/"}]
    for route in routes[:2]:
        assert route["route"]["cluster"] == DASHBOARD_CLUSTER
        assert route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]["disabled"] is True
    assert routes[-1]["match"] == {"prefix": "/"}


def test_dashboard_assets_need_no_token_but_everything_else_still_does() -> None:
    rules = _jwt_rules(build_config(_settings(Endpoint("127.0.0.1", 20001))))
    public = [r["match"] for r in rules if "requires" not in r]
    assert {"prefix": "/assets/"} in public and {"path": "/"} in public
    assert rules[-1] == {"match": {"prefix": "/"}, "requires": {"provider_name": "tastyplat_user"}}


def test_without_a_dashboard_there_are_no_static_routes_or_cluster() -> None:
    config = build_config(_settings(None))
    assert all(r["route"]["cluster"] != DASHBOARD_CLUSTER for r in _routes(config))
    assert {"prefix": "/assets/"} not in [r["match"] for r in _jwt_rules(config)]
    assert DASHBOARD_CLUSTER not in {c["name"] for c in config["static_resources"]["clusters"]}


def test_config_with_a_dashboard_passes_envoy_validate(tmp_path: pathlib.Path) -> None:
    validate(write_config(_settings(Endpoint("127.0.0.1", 20001)), tmp_path / "envoy.json"))
