"""Generate the kustomize base (deploy/kubernetes/base) from the service catalogue and the gateway generator.

Eight services differ only in name, port, backends and peers, so their manifests are written from the tables
below rather than by hand, and the Envoy config in the gateway's ConfigMap comes from ``gateway/config.py``
(the same generator ``make run`` and ``make run-distributed`` use). The output is committed;
``tests/integration/test_deploy_manifests.py`` fails when it is out of date. Run from the repository root:

    .venv/bin/python deploy/kubernetes/generate.py
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from typing import Any

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.certs import Pki  # noqa: E402
from gateway.config import Endpoint, GatewaySettings, PackageUpstream, build_config, default_descriptor_set  # noqa: E402
from services.platform.catalogue import CATALOGUE  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
BASE = HERE / "base"
NAMESPACE = "tastyplat"
IMAGE = "tastyplat"
PART_OF = "tastyplat"
UID = 10001
# Where the image keeps the descriptor set (deploy/build.sh) and where the gateway pod mounts its files.
DESCRIPTOR_IN_IMAGE = "/opt/tastyplat/share/tastyplat/descriptor_set.pb"
ENVOY_CONFIG_DIR = "/etc/envoy"
ENVOY_TLS_DIR = "/etc/envoy/tls"
GATEWAY_HTTP, GATEWAY_HTTPS, ENVOY_ADMIN = 8080, 8443, 9901
METRICS_PORT = 9464
OTLP_PORT = 4317
# A server stops in DRAIN (health NOT_SERVING, Envoy and kubelet notice) + GRACE (in-flight calls finish);
# Kubernetes must wait longer than both before it sends SIGKILL.
GRACE_SECONDS, DRAIN_SECONDS = 20, 5
TERMINATION_GRACE_SECONDS = 45

BACKEND_PORTS = {"postgres": [5432], "redis": [6379], "rabbitmq": [5671, 5672]}


@dataclasses.dataclass(frozen=True)
class Profile:
    """What one service needs beyond its port: backends, peers it calls, the outside world, its size."""

    backends: tuple[str, ...]
    peers: tuple[str, ...]
    internet_ports: tuple[int, ...] = ()
    cpu: tuple[str, str] = ("250m", "1")
    memory: tuple[str, str] = ("256Mi", "512Mi")
    min_replicas: int = 2
    max_replicas: int = 10


# Peers are the services whose ports a service dials (its settings' *_TARGET variables and its adapters/peers.py);
# tests/integration/test_deploy_manifests.py checks the table against the services' settings.
PROFILES: dict[str, Profile] = {
    "broker": Profile(("postgres",), ("user",), internet_ports=(443,)),
    "marketdata": Profile(("postgres", "redis", "rabbitmq"), ("user",), internet_ports=(443,), memory=("384Mi", "768Mi")),
    "portfolio": Profile(("postgres", "rabbitmq"), ("user", "broker", "marketdata", "calculator")),
    "user": Profile(("postgres", "rabbitmq"), (), memory=("256Mi", "512Mi")),
    "calculator": Profile((), ("user",), cpu=("500m", "2"), memory=("256Mi", "1Gi")),
    # Replicas share the watched accounts by partition leases in PostgreSQL (services/deltamonitor/README.md).
    "deltamonitor": Profile(("postgres", "rabbitmq"), ("user", "broker"), cpu=("500m", "2"), memory=("384Mi", "1Gi")),
    "notification": Profile(("postgres", "rabbitmq"), ("user",), internet_ports=(443, 465, 587)),
    "reporting": Profile(("postgres",), ("user", "broker", "deltamonitor", "portfolio"), memory=("384Mi", "1Gi")),
}


def _labels(name: str, component: str = "service") -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": component}


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def _meta(name: str, component: str = "service") -> dict[str, Any]:
    return {"name": name, "labels": _labels(name, component)}


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _service_account(name: str, component: str = "service") -> dict[str, Any]:
    # No pod talks to the Kubernetes API: no token mounted.
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, component),
            "automountServiceAccountToken": False}


def _config_map(name: str, port: int) -> dict[str, Any]:
    prefix = f"{name.upper()}_"
    data = {
        f"{prefix}HOST": "0.0.0.0",
        f"{prefix}PORT": str(port),
        f"{prefix}GRACE_SECONDS": str(GRACE_SECONDS),
        f"{prefix}DRAIN_SECONDS": str(DRAIN_SECONDS),
        f"{prefix}LOG_LEVEL": "INFO",
        "OTEL_SERVICE_NAME": name,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://otel-collector.monitoring:{OTLP_PORT}",
        "OTEL_TRACES_SAMPLER_ARG": "0.05",
        "TASTYPLAT_METRICS_PORT": str(METRICS_PORT),
        # core_ext's American kernel splits large arrays over this many threads: no more than the pod's CPU
        # limit (os.cpu_count() would see the node's cores and the threads would be throttled by the quota).
        "TASTYPLAT_CORE_THREADS": str(max(1, int(float(PROFILES[name].cpu[1])))),
    }
    for peer in PROFILES[name].peers:
        target = f"{peer}:{_port(peer)}"
        data[f"{prefix}{peer.upper()}_TARGET"] = target
        data[f"{prefix}{peer.upper()}_SERVICE_TARGET"] = target
    data.update({f"{prefix}{k}": v for k, v in _SPECIFIC.get(name, {}).items()})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"{name}-config"), "data": dict(sorted(data.items()))}


# Non-secret settings a service needs in the cluster beyond the conventional ones.
_SPECIFIC: dict[str, dict[str, str]] = {
    "broker": {"STORAGE": "postgres", "ENVIRONMENTS": "production"},
    "user": {"STORAGE": "postgres", "CODE_DELIVERY": "bus", "TRUSTED_PROXY_HOPS": "1"},
    "marketdata": {"FEED": "dxlink", "BUS": "rabbitmq", "CACHE": "redis", "HISTORY": "postgres"},
    "notification": {"CHANNELS": "sms,email,push,stream"},
}


def _port(name: str) -> int:
    return next(e.port for e in CATALOGUE if e.name == name)


def _headless_service(name: str, port: int) -> dict[str, Any]:
    # Headless: a DNS lookup returns every ready pod, so Envoy (STRICT_DNS) and gRPC clients balance calls
    # across replicas instead of pinning one long-lived HTTP/2 connection to one pod behind a virtual IP.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name),
        "spec": {
            "clusterIP": "None",
            "selector": _selector(name),
            "ports": [
                {"name": "grpc", "port": port, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def _grpc_probe(port: int, *, period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
    return {"grpc": {"port": port, "service": ""}, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failures}


def _deployment(name: str, port: int, profile: Profile) -> dict[str, Any]:
    container = {
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        # The telemetry runner installs tracing and /metrics from the environment, then runs `-m services.<svc>`.
        "args": ["services.platform.telemetry", f"services.{name}"],
        "ports": [
            {"name": "grpc", "containerPort": port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "envFrom": [{"configMapRef": {"name": f"{name}-config"}}, {"secretRef": {"name": f"{name}-secrets"}}],
        "env": [{"name": "OTEL_RESOURCE_ATTRIBUTES",
                 "value": "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)"}],
        # Health SERVING only once the adapters connected (schema migrations may take a while on first start).
        "startupProbe": _grpc_probe(port, period=2, failures=60),
        "readinessProbe": _grpc_probe(port, period=5, failures=2),
        "livenessProbe": _grpc_probe(port, period=10, failures=3, timeout=5),
        "resources": {
            "requests": {"cpu": profile.cpu[0], "memory": profile.memory[0]},
            "limits": {"cpu": profile.cpu[1], "memory": profile.memory[1]},
        },
        "securityContext": _security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    container["env"] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        *container["env"],
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name),
        "spec": {
            "replicas": profile.min_replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _selector(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(name)},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "securityContext": _pod_security_context(),
                    "topologySpreadConstraints": [
                        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                         "labelSelector": {"matchLabels": _selector(name)}}
                    ],
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def _pdb(name: str, component: str = "service") -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(name, component),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(name)}}}


def _hpa(name: str, profile: Profile, component: str = "service") -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(name, component),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": profile.min_replicas,
            "maxReplicas": profile.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            # Market-open bursts: scale up at once, scale down slowly.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def service_documents(name: str) -> list[dict[str, Any]]:
    """The manifests of one service: ServiceAccount, ConfigMap, Service, Deployment, PDB, HPA."""
    port, profile = _port(name), PROFILES[name]
    return [_service_account(name), _config_map(name, port), _headless_service(name, port),
            _deployment(name, port, profile), _pdb(name), _hpa(name, profile)]


# ------------------------------------------------------------------------------------------------- gateway


def envoy_config() -> dict[str, Any]:
    """The gateway's Envoy bootstrap for the cluster: one STRICT_DNS cluster per package on its Service name."""
    from services.user.config import UserSettings

    fields = UserSettings.__dataclass_fields__
    settings = GatewaySettings(
        descriptor_set=default_descriptor_set(),
        listen_host="0.0.0.0",
        http_port=GATEWAY_HTTP,
        https_port=GATEWAY_HTTPS,
        admin_port=ENVOY_ADMIN,
        access_log_path="/dev/stdout",
        pki=Pki(pathlib.Path(ENVOY_TLS_DIR)),
        jwt_issuer=str(fields["jwt_issuer"].default),
        jwt_audience=str(fields["jwt_audience"].default),
        upstreams=tuple(
            PackageUpstream(f"tastyplat.{e.name}.v1", (Endpoint(e.name, e.port),)) for e in CATALOGUE
        ),
        default_package="tastyplat.user.v1",
    )
    config = build_config(settings)
    _retarget_descriptor(config, DESCRIPTOR_IN_IMAGE)
    return config


