"""Where each service process of the distributed mode listens, and the environment it is started with."""

from __future__ import annotations

import dataclasses
import pathlib
import urllib.parse
from collections.abc import Mapping
from typing import ClassVar

from services.distributed.secrets import DevSecrets
from services.platform.catalogue import CATALOGUE, ServiceEntry, entry
from services.platform.settings import InvalidSettingError, Settings, env

__all__ = ["DistributedSettings", "Instance", "Topology", "build_topology", "service_environment"]

# Variables the launcher owns for each instance: the caller's environment cannot move a process off the port
# Envoy routes to.
_OWNED = ("HOST", "PORT")
# A service's Prometheus endpoint listens on its gRPC port plus this (9081 for broker's 8081), unless overridden.
METRICS_PORT_OFFSET = 1000
# Extra replicas of a service listen on its port plus this times the replica index (8082, 8182, 8282...).
REPLICA_PORT_STRIDE = 100


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistributedSettings(Settings):
    """Settings of ``python -m services.distributed`` (``make run-distributed``), from ``TASTYPLAT_*``.

    Attributes:
        run_dir: Logs, the generated Envoy config, certificates and the development secrets live here.
        services: Services to start (all eight by default).
        port_offset: Added to every default port (services, gateway), so two platforms can share a machine.
        ports: ``name=port`` overrides for services, their metrics endpoints (``<name>_metrics``) and
            ``gateway``, ``gateway_https``, ``gateway_admin``.
        replicas: ``name=count`` for services to run more than once (Envoy balances across them).
        host: Address the service processes bind and are dialled on.
        gateway_host: Address Envoy's listeners bind.
        database_url: PostgreSQL DSN shared by every service (each keeps its own schema).
        create_database: Create the database of ``database_url`` when it does not exist.
        schema_prefix: Prefix of every service's schema (tests isolate runs with it); services' defaults if empty.
        rabbitmq_url: AMQP URL (vhost included) shared by every service.
        redis_url: Redis URL shared by every service.
        cache_prefix: Prefix of the services' Redis keys.
        log_level: Log level of every process.
        grace_seconds: Grace each server gives in-flight calls on SIGTERM.
        drain_seconds: Pause between NOT_SERVING and stop, so Envoy's health checks notice.
        ready_timeout_seconds: How long start-up may take before the launcher gives up.
        traces: ``console`` (spans in each service's log), ``otlp`` (to ``otlp_endpoint``) or ``none``.
        otlp_endpoint: OTLP/gRPC collector, e.g. ``http://127.0.0.1:4317``; setting it means ``traces=otlp``.
        metrics: Serve Prometheus ``/metrics`` from every service (port + 1000 unless overridden).
    """

    env_prefix: ClassVar[str] = "TASTYPLAT_"
    run_dir: str = env("RUN_DIR", default=".run/distributed")
    services: tuple[str, ...] = env("SERVICES", default=tuple(e.name for e in CATALOGUE))
    port_offset: int = env("PORT_OFFSET", default=0, ge=-8000, le=50000)
    ports: tuple[str, ...] = env("PORTS", default=(), help="name=port[,name=port...]")
    replicas: tuple[str, ...] = env("REPLICAS", default=(), help="name=count[,name=count...]")
    host: str = env("SERVICE_HOST", default="127.0.0.1")
    gateway_host: str = env("GATEWAY_HOST", default="127.0.0.1")
    database_url: str = env("DATABASE_URL", default="postgresql://postgres@127.0.0.1:5432/tastyplat")
    create_database: bool = env("CREATE_DATABASE", default=True)
    schema_prefix: str = env("SCHEMA_PREFIX", default="")
    rabbitmq_url: str = env("RABBITMQ_URL", default="amqp://guest:guest@127.0.0.1:5672/")
    redis_url: str = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
    cache_prefix: str = env("CACHE_PREFIX", default="tastyplat")
    log_level: str = env("LOG_LEVEL", default="INFO")
    grace_seconds: float = env("GRACE_SECONDS", default=5.0, ge=0.0)
    drain_seconds: float = env("DRAIN_SECONDS", default=0.5, ge=0.0)
    ready_timeout_seconds: float = env("READY_TIMEOUT_SECONDS", default=120.0, ge=1.0)
    traces: str = env("TRACES", default="console", help="console, otlp or none")
    otlp_endpoint: str | None = env("OTLP_ENDPOINT", default=None, help="http://host:4317")
    metrics: bool = env("METRICS", default=True)

    def __post_init__(self) -> None:
        known = {e.name for e in CATALOGUE}
        unknown = sorted(set(self.services) - known)
        if unknown or not self.services:
            raise InvalidSettingError(self.variable_name("services"), f"unknown services {unknown}; known: {sorted(known)}")
        if self.traces not in ("console", "otlp", "none"):
            raise InvalidSettingError(self.variable_name("traces"), "expected console, otlp or none")
        metrics_names = {f"{name}_metrics" for name in known}
        for field, allowed in (("ports", known | metrics_names | set(_GATEWAY_PORTS)), ("replicas", known)):
            for name, value in _pairs(getattr(self, field), self.variable_name(field)).items():
                if name not in allowed:
                    raise InvalidSettingError(self.variable_name(field), f"unknown name {name!r}")
                if not (1 <= value <= (65535 if field == "ports" else 16)):
                    raise InvalidSettingError(self.variable_name(field), f"{name}={value} is out of range")
        if self.schema_prefix and not self.schema_prefix.replace("_", "").isalnum():
            raise InvalidSettingError(self.variable_name("schema_prefix"), "letters, digits and '_' only")

    @property
    def run_path(self) -> pathlib.Path:
        """``run_dir`` as an absolute path."""
        return pathlib.Path(self.run_dir).resolve()


