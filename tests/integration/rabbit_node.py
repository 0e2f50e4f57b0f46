"""A private RabbitMQ node for tests that stop and start the broker (never the shared one on 5672)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.embedded_proc import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class RabbitNode:
    """A RabbitMQ node of its own on a free loopback port, run as the `rabbitmq` user like the packaged one."""

    def __init__(self) -> None:
        self.name = f"tastyplat-restart-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.base = tempfile.mkdtemp(prefix="tastyplat-rabbit-")
        self.pid_file = os.path.join(self.base, "mnesia", f"{self.name}.pid")
        for sub in ("mnesia", "log"):
            os.makedirs(os.path.join(self.base, sub))
        with open(os.path.join(self.base, "rabbitmq.conf"), "w") as conf:
            conf.write(f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n")
        with open(os.path.join(self.base, "enabled_plugins"), "w") as plugins:
            plugins.write("[].\n")
        os.chmod(self.base, 0o755)
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for root, dirs, files in os.walk(self.base):
            for entry in dirs + files:
                shutil.chown(os.path.join(root, entry), "rabbitmq", "rabbitmq")
        self.env = {
            "HOME": "/var/lib/rabbitmq",  # the packaged node's Erlang cookie, which rabbitmqctl uses too
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.base, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.base, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.base, "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.base, "enabled_plugins"),
        }

    def _ctl(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rabbitmqctl", "-n", self.name, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def start(self) -> None:
        """`rabbitmq-server -detached`, then wait until the node has booted (bounded)."""
        env = " ".join(f"{key}={value}" for key, value in self.env.items())
        subprocess.run(["runuser", "-u", "rabbitmq", "--", "sh", "-c", f"env {env} {SERVER} -detached"],
                       check=True, timeout=30)
        deadline = time.monotonic() + 90
        while True:
            # await_startup fails at once while the node is not yet registered with epmd, so it is retried.
            result = self._ctl("await_startup", "--timeout", "30", timeout=40)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"RabbitMQ node {self.name} did not start: {result.stderr[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        """`rabbitmqctl stop` with the pid file: returns once the node's OS process has exited."""
        result = self._ctl("stop", self.pid_file, timeout=90)
        assert result.returncode == 0, result.stderr[-2000:]

    def _is_node(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                return f"RABBITMQ_NODENAME={self.name}".encode() in handle.read().split(b"\0")
        except OSError:
            return False

    def destroy(self) -> None:
        """Stop the node if it still runs (killing its process if it will not stop) and delete its data."""
        pid = 0
        with contextlib.suppress(OSError, ValueError):
            with open(self.pid_file) as handle:
                pid = int(handle.read().strip())
        if pid:
            try:
                stopped = self._ctl("stop", self.pid_file, timeout=90).returncode == 0
            except subprocess.TimeoutExpired:
                stopped = False
            if not stopped and self._is_node(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def rabbit() -> Iterator[RabbitNode]:
    """A started private RabbitMQ node, stopped and deleted after the test (also when it fails)."""
    node = RabbitNode()
    try:
        node.start()
        yield node
    finally:
        node.destroy()
