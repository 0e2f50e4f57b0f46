"""The distributed launcher's plan: ports, replicas, each process's environment, the development secrets file."""

from __future__ import annotations

import pathlib
import stat

import pytest

from services.distributed.secrets import load_or_create
from services.distributed.topology import DistributedSettings, build_topology, service_environment
from services.platform.catalogue import CATALOGUE
from services.platform.settings import InvalidSettingError


def _settings(**environ: str) -> DistributedSettings:
    return DistributedSettings.from_env({f"TASTYPLAT_{k}": v for k, v in environ.items()})


def test_default_ports_are_the_catalogue_ports() -> None:
    topology = build_topology(_settings())
    assert {i.service.name: i.port for i in topology.instances} == {e.name: e.port for e in CATALOGUE}
    assert (topology.gateway_port, topology.gateway_https_port, topology.gateway_admin_port) == (8080, 8443, 9901)


def test_port_offset_moves_every_port_and_overrides_win() -> None:
    topology = build_topology(_settings(PORT_OFFSET="1000", PORTS="user=23000,gateway_admin=23001"))
    ports = {i.service.name: i.port for i in topology.instances}
    assert ports["user"] == 23000 and ports["broker"] == 9081
    assert (topology.gateway_port, topology.gateway_admin_port) == (9080, 23001)


def test_replicas_listen_a_hundred_ports_apart_with_the_same_settings(tmp_path: pathlib.Path) -> None:
    topology = build_topology(_settings(REPLICAS="deltamonitor=2"))
    first, second = topology.of("deltamonitor")
    assert (first.port, second.port) == (8086, 8186)
    assert (first.name, second.name) == ("deltamonitor", "deltamonitor-1")
    secrets = load_or_create(tmp_path / "secrets.json", [e.name for e in CATALOGUE])
    envs = [service_environment(i, topology=topology, settings=_settings(), secrets=secrets, inherited={})
            for i in (first, second)]
    assert (envs[0]["DELTAMONITOR_PORT"], envs[1]["DELTAMONITOR_PORT"]) == ("8086", "8186")
    # The replicas share the watched accounts by partition leases: no per-replica shard setting.
    assert {k: v for k, v in envs[0].items() if "PORT" not in k and "OTEL" not in k} == {
        k: v for k, v in envs[1].items() if "PORT" not in k and "OTEL" not in k
    }


def test_a_port_used_twice_is_refused() -> None:
    with pytest.raises(InvalidSettingError, match="TASTYPLAT_PORTS.*8084"):
        build_topology(_settings(PORTS="broker=8084"))


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SERVICES", "user,nope"), ("PORTS", "user=abc"), ("PORTS", "nope=1"), ("REPLICAS", "user=0"), ("SCHEMA_PREFIX", "a-b")],
)
def test_bad_settings_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(InvalidSettingError, match=f"TASTYPLAT_{variable}"):
        _settings(**{variable: value})


def test_environment_points_peers_at_their_ports_and_backends_at_the_machine(tmp_path: pathlib.Path) -> None:
    settings = _settings(PORTS="user=21084", SCHEMA_PREFIX="run1")
    topology = build_topology(settings)
    (deltamonitor,) = topology.of("deltamonitor")
    secrets = load_or_create(tmp_path / "secrets.json", [e.name for e in CATALOGUE])
    env = service_environment(deltamonitor, topology=topology, settings=settings, secrets=secrets, inherited={})
    assert env["DELTAMONITOR_PORT"] == "8086" and env["DELTAMONITOR_HOST"] == "127.0.0.1"
    assert env["DELTAMONITOR_USER_TARGET"] == "127.0.0.1:21084"
    assert env["DELTAMONITOR_BROKER_TARGET"] == "127.0.0.1:8081"
    assert env["DELTAMONITOR_DB_SCHEMA"] == "run1_deltamonitor"
    assert env["DELTAMONITOR_RABBITMQ_URL"] == settings.rabbitmq_url
    assert env["DELTAMONITOR_SECRET_KEYS"] == secrets.secret_keys["deltamonitor"]
    assert env["PEER_AUTH_KEYS"] == secrets.peer_auth_keys and env["PEER_AUTH_DATABASE_SCHEMA"] == "run1_peer_auth"


def test_the_callers_environment_wins_except_for_address_and_port(tmp_path: pathlib.Path) -> None:
    settings = _settings()
    topology = build_topology(settings)
    (notification,) = topology.of("notification")
    secrets = load_or_create(tmp_path / "secrets.json", [e.name for e in CATALOGUE])
    inherited = {"NOTIFICATION_LOG_LEVEL": "DEBUG", "NOTIFICATION_PORT": "1"}
    env = service_environment(notification, topology=topology, settings=settings, secrets=secrets, inherited=inherited)
    assert env["NOTIFICATION_LOG_LEVEL"] == "DEBUG"
    assert env["NOTIFICATION_PORT"] == "8087"


def test_secrets_are_generated_once_private_and_reused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "secrets.json"
    first = load_or_create(path, ["user", "broker"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create(path, ["user", "broker", "calculator"])
    assert again.secret_keys["user"] == first.secret_keys["user"]
    assert again.audit_signing_keys["broker"] == first.audit_signing_keys["broker"]
    assert again.peer_auth_keys == first.peer_auth_keys
    assert "calculator" in again.secret_keys
    assert first.secret_keys["user"] != first.secret_keys["broker"]
    assert "1:" not in repr(first)


def test_a_foreign_secrets_file_is_refused_not_overwritten(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text('{"something": "else"}')
    with pytest.raises(ValueError, match="not a secrets file"):
        load_or_create(path, ["user"])
    assert path.read_text() == '{"something": "else"}'