_GATEWAY_PORTS = {"gateway": 8080, "gateway_https": 8443, "gateway_admin": 9901}


def _pairs(items: tuple[str, ...], variable: str) -> dict[str, int]:
    pairs: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise InvalidSettingError(variable, f"expected name=number, got {item!r}")
        pairs[name.strip()] = int(value)
    return pairs


@dataclasses.dataclass(frozen=True)
class Instance:
    """One process of one service.

    Attributes:
        service: Its catalogue entry.
        index: Replica index (0 for the first).
        count: Replicas of the service.
        host: Address it binds and is dialled on.
        port: Its gRPC port.
    """

    service: ServiceEntry
    index: int
    count: int
    host: str
    port: int
    metrics_port: int | None = None

    @property
    def name(self) -> str:
        """``marketdata`` for the first replica, ``marketdata-1`` for the second..."""
        return self.service.name if self.index == 0 else f"{self.service.name}-{self.index}"

    @property
    def address(self) -> str:
        """``host:port`` a client dials."""
        return f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Topology:
    """Every process of a distributed run and the gateway's ports."""

    instances: tuple[Instance, ...]
    gateway_port: int
    gateway_https_port: int
    gateway_admin_port: int

    def of(self, service: str) -> tuple[Instance, ...]:
        """The instances of ``service`` (empty when it is not started)."""
        return tuple(i for i in self.instances if i.service.name == service)

    def address(self, service: str) -> str:
        """Where a peer dials ``service``: its first instance (a service that was not started: its default port)."""
        found = self.of(service)
        return found[0].address if found else f"127.0.0.1:{entry(service).port}"


def build_topology(settings: DistributedSettings) -> Topology:
    """Assign every instance its port: catalogue port + offset, unless overridden; replicas 100 apart."""
    ports = _pairs(settings.ports, settings.variable_name("ports"))
    replicas = _pairs(settings.replicas, settings.variable_name("replicas"))
    instances = []
    for service in CATALOGUE:
        if service.name not in settings.services:
            continue
        base = ports.get(service.name, service.port + settings.port_offset)
        metrics = ports.get(f"{service.name}_metrics", base + METRICS_PORT_OFFSET)
        count = replicas.get(service.name, 1)
        for index in range(count):
            step = REPLICA_PORT_STRIDE * index
            instances.append(
                Instance(service, index, count, settings.host, base + step, metrics + step if settings.metrics else None)
            )
    gateway = {name: ports.get(name, port + settings.port_offset) for name, port in _GATEWAY_PORTS.items()}
    taken = [i.port for i in instances] + [i.metrics_port for i in instances if i.metrics_port] + list(gateway.values())
    clashes = sorted({p for p in taken if taken.count(p) > 1})
    if clashes:
        raise InvalidSettingError(settings.variable_name("ports"), f"ports used twice: {clashes}")
    return Topology(tuple(instances), gateway["gateway"], gateway["gateway_https"], gateway["gateway_admin"])


def schema_of(settings: DistributedSettings, service: str) -> str | None:
    """The schema a service keeps its tables in, when the run prefixes schemas; None leaves its default."""
    return f"{settings.schema_prefix}_{service}" if settings.schema_prefix else None