def _retarget_descriptor(node: Any, path: str) -> None:
    # The generator reads the descriptor set here; Envoy reads the copy inside the image.
    if isinstance(node, dict):
        if "proto_descriptor" in node:
            node["proto_descriptor"] = path
        for value in node.values():
            _retarget_descriptor(value, path)
    elif isinstance(node, list):
        for value in node:
            _retarget_descriptor(value, path)


def _admin_call(*paths: str, then_sleep: int = 0) -> list[str]:
    # The admin listener stays on loopback (never reachable from the pod network), so kubelet cannot probe it
    # with httpGet; the image has Python, not curl.
    calls = "; ".join(
        f"u.urlopen(u.Request('http://127.0.0.1:{ENVOY_ADMIN}{p}', method='{'GET' if p == '/ready' else 'POST'}'), timeout=2)"
        for p in paths
    )
    script = f"import urllib.request as u, time; {calls}"
    if then_sleep:
        script += f"; time.sleep({then_sleep})"
    return ["python", "-c", script]


def gateway_documents() -> list[dict[str, Any]]:
    """Envoy: ServiceAccount, Service, Deployment (config from a ConfigMap, certificates from a Secret), PDB, HPA."""
    name = "gateway"
    container = {
        "name": "envoy",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["envoy"],
        "args": ["-c", f"{ENVOY_CONFIG_DIR}/envoy.json", "--disable-hot-restart", "--concurrency", "2",
                 "--log-level", "warn"],
        "ports": [
            {"name": "http", "containerPort": GATEWAY_HTTP, "protocol": "TCP"},
            {"name": "https", "containerPort": GATEWAY_HTTPS, "protocol": "TCP"},
        ],
        "readinessProbe": {"exec": {"command": _admin_call("/ready")}, "periodSeconds": 5, "timeoutSeconds": 3,
                           "failureThreshold": 2},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
        "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 30},
        # Envoy exits at once on SIGTERM: fail health checks and drain the listeners first.
        "lifecycle": {"preStop": {"exec": {"command": _admin_call("/healthcheck/fail", "/drain_listeners?graceful",
                                                                  then_sleep=10)}}},
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": ENVOY_CONFIG_DIR, "readOnly": True},
            {"name": "tls", "mountPath": ENVOY_TLS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, "gateway"),
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _selector(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(name, "gateway")},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": _pod_security_context(),
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "gateway-envoy"}},
                        # ca.crt (clients' CA), server.crt, server.key: see deploy/README.md.
                        {"name": "tls", "secret": {"secretName": "gateway-tls", "defaultMode": 0o440}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, "gateway"),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(name),
            "ports": [
                {"name": "http", "port": GATEWAY_HTTP, "targetPort": "http", "protocol": "TCP"},
                {"name": "https", "port": GATEWAY_HTTPS, "targetPort": "https", "protocol": "TCP"},
            ],
        },
    }
    profile = Profile((), (), min_replicas=2, max_replicas=6)
    return [_service_account(name, "gateway"), service, deployment, _pdb(name, "gateway"), _hpa(name, profile, "gateway")]


