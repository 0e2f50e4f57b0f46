"""A service process as ``python -m services.<svc>`` runs it: settings from the environment, JSON logs,
SERVING once up, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]

MAIN = textwrap.dedent(
    """
    import os, grpc
    from services.platform.errors import NotFound
    from services.platform.server import ServiceRegistration, serve
    from services.platform.settings import ServerSettings, exit_on_settings_error

    class Settings(ServerSettings):
        env_prefix = "DEMO_"

    async def lookup(request, context):
        raise NotFound("nothing here")

    def add(servicer, server):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "tastyplat.demo.v1.DemoService", {"Lookup": grpc.unary_unary_rpc_method_handler(lookup)}),))

    async def wire():
        return [ServiceRegistration(add, object(), "tastyplat.demo.v1.DemoService")]

    settings = exit_on_settings_error(Settings, os.environ)
    serve(settings, wire, on_ready=lambda server: print("READY", server.port, flush=True))
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["PEER_AUTH_MODE"] = "off"  # the process lifecycle is under test here; peer auth has its own tests
    env.update(extra)
    return env


async def test_missing_setting_stops_start_up_naming_the_variable() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MAIN, env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "configuration error: missing required setting DEMO_PORT" in err.decode()


async def test_process_serves_then_exits_cleanly_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        MAIN,
        env=_env(DEMO_PORT="0", DEMO_HOST="127.0.0.1", DEMO_DRAIN_SECONDS="0.1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        assert ready[0] == "READY"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ready[1]}") as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    messages = [json.loads(line)["message"] for line in err.decode().splitlines() if line.startswith("{")]
    assert messages[-3:] == ["signal received, shutting down", "shutting down", "stopped"]
