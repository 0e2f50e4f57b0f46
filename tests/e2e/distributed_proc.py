"""The distributed platform (`python -m services.distributed`) as a real subprocess on free ports, isolated per run.

Each run gets its own RabbitMQ vhost, PostgreSQL schemas (a prefix in the `test` database) and Redis key prefix,
all removed afterwards, so runs never see each other's queues, rows or cached quotes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping

from embedded_proc import ROOT, free_port

from services.platform.catalogue import CATALOGUE

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclasses.dataclass
class DistributedPlatform:
    """A running launcher, its service processes and where to reach them."""

    process: subprocess.Popen[str]
    run_dir: pathlib.Path
    ready_line: str
    gateway_port: int
    admin_port: int
    ports: dict[str, int]
    run_id: str
    vhost: str
    metrics_ports: dict[str, int]

    @property
    def rest_base(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def gateway_target(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def process_table(self) -> list[dict]:
        return json.loads((self.run_dir / "processes.json").read_text())

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as response:  # noqa: S310
            return response.read().decode()

    def cluster_counter(self, cluster: str, counter: str) -> int:
        """An Envoy cluster statistic, e.g. ``cluster_counter("tastyplat_user", "upstream_rq_total")``."""
        name = f"cluster.{cluster}.{counter}"
        for line in self.admin(f"/stats?filter=^{name}$").splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def instance(self, name: str) -> dict:
        """The process table row of one instance: ``"marketdata"`` for the first replica, ``"marketdata-1"``..."""
        (row,) = [row for row in self.process_table() if row["name"] == name]
        return row

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send ``sig`` (SIGKILL by default) to one service instance; the launcher leaves it down. Its pid."""
        pid = self.instance(name)["pid"]
        os.kill(pid, sig)
        return pid

    def host_stats(self, cluster: str) -> dict[str, dict[str, str]]:
        """Envoy's per-host view of a cluster from ``/clusters``: ``{"127.0.0.1:8082": {"rq_active": "2",
        "health_flags": "healthy", ...}}``."""
        hosts: dict[str, dict[str, str]] = {}
        for line in self.admin("/clusters").splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == cluster and ":" in parts[1]:
                hosts.setdefault(parts[1], {})[parts[2]] = parts[3]
        return hosts

    def metrics(self, service: str) -> str:
        """The Prometheus text exposition of a service's first instance."""
        url = f"http://127.0.0.1:{self.metrics_ports[service]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.read().decode()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
        """Send `sig` to the launcher and wait; return its exit status and the rest of its stdout."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out


def _rabbitmqctl(*args: str) -> None:
    tool = shutil.which("rabbitmqctl")
    assert tool, "rabbitmqctl is not installed (Debian's rabbitmq-server provides it); run `make backends`"
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"rabbitmqctl {' '.join(args)} failed: {result.stderr}"


def start_distributed(
    run_dir: pathlib.Path,
    *,
    services: tuple[str, ...] = tuple(e.name for e in CATALOGUE),
    replicas: Mapping[str, int] | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 150,
) -> DistributedPlatform:
    """Start the launcher on free ports with a fresh vhost, schema prefix and cache prefix; wait for READY."""
    run_id = uuid.uuid4().hex[:10]
    vhost = f"e2e_{run_id}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    ports = {name: free_port() for name in services}
    metrics = {f"{name}_metrics": free_port() for name in services}
    gateway = {"gateway": free_port(), "gateway_https": free_port(), "gateway_admin": free_port()}
    pinned = {**ports, **metrics, **gateway}
    env = {
        **os.environ,
        "TASTYPLAT_RUN_DIR": str(run_dir),
        "TASTYPLAT_SERVICES": ",".join(services),
        "TASTYPLAT_PORTS": ",".join(f"{k}={v}" for k, v in pinned.items()),
        "TASTYPLAT_REPLICAS": ",".join(f"{k}={v}" for k, v in (replicas or {}).items()),
        "TASTYPLAT_DATABASE_URL": POSTGRES_DSN,
        "TASTYPLAT_CREATE_DATABASE": "false",
        "TASTYPLAT_SCHEMA_PREFIX": f"e2e_{run_id}",
        "TASTYPLAT_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "TASTYPLAT_REDIS_URL": REDIS_URL,
        "TASTYPLAT_CACHE_PREFIX": f"e2e{run_id}",
        "TASTYPLAT_LOG_LEVEL": "WARNING",
        "TASTYPLAT_GRACE_SECONDS": "2",
        "TASTYPLAT_DRAIN_SECONDS": "0.2",
        "TASTYPLAT_TRACES": "none",
        **(extra_env or {}),
    }
    with open(run_dir / "launcher.log", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.distributed"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("READY"):
            return DistributedPlatform(
                process, run_dir, line.strip(), gateway["gateway"], gateway["gateway_admin"], ports, run_id, vhost,
                {name.removesuffix("_metrics"): port for name, port in metrics.items()},
            )
        if not line and process.poll() is not None:
            break
    process.kill()
    process.communicate()  # waits and closes the stdout pipe
    cleanup(run_id, vhost)
    raise AssertionError(f"no READY line; launcher log:\n{(run_dir / 'launcher.log').read_text()[-6000:]}")


def cleanup(run_id: str, vhost: str) -> None:
    """Drop the run's schemas, Redis keys and vhost."""
    import asyncio

    import asyncpg
    import redis

    async def drop_schemas() -> None:
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            rows = await connection.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"e2e\\_{run_id}\\_%"
            )
            for row in rows:
                await connection.execute(f'DROP SCHEMA IF EXISTS "{row["nspname"]}" CASCADE')
        finally:
            await connection.close()

    asyncio.run(drop_schemas())
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"e2e{run_id}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    _rabbitmqctl("delete_vhost", vhost)
