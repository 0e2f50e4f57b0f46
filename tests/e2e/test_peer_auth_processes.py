"""Peer authentication of a real service process (`python -m services.calculator`, distributed mode): unsigned
calls without a user token are refused, signed calls pass, a replayed signed call is refused, also after the
service restarts (nonces persist in PostgreSQL)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import asyncpg
import grpc
import pytest
from embedded_proc import free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.platform.clock import SystemClock
from services.platform.peer_auth import PeerKeyring, PeerSigner, generate_secret, signing_interceptors
from services.platform.peers import create_channel
from tastyplat.calculator.v1 import calculator_service_pb2 as pb
from tastyplat.calculator.v1 import calculator_service_pb2_grpc as pb_grpc
from tastyplat.type.v1 import option_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]
DSN = "postgresql://postgres@127.0.0.1:5432/test"
SERVICE = "tastyplat.calculator.v1.CalculatorService"
KEYS = f"k1:{generate_secret()}"
REQUEST = pb.ComputeGreeksRequest(
    kind=option_pb2.OPTION_KIND_CALL, spot_price=42, strike_price=40, expiry_years=0.5, volatility=0.2, rate=0.1,
    style=option_pb2.EXERCISE_STYLE_EUROPEAN,
)


class Calculator:
    """One `python -m services.calculator` process with peer authentication required."""

    def __init__(self, port: int, schema: str, log: pathlib.Path):
        self.target = f"127.0.0.1:{port}"
        env = {
            **os.environ, "CALCULATOR_HOST": "127.0.0.1", "CALCULATOR_PORT": str(port), "CALCULATOR_DRAIN_SECONDS": "0",
            "PEER_AUTH_MODE": "required", "PEER_AUTH_KEYS": KEYS, "PEER_AUTH_KEY_ID": "k1",
            "PEER_AUTH_DATABASE_URL": DSN, "PEER_AUTH_DATABASE_SCHEMA": schema,
            "PEER_AUTH_USER_SERVICE_TARGET": f"127.0.0.1:{free_port()}",  # no user service: tokens cannot pass
        }
        with log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "services.calculator"], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)
        self._wait_serving(log)

    def _wait_serving(self, log: pathlib.Path, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, log.read_text()[-3000:]
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise AssertionError(log.read_text()[-3000:])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"peer_auth_e2e_{uuid.uuid4().hex[:8]}"
    yield name

    async def drop() -> None:
        connection = await asyncpg.connect(DSN)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await connection.close()

    import asyncio

    asyncio.run(drop())


def _reason(error: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


class Recorder(grpc.aio.UnaryUnaryClientInterceptor):
    """Keeps the metadata of the last call, to replay it byte for byte."""

    def __init__(self) -> None:
        self.metadata: tuple[tuple[str, str], ...] = ()

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # noqa: ANN001, ANN201
        self.metadata = tuple((k, v) for k, v in (client_call_details.metadata or ()) if k.startswith("x-peer-"))
        return await continuation(client_call_details, request)


async def test_unsigned_signed_and_replayed_calls_across_a_restart(tmp_path: pathlib.Path, schema: str) -> None:
    port = free_port()
    calculator = Calculator(port, schema, tmp_path / "calculator.log")
    try:
        async with grpc.aio.insecure_channel(calculator.target) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as unsigned:
                await pb_grpc.CalculatorServiceStub(plain).ComputeGreeks(REQUEST, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as bad_token:
                await pb_grpc.CalculatorServiceStub(plain).ComputeGreeks(
                    REQUEST, metadata=(("authorization", "Bearer not-a-token"),), timeout=10)
        assert unsigned.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _reason(unsigned.value) == "PEER_SIGNATURE_MISSING"
        assert bad_token.value.code() == grpc.StatusCode.UNAUTHENTICATED

        recorder = Recorder()
        signer = PeerSigner(PeerKeyring.from_setting(KEYS, "k1"), clock=SystemClock())
        async with create_channel(calculator.target, interceptors=[*signing_interceptors(signer), recorder]) as signed:
            reply = await pb_grpc.CalculatorServiceStub(signed).ComputeGreeks(REQUEST, timeout=10)
        assert round(reply.greeks.price, 4) == 4.7594
        assert {k for k, _ in recorder.metadata} >= {"x-peer-signature", "x-peer-nonce", "x-peer-timestamp"}

        async with grpc.aio.insecure_channel(calculator.target) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as replay:
                await pb_grpc.CalculatorServiceStub(plain).ComputeGreeks(REQUEST, metadata=recorder.metadata, timeout=10)
        assert _reason(replay.value) == "PEER_NONCE_REPLAYED"
    finally:
        calculator.stop()

    again = Calculator(port, schema, tmp_path / "calculator.log")
    try:
        async with grpc.aio.insecure_channel(again.target) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as replay_after_restart:
                await pb_grpc.CalculatorServiceStub(plain).ComputeGreeks(REQUEST, metadata=recorder.metadata, timeout=10)
        assert _reason(replay_after_restart.value) == "PEER_NONCE_REPLAYED"
    finally:
        again.stop()


def test_missing_peer_keys_stop_start_up_naming_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEER_AUTH_")}
    env.update({"CALCULATOR_PORT": str(free_port())})
    result = subprocess.run([sys.executable, "-m", "services.calculator"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "PEER_AUTH_KEYS" in result.stderr