# ---------------------------------------------------------------------------------------- network policies


def _peer(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": _selector(name)}}


def network_policies() -> list[dict[str, Any]]:
    """Deny everything, then allow DNS, the gateway's ingress and calls, each peer call, backends, the internet."""
    def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": PART_OF}}, "spec": spec}

    callers: dict[str, list[str]] = {e.name: ["gateway"] for e in CATALOGUE}
    for name, profile in PROFILES.items():
        for peer in profile.peers:
            callers[peer].append(name)
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    docs = [
        policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy("allow-dns", {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
        }),
        policy("allow-telemetry", {
            # Prometheus scrapes /metrics; spans go to the OpenTelemetry collector (both in `monitoring`).
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [monitoring], "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}],
            "egress": [{"to": [monitoring], "ports": [{"protocol": "TCP", "port": OTLP_PORT}]}],
        }),
        policy("gateway", {
            "podSelector": {"matchLabels": _selector("gateway")},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": GATEWAY_HTTP}, {"protocol": "TCP", "port": GATEWAY_HTTPS}]}],
            "egress": [{"to": [_peer(e.name)], "ports": [{"protocol": "TCP", "port": e.port}]} for e in CATALOGUE],
        }),
    ]
    for service in CATALOGUE:
        profile = PROFILES[service.name]
        egress: list[dict[str, Any]] = [
            {"to": [_peer(peer)], "ports": [{"protocol": "TCP", "port": _port(peer)}]} for peer in profile.peers
        ]
        backend_ports = [p for b in profile.backends for p in BACKEND_PORTS[b]]
        if backend_ports:
            # Backends may live outside the cluster (managed PostgreSQL, Redis, RabbitMQ): allowed by port.
            egress.append({"ports": [{"protocol": "TCP", "port": p} for p in backend_ports]})
        if profile.internet_ports:
            egress.append({"ports": [{"protocol": "TCP", "port": p} for p in profile.internet_ports]})
        spec: dict[str, Any] = {
            "podSelector": {"matchLabels": _selector(service.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [_peer(c) for c in callers[service.name]],
                         "ports": [{"protocol": "TCP", "port": service.port}]}],
        }
        if egress:
            spec["egress"] = egress
        docs.append(policy(service.name, spec))
    return docs


# ------------------------------------------------------------------------------------------------ overlays


@dataclasses.dataclass(frozen=True)
class Backend:
    """An in-cluster backend of the ``backends`` overlay."""

    name: str
    image: str
    port: int
    uid: int
    args: tuple[str, ...]
    env: tuple[dict[str, Any], ...]
    data_path: str
    probe: tuple[str, ...]
    writable: tuple[str, ...]  # paths the image writes besides its data (emptyDirs under a read-only root)
    read_only_root: bool = True


BACKENDS = (
    # TimescaleDB: PostgreSQL with the extension, so the services' tick and history tables become hypertables.
    Backend(
        "postgres", "timescale/timescaledb:2.17.2-pg16", 5432, 70, (),
        ({"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "password"}}},
         {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}),
        "/var/lib/postgresql/data", ("pg_isready", "-U", "postgres", "-h", "127.0.0.1"), ("/var/run/postgresql", "/tmp"),
    ),
    # AOF on: peer-auth nonces and idempotency keys must survive a restart (reference: Redis without AOF forgets).
    Backend(
        "redis", "redis:7.2-alpine", 6379, 999,
        ("--appendonly", "yes", "--appendfsync", "everysec", "--requirepass", "$(REDIS_PASSWORD)"),
        ({"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis-credentials", "key": "password"}}},),
        "/data", ("sh", "-c", 'redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping | grep -q PONG'), ("/tmp",),
    ),
    # The image's entrypoint writes its generated configuration under /etc/rabbitmq: root file system writable.
    Backend(
        "rabbitmq", "rabbitmq:3.13-alpine", 5672, 999, (),
        ({"name": "RABBITMQ_DEFAULT_USER", "valueFrom": {"secretKeyRef": {"name": "rabbitmq-credentials", "key": "username"}}},
         {"name": "RABBITMQ_DEFAULT_PASS", "valueFrom": {"secretKeyRef": {"name": "rabbitmq-credentials", "key": "password"}}}),
        "/var/lib/rabbitmq", ("rabbitmq-diagnostics", "-q", "check_port_connectivity"), ("/tmp",), read_only_root=False,
    ),
)