def _with_database(url: str, database: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


def service_environment(
    instance: Instance,
    *,
    topology: Topology,
    settings: DistributedSettings,
    secrets: DevSecrets,
    inherited: Mapping[str, str],
) -> dict[str, str]:
    """The environment ``python -m services.<svc>`` is started with.

    Every service reads only the ``<SVC>_*`` variables its settings declare, so each gets the conventional
    names (``DATABASE_URL``, ``RABBITMQ_URL``, ``<PEER>_TARGET``...) and ignores those it has no use for. A
    variable already set in ``inherited`` wins (so ``NOTIFICATION_CHANNELS=sms,stream make run-distributed``
    works), except the address and port, which the gateway's routes depend on. Replicas of a service get the same
    environment: the delta monitor's share the watched accounts by leases, not by a per-replica setting.
    """
    name = instance.service.name
    prefix = f"{name.upper()}_"
    own: dict[str, str] = {
        "HOST": instance.host,
        "PORT": str(instance.port),
        "LOG_LEVEL": settings.log_level,
        "GRACE_SECONDS": str(settings.grace_seconds),
        "DRAIN_SECONDS": str(settings.drain_seconds),
        "DATABASE_URL": settings.database_url,
        "RABBITMQ_URL": settings.rabbitmq_url,
        "REDIS_URL": settings.redis_url,
        "CACHE_PREFIX": settings.cache_prefix,
        "SECRET_KEYS": secrets.secret_keys[name],
        "AUDIT_SIGNING_KEY": secrets.audit_signing_keys[name],
    }
    schema = schema_of(settings, name)
    if schema is not None:
        own["DATABASE_SCHEMA"] = own["DB_SCHEMA"] = schema
    for peer in CATALOGUE:
        if peer.name != name:
            own[f"{peer.name.upper()}_TARGET"] = own[f"{peer.name.upper()}_SERVICE_TARGET"] = topology.address(peer.name)
    own.update(_SPECIFIC.get(name, {}))
    environment = {f"{prefix}{key}": value for key, value in own.items()}
    for key in list(environment):
        if key in inherited and key[len(prefix) :] not in _OWNED:
            environment[key] = inherited[key]
    peer_auth = {
        "PEER_AUTH_KEYS": secrets.peer_auth_keys,
        "PEER_AUTH_KEY_ID": secrets.peer_auth_key_id,
        "PEER_AUTH_DATABASE_URL": settings.database_url,
        "PEER_AUTH_DATABASE_SCHEMA": f"{settings.schema_prefix}_peer_auth" if settings.schema_prefix else "peer_auth",
        "PEER_AUTH_USER_SERVICE_TARGET": topology.address("user"),
    }
    for key, value in peer_auth.items():
        environment[key] = inherited.get(key, value)
    environment.update(_telemetry_environment(instance, settings))
    return environment


def _telemetry_environment(instance: Instance, settings: DistributedSettings) -> dict[str, str]:
    # Read by services.platform.telemetry, which every process is started through.
    traces = "otlp" if settings.otlp_endpoint else settings.traces
    environment = {
        "OTEL_TRACES_EXPORTER": traces,
        "OTEL_SERVICE_NAME": instance.service.name,
        "OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={instance.name}",
        "TASTYPLAT_METRICS_HOST": instance.host,
    }
    if settings.otlp_endpoint:
        environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = settings.otlp_endpoint
    if instance.metrics_port is not None:
        environment["TASTYPLAT_METRICS_PORT"] = str(instance.metrics_port)
    return environment


# What the development platform needs beyond the conventional variables: the paper broker (no Tastytrade
# credentials), the simulator feed, one proxy hop (Envoy) in front of the user service.
_SPECIFIC: dict[str, dict[str, str]] = {
    "broker": {"ENVIRONMENTS": "paper", "AUTO_LINK_PAPER": "true", "STORAGE": "postgres"},
    "user": {"TRUSTED_PROXY_HOPS": "1", "CODE_DELIVERY": "bus", "STORAGE": "postgres"},
    "marketdata": {"FEED": "simulator", "BUS": "rabbitmq", "CACHE": "redis", "HISTORY": "postgres"},
}


def maintenance_url(database_url: str) -> str:
    """The DSN of the ``postgres`` maintenance database on the same server (to create ``database_url``'s)."""
    return _with_database(database_url, "postgres")


def database_name(database_url: str) -> str:
    """The database named by a DSN."""
    return urllib.parse.urlsplit(database_url).path.lstrip("/") or "postgres"
