"""The calculator called with grpcurl through server reflection, as users do: ``python -m services.calculator``
alone on a free port, and the embedded platform of ``make run``."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import core_ext
import grpc
import pytest
from embedded_proc import EmbeddedPlatform  # tests/e2e: the `embedded` fixture's platform (make run's)
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[3]
SERVICE = "tastyplat.calculator.v1.CalculatorService"


def grpcurl() -> str:
    path = pathlib.Path(sys.executable).parent / "grpcurl"
    found = str(path) if path.exists() else shutil.which("grpcurl")
    assert found, "grpcurl is not installed in the virtualenv"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_serving(target: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, "the calculator exited during start-up"
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"the calculator did not report SERVING on {target} within {timeout} s")


@pytest.fixture(scope="module")
def calculator_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The calculator started as its own process (``python -m services.calculator``) on a free port."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("calculator") / "calculator.log"
    env = {**os.environ, "CALCULATOR_HOST": "127.0.0.1", "CALCULATOR_PORT": str(port),
           "CALCULATOR_DRAIN_SECONDS": "0",
           # Unsigned grpcurl calls, as a developer makes them; peer authentication is tested on its own.
           "PEER_AUTH_MODE": "off"}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.calculator"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    try:
        wait_serving(target, process)
        yield target
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def call(target: str, rpc: str, body: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [grpcurl(), "-plaintext", "-format-error", "-d", json.dumps(body), target, f"{SERVICE}/{rpc}"],
        capture_output=True, text=True, timeout=30,
    )


def test_grpcurl_lists_the_calculator_through_reflection(calculator_target: str) -> None:
    out = subprocess.run([grpcurl(), "-plaintext", calculator_target, "list", SERVICE], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"{SERVICE}.ComputeGreeksBatch" in out.stdout.split()


def test_grpcurl_compute_greeks_returns_core_ext_values(calculator_target: str) -> None:
    out = call(calculator_target, "ComputeGreeks", {
        "kind": "OPTION_KIND_CALL", "spot_price": 42, "strike_price": 40, "expiry_years": 0.5, "volatility": 0.2,
        "rate": 0.1, "style": "EXERCISE_STYLE_EUROPEAN",
    })
    assert out.returncode == 0, out.stderr
    greeks = json.loads(out.stdout)["greeks"]
    direct = core_ext.greeks("call", 42.0, 40.0, 0.5, 0.2, rate=0.1)
    for name in ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm"):
        assert greeks[name] == getattr(direct, name), name


def test_grpcurl_batch_with_american_style_and_a_marked_invalid_element(calculator_target: str) -> None:
    out = call(calculator_target, "ComputeGreeksBatch", {
        "is_call": [True, False], "spot_prices": [100], "strike_prices": [90, 110], "expiry_years": [0.5],
        "volatilities": [0.25, -1], "style": "EXERCISE_STYLE_AMERICAN", "mark_invalid_elements": True,
    })
    assert out.returncode == 0, out.stderr
    response = json.loads(out.stdout)
    assert response["statuses"] == ["ELEMENT_STATUS_OK", "ELEMENT_STATUS_INVALID_INPUT"]
    assert response["prices"][0] == core_ext.greeks("call", 100.0, 90.0, 0.5, 0.25, style="american").price
    assert response["prices"][1] == "NaN"


def test_grpcurl_sees_invalid_argument_with_reason_and_field(calculator_target: str) -> None:
    out = call(calculator_target, "ComputeGreeks", {
        "kind": "OPTION_KIND_CALL", "spot_price": -42, "strike_price": 40, "expiry_years": 0.5, "volatility": 0.2,
        "style": "EXERCISE_STYLE_EUROPEAN",
    })
    assert out.returncode != 0
    status = json.loads(out.stdout or out.stderr)
    assert status["code"] == 3  # INVALID_ARGUMENT
    details = {d["@type"].rsplit("/", 1)[-1]: d for d in status["details"]}
    assert details["google.rpc.ErrorInfo"]["reason"] == "FIELD_INVALID"
    assert details["google.rpc.ErrorInfo"]["domain"] == "calculator.tastyplat"
    assert [v["field"] for v in details["google.rpc.BadRequest"]["field_violations"]] == ["spot_price"]


def test_grpcurl_compute_greeks_on_the_embedded_platform(embedded: EmbeddedPlatform) -> None:
    out = call(embedded.grpc_target, "ComputeGreeks", {
        "kind": "OPTION_KIND_PUT", "spot_price": 40, "strike_price": 50, "expiry_years": 1, "volatility": 0.25,
        "rate": 0.08, "style": "EXERCISE_STYLE_AMERICAN",
    })
    assert out.returncode == 0, out.stderr
    price = json.loads(out.stdout)["greeks"]["price"]
    assert price == core_ext.greeks("put", 40.0, 50.0, 1.0, 0.25, rate=0.08, style="american").price
