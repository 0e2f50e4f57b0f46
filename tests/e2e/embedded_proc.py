"""The embedded platform as a real subprocess on free ports, as users run it (helpers for e2e tests)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


_LISTEN_PORTS = range(20000, 32000)  # below Linux's ephemeral range, so no outgoing connection holds one


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (tests never use the fixed ports `make run` uses).

    Port 0 would hand out an ephemeral port, which an outgoing connection in TIME_WAIT can still hold when
    Envoy binds it a moment later; listening ports are drawn below that range instead, and never the same one
    twice in a test session (a topology asks for about twenty at once).
    """
    for _ in range(500):
        port = random.choice(_LISTEN_PORTS)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port found")


def tool(name: str) -> str:
    """Path of a tool installed in the virtualenv (grpcurl, envoy, buf)."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    assert found, f"{name} is not installed; run `make test`, which installs it"
    return found


@dataclasses.dataclass
class EmbeddedPlatform:
    """A running `python -m services.embedded` and where to reach it."""

    process: subprocess.Popen[str]
    grpc_port: int
    gateway_port: int
    admin_port: int
    run_dir: pathlib.Path
    ready_line: str

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_base(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
        """Send `sig` and wait; return the exit code and the rest of stdout."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out


def start_embedded(run_dir: pathlib.Path, timeout: float = 120) -> EmbeddedPlatform:
    """Start the embedded platform on free ports and wait for its READY line."""
    grpc_port, gateway_port, https_port, admin_port = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "TASTYPLAT_GRPC_PORT": str(grpc_port),
        "TASTYPLAT_GATEWAY_PORT": str(gateway_port),
        "TASTYPLAT_GATEWAY_HTTPS_PORT": str(https_port),
        "TASTYPLAT_GATEWAY_ADMIN_PORT": str(admin_port),
        "TASTYPLAT_RUN_DIR": str(run_dir),
        "TASTYPLAT_LOG_LEVEL": "WARNING",
    }
    with open(run_dir / "stderr.log", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.embedded"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("READY"):
            return EmbeddedPlatform(process, grpc_port, gateway_port, admin_port, run_dir, line.strip())
        if not line and process.poll() is not None:
            break
    process.kill()
    process.communicate()  # waits and closes the stdout pipe
    raise AssertionError(f"no READY line; stderr:\n{(run_dir / 'stderr.log').read_text()[-4000:]}")


PASSWORD = "correct horse battery staple 42"


def sign_up(rest_base: str, *, prefix: str = "trader", password: str = PASSWORD, with_account: bool = False) -> dict:
    """A new user through the gateway's REST API: sign up, log in.

    Returns ``user_id``, ``email``, the tokens (``access_token``, ``refresh_token``...) and ``headers`` (the
    bearer authorization); with ``with_account``, also ``account``: the number of the user's first (paper) account.
    """
    email = f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=rest_base, timeout=60) as client:
        created = client.post("/v1/users", json={"email": email, "password": password})
        assert created.status_code == 200, created.text
        login = client.post("/v1/auth:login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        body = login.json()
        user = {"user_id": body["user_id"], "email": email, **body["tokens"],
                "headers": {"authorization": f"Bearer {body['tokens']['access_token']}"}}
        if with_account:
            accounts = client.get("/v1/accounts", headers=user["headers"])
            assert accounts.status_code == 200, accounts.text
            user["account"] = accounts.json()["accounts"][0]["account_number"]
    return user