def _backend_documents(backend: Backend) -> list[dict[str, Any]]:
    name = backend.name
    security = {**_security_context(), "runAsUser": backend.uid, "runAsGroup": backend.uid,
                "readOnlyRootFilesystem": backend.read_only_root}
    mounts = [{"name": "data", "mountPath": backend.data_path}]
    volumes: list[dict[str, Any]] = []
    for index, path in enumerate(backend.writable):
        mounts.append({"name": f"scratch-{index}", "mountPath": path})
        volumes.append({"name": f"scratch-{index}", "emptyDir": {}})
    probe = {"exec": {"command": list(backend.probe)}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    container: dict[str, Any] = {
        "name": name,
        "image": backend.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "main", "containerPort": backend.port, "protocol": "TCP"}],
        "env": list(backend.env),
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 6},
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 60},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        "securityContext": security,
        "volumeMounts": mounts,
    }
    if backend.args:
        container["args"] = list(backend.args)
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(name, "backend"),
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": _selector(name)},
            "template": {
                "metadata": {"labels": _labels(name, "backend")},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {**_pod_security_context(), "runAsUser": backend.uid, "runAsGroup": backend.uid,
                                        "fsGroup": backend.uid},
                    "containers": [container],
                    **({"volumes": volumes} if volumes else {}),
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
            }],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, "backend"),
        "spec": {"clusterIP": "None", "selector": _selector(name),
                 "ports": [{"name": "main", "port": backend.port, "targetPort": "main", "protocol": "TCP"}]},
    }
    users = [e.name for e in CATALOGUE if name in PROFILES[e.name].backends]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-backend", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": {
            "podSelector": {"matchLabels": _selector(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [_peer(u) for u in users], "ports": [{"protocol": "TCP", "port": backend.port}]}],
            "egress": [],
        },
    }
    return [_service_account(name, "backend"), service, statefulset, policy]


