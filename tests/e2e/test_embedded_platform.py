"""`make run`'s platform, used as people use it: grpcurl on the gRPC port, HTTP through Envoy, SIGTERM to stop."""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess

import httpx
import psutil

from embedded_proc import EmbeddedPlatform, start_embedded, tool

SERVICES = {
    "tastyplat.broker.v1.BrokerService",
    "tastyplat.calculator.v1.CalculatorService",
    "tastyplat.deltamonitor.v1.DeltaMonitorService",
    "tastyplat.marketdata.v1.MarketDataService",
    "tastyplat.notification.v1.NotificationService",
    "tastyplat.portfolio.v1.PortfolioService",
    "tastyplat.reporting.v1.ReportingService",
    "tastyplat.user.v1.UserService",
}


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("grpcurl"), *args], capture_output=True, text=True, timeout=30, check=False)


def test_ready_line_names_the_addresses(embedded: EmbeddedPlatform) -> None:
    assert f"grpc=127.0.0.1:{embedded.grpc_port}" in embedded.ready_line
    assert f"rest=http://127.0.0.1:{embedded.gateway_port}" in embedded.ready_line


def test_grpcurl_lists_all_eight_services_and_health(embedded: EmbeddedPlatform) -> None:
    result = grpcurl("-plaintext", embedded.grpc_target, "list")
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    assert SERVICES | {"grpc.health.v1.Health"} <= listed


def test_grpcurl_health_check_is_serving(embedded: EmbeddedPlatform) -> None:
    result = grpcurl("-plaintext", "-d", '{"service":""}', embedded.grpc_target, "grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_health_is_reachable_over_rest_through_envoy(embedded: EmbeddedPlatform) -> None:
    response = httpx.post(f"{embedded.rest_base}/grpc.health.v1.Health/Check", json={"service": ""}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "SERVING"}


def test_unknown_rest_path_without_a_token_is_refused_as_unauthenticated(embedded: EmbeddedPlatform) -> None:
    response = httpx.get(f"{embedded.rest_base}/v1/nope", timeout=10)
    assert response.status_code == 401
    assert response.json()["code"] == 401


def test_request_id_given_by_the_client_comes_back_through_the_gateway(embedded: EmbeddedPlatform) -> None:
    response = httpx.post(
        f"{embedded.rest_base}/grpc.health.v1.Health/Check",
        json={"service": ""},
        headers={"x-request-id": "e2e-request-42"},
        timeout=10,
    )
    assert response.headers.get("x-request-id") == "e2e-request-42"


def test_sigterm_stops_envoy_and_postgres_and_exits_cleanly(tmp_path: pathlib.Path) -> None:
    platform = start_embedded(tmp_path)
    children = psutil.Process(platform.process.pid).children(recursive=True)
    envoy_pids = [p.pid for p in children if "envoy" in p.name()]
    postgres_pid = int((tmp_path / "pgdata" / "postmaster.pid").read_text().split()[0])
    assert psutil.pid_exists(postgres_pid)
    code, out = platform.stop(signal.SIGTERM)
    assert code == 0
    assert "STOPPED" in out
    assert not _running(postgres_pid), psutil.Process(postgres_pid).as_dict(["name", "status", "ppid", "cmdline"])
    assert envoy_pids and not any(_running(pid) for pid in envoy_pids)
    # It can be run again at once on the same data directory and ports' kind.
    again = start_embedded(tmp_path)
    code, _ = again.stop(signal.SIGINT)
    assert code == 0