def _namespace() -> dict[str, Any]:
    # The restricted Pod Security Standard: the API server refuses any pod that would run as root, keep
    # capabilities or escalate privileges, whatever a later patch says.
    labels = {"app.kubernetes.io/part-of": PART_OF}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}


def _kustomization(**fields: Any) -> str:
    # kustomize v2 (Debian's kubectl 1.20): directories go in `bases`, patches in `patchesStrategicMerge`,
    # and there are no `components`; kustomize v5 reads the same file (with deprecation warnings).
    document = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}
    return _HEADER + yaml.safe_dump(document, sort_keys=False, width=120)


_HEADER = "# Generated by deploy/kubernetes/generate.py; edit the generator, not this file.\n"


def _patch(kind: str, name: str, spec: dict[str, Any], api: str) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": spec}


def overlay_files() -> dict[str, str]:
    """Both overlays, by path relative to deploy/kubernetes."""
    files: dict[str, str] = {}
    backend_docs = [doc for b in BACKENDS for doc in _backend_documents(b)]
    files["overlays/backends/namespace.yaml"] = _dump([_namespace()])
    files["overlays/backends/backends.yaml"] = _dump(backend_docs)
    files["overlays/backends/kustomization.yaml"] = _kustomization(
        namespace=NAMESPACE, bases=["../../base"], resources=["namespace.yaml", "backends.yaml"],
    )
    # Production: managed PostgreSQL (with TimescaleDB), Redis and RabbitMQ are reached by the names the
    # services' URLs use; an ExternalName Service maps each name to the provider's host (patch the hosts).
    external = [
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, "backend"),
         "spec": {"type": "ExternalName", "externalName": f"{name}.managed.invalid"}}
        for name in ("postgres", "redis", "rabbitmq")
    ]
    files["overlays/production/namespace.yaml"] = _dump([_namespace()])
    files["overlays/production/external-backends.yaml"] = _dump(external)
    replicas = {"calculator": (3, 20), "marketdata": (3, 12), "user": (3, 10), "broker": (3, 10),
                "notification": (3, 10), "portfolio": (2, 10), "reporting": (2, 6), "gateway": (3, 12)}
    patches = [
        _patch("HorizontalPodAutoscaler", name, {"minReplicas": low, "maxReplicas": high}, "autoscaling/v2")
        for name, (low, high) in replicas.items()
    ]
    patches.append(_patch("Service", "gateway", {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}, "v1"))
    patches.append(_patch("Deployment", "marketdata", {"template": {"spec": {"containers": [{
        "name": "marketdata", "resources": {"requests": {"cpu": "1", "memory": "768Mi"},
                                            "limits": {"cpu": "2", "memory": "1536Mi"}}}]}}}, "apps/v1"))
    files["overlays/production/scale.yaml"] = _dump(patches)
    files["overlays/production/kustomization.yaml"] = _kustomization(
        namespace=NAMESPACE,
        bases=["../../base"],
        resources=["namespace.yaml", "external-backends.yaml"],
        patchesStrategicMerge=["scale.yaml"],
        images=[{"name": IMAGE, "newName": f"registry.example.com/{IMAGE}", "newTag": "0.1.0"}],
    )
    return files


# ------------------------------------------------------------------------------------------------- output


def _dump(documents: list[dict[str, Any]]) -> str:
    return _HEADER + "---\n".join(yaml.safe_dump(d, sort_keys=False, width=120) for d in documents)


def render() -> dict[str, str]:
    """Every generated file, by path relative to deploy/kubernetes."""
    files = {f"base/{e.name}.yaml": _dump(service_documents(e.name)) for e in CATALOGUE}
    files["base/gateway.yaml"] = _dump(gateway_documents())
    files["base/network-policies.yaml"] = _dump(network_policies())
    files["base/gateway-envoy.json"] = json.dumps(envoy_config(), indent=1, sort_keys=True) + "\n"
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{e.name}.yaml" for e in CATALOGUE] + ["gateway.yaml", "network-policies.yaml"],
        # A new Envoy config gets a new ConfigMap name (a hash suffix), which rolls the gateway pods.
        "configMapGenerator": [{"name": "gateway-envoy", "files": ["envoy.json=gateway-envoy.json"]}],
        "images": [{"name": IMAGE, "newName": IMAGE, "newTag": "0.1.0"}],
    }
    files["base/kustomization.yaml"] = _HEADER + yaml.safe_dump(kustomization, sort_keys=False, width=120)
    files.update(overlay_files())
    return files


def main() -> None:
    """Write the base and the overlays."""
    files = render()
    for relative, text in files.items():
        path = HERE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(files)} files under {HERE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
