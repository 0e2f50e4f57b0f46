"""Kubernetes manifests: rendered with `kubectl kustomize` (kustomize v2 compatible), every document valid against
the Kubernetes schemas (kubernetes-validate --strict), and the platform's policies: gRPC health probes, requests and
limits, non-root read-only pods, termination grace longer than the server's, deny-by-default network policies that
allow exactly the calls the architecture makes."""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import json
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.certs import ensure_pki
from gateway.config import default_descriptor_set
from gateway.envoy import validate as envoy_validate
from services.platform.catalogue import CATALOGUE

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
sys.path.insert(0, str(KUBE))
generate = importlib.import_module("generate")

pytestmark = pytest.mark.integration

TARGETS = ("base", "overlays/backends", "overlays/production")
KUBERNETES_VERSIONS = ("1.30", "1.32")
SERVICES = [e.name for e in CATALOGUE]


@functools.cache
def kubectl() -> str:
    """`kubectl` (Debian's kubernetes-client if none is installed: `kubectl kustomize` renders offline)."""
    found = shutil.which("kubectl")
    if found:
        return found
    install = subprocess.run(
        ["bash", "-c", "apt-get update -qq && apt-get install -y -qq kubernetes-client"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(f"kubectl is missing and `apt-get install kubernetes-client` failed:\n{install.stderr[-2000:]}")
    return found


@functools.cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUBE / target)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def _find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def _pod_specs(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def test_generated_files_are_up_to_date() -> None:
    stale = [path for path, text in generate.render().items() if (KUBE / path).read_text() != text]
    assert not stale, f"run `.venv/bin/python deploy/kubernetes/generate.py`; out of date: {stale}"


def test_kustomizations_use_only_what_kustomize_v2_understands() -> None:
    for path in KUBE.rglob("kustomization.yaml"):
        fields = set(yaml.safe_load(path.read_text()))
        assert "components" not in fields and "patches" not in fields, path
        assert not any(str(r).endswith("/") or not str(r).endswith((".yaml", ".yml")) for r in yaml.safe_load(path.read_text()).get("resources", [])), path


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_manifest_is_valid_against_the_kubernetes_schemas(target: str, version: str) -> None:
    errors = []
    for doc in render(target):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["spec"].__setitem__("replicas", "two"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("livenesProbe", {}),
    ],
    ids=["wrong-type", "unknown-field"],
)
def test_the_validator_refuses_a_broken_deployment(break_it: Any) -> None:
    deployment = copy.deepcopy(_find(render("base"), "Deployment", "calculator"))
    break_it(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("service", SERVICES + ["gateway"])
def test_each_service_has_its_deployment_service_account_service_pdb_and_hpa(service: str) -> None:
    docs = render("base")
    deployment = _find(docs, "Deployment", service)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == service
    _find(docs, "ServiceAccount", service)
    selector = _find(docs, "Service", service)["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert _find(docs, "PodDisruptionBudget", service)["spec"]["selector"]["matchLabels"] == selector
    hpa = _find(docs, "HorizontalPodAutoscaler", service)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]


@pytest.mark.parametrize("service", CATALOGUE, ids=SERVICES)
def test_service_probes_ask_the_grpc_health_service_on_its_port(service: Any) -> None:
    (container,) = _find(render("base"), "Deployment", service.name)["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": service.port, "service": ""}, probe
    assert container["args"] == ["services.platform.telemetry", f"services.{service.name}"]
    assert {"name": "grpc", "containerPort": service.port, "protocol": "TCP"} in container["ports"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_probes_requests_and_limits(target: str) -> None:
    for name, pod in _pod_specs(render(target)):
        for container in pod["containers"]:
            assert "readinessProbe" in container and "livenessProbe" in container, name
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), name
            assert {"cpu", "memory"} <= resources["limits"].keys(), name


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_runs_as_a_non_root_user_without_privileges(target: str) -> None:
    for name, pod in _pod_specs(render(target)):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
            if container["image"].rsplit(":", 1)[0].endswith("tastyplat"):
                assert security["readOnlyRootFilesystem"] is True, name


@pytest.mark.parametrize("service", SERVICES)
def test_kubernetes_waits_longer_than_the_servers_drain_and_grace(service: str) -> None:
    docs = render("base")
    config = _find(docs, "ConfigMap", f"{service}-config")["data"]
    prefix = service.upper()
    server_needs = float(config[f"{prefix}_GRACE_SECONDS"]) + float(config[f"{prefix}_DRAIN_SECONDS"])
    pod = _find(docs, "Deployment", service)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > server_needs
    assert config[f"{prefix}_PORT"] == str(next(e.port for e in CATALOGUE if e.name == service))


def test_gateway_reads_its_config_from_a_configmap_and_its_certificates_from_a_secret() -> None:
    docs = render("base")
    pod = _find(docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_map = volumes["config"]["configMap"]["name"]
    assert config_map.startswith("gateway-envoy-"), "the generated name carries the content hash"
    assert json.loads(_find(docs, "ConfigMap", config_map)["data"]["envoy.json"])["admin"]["address"][
        "socket_address"]["address"] == "127.0.0.1", "admin stays on loopback"
    assert volumes["tls"]["secret"]["secretName"] == "gateway-tls"
    (container,) = pod["containers"]
    assert container["command"] == ["envoy"]
    assert "preStop" in container["lifecycle"], "Envoy exits at once on SIGTERM: drain first"


def test_the_clusters_envoy_config_is_accepted_by_envoy(tmp_path: pathlib.Path) -> None:
    docs = render("base")
    name = _find(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    text = _find(docs, "ConfigMap", name)["data"]["envoy.json"]
    # The paths inside the pod, pointed at real files here: the PKI Envoy loads and the build's descriptor set.
    pki = ensure_pki(tmp_path / "tls")
    text = text.replace(generate.ENVOY_TLS_DIR, str(pki.directory))
    text = text.replace(generate.DESCRIPTOR_IN_IMAGE, str(default_descriptor_set()))
    config = tmp_path / "envoy.json"
    config.write_text(text)
    envoy_validate(config)
    clusters = {c["name"]: c for c in json.loads(text)["static_resources"]["clusters"]}
    for service in CATALOGUE:
        cluster = clusters[f"tastyplat_{service.name}"]
        assert cluster["type"] == "STRICT_DNS", "every ready pod behind the headless Service"
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        assert (address["address"], address["port_value"]) == (service.name, service.port)
        assert _find(docs, "Service", service.name)["spec"]["clusterIP"] == "None"


def test_the_image_path_of_the_descriptor_set_is_where_the_build_script_puts_it() -> None:
    script = (ROOT / "deploy" / "build.sh").read_text()
    assert '"$venv/share/tastyplat/descriptor_set.pb"' in script
    assert "bash deploy/build.sh /src /opt/tastyplat" in (ROOT / "deploy" / "Dockerfile").read_text()
    assert generate.DESCRIPTOR_IN_IMAGE == "/opt/tastyplat/share/tastyplat/descriptor_set.pb"


# Network policies.


def _policy(docs: tuple[dict[str, Any], ...], name: str) -> dict[str, Any]:
    return _find(docs, "NetworkPolicy", name)["spec"]


def _selected(peers: list[dict[str, Any]]) -> set[str]:
    return {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in peers if "podSelector" in p}


def test_everything_is_denied_unless_a_policy_allows_it() -> None:
    spec = _policy(render("base"), "default-deny")
    assert spec == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize("service", CATALOGUE, ids=SERVICES)
def test_a_service_accepts_calls_only_from_the_gateway_and_its_callers(service: Any) -> None:
    spec = _policy(render("base"), service.name)
    (rule,) = spec["ingress"]
    callers = {"gateway"} | {name for name, p in generate.PROFILES.items() if service.name in p.peers}
    assert _selected(rule["from"]) == callers
    assert rule["ports"] == [{"protocol": "TCP", "port": service.port}]


@pytest.mark.parametrize("service", CATALOGUE, ids=SERVICES)
def test_a_service_calls_out_only_to_its_peers_backends_and_providers(service: Any) -> None:
    profile = generate.PROFILES[service.name]
    egress = _policy(render("base"), service.name).get("egress", [])
    peers = {next(iter(_selected(rule["to"]))) for rule in egress if "to" in rule}
    assert peers == set(profile.peers)
    open_ports = {p["port"] for rule in egress if "to" not in rule for p in rule["ports"]}
    expected = {p for b in profile.backends for p in generate.BACKEND_PORTS[b]} | set(profile.internet_ports)
    assert open_ports == expected
    if not profile.backends and not profile.internet_ports:
        assert all("to" in rule for rule in egress), "a service without backends reaches only its peers"


def test_the_gateway_reaches_every_service_and_nothing_else() -> None:
    spec = _policy(render("base"), "gateway")
    assert {next(iter(_selected(r["to"]))): r["ports"][0]["port"] for r in spec["egress"]} == {
        e.name: e.port for e in CATALOGUE
    }


def _settings_class(service: str) -> Any:
    try:
        module = importlib.import_module(f"services.{service}.config")
    except ModuleNotFoundError:
        return None
    classes = [v for v in vars(module).values() if isinstance(v, type) and dataclasses.is_dataclass(v)
               and getattr(v, "env_prefix", "") == f"{service.upper()}_"]
    return classes[0] if classes else None


@pytest.mark.parametrize("service", SERVICES)
def test_the_peer_table_covers_every_peer_a_service_is_configured_to_call(service: str) -> None:
    settings = _settings_class(service)
    if settings is None:
        pytest.skip(f"services/{service}/config.py has not landed yet")
    targets = {f.name.removesuffix("_target").removesuffix("_service") for f in dataclasses.fields(settings)
               if f.name.endswith("_target")}
    assert targets <= set(generate.PROFILES[service].peers), f"{service} dials {targets}"
    config = _find(render("base"), "ConfigMap", f"{service}-config")["data"]
    for field in dataclasses.fields(settings):
        if field.name.endswith("_target"):
            variable = settings.variable_name(field.name)
            peer = field.name.removesuffix("_target").removesuffix("_service")
            assert config[variable] == f"{peer}:{next(e.port for e in CATALOGUE if e.name == peer)}", variable


@pytest.mark.parametrize("backend", ["postgres", "redis", "rabbitmq"])
def test_in_cluster_backends_accept_only_the_services_that_use_them(backend: str) -> None:
    docs = render("overlays/backends")
    (rule,) = _policy(docs, f"{backend}-backend")["ingress"]
    assert _selected(rule["from"]) == {n for n, p in generate.PROFILES.items() if backend in p.backends}
    assert _find(docs, "StatefulSet", backend)["metadata"]["namespace"] == "tastyplat"


def test_overlays_put_everything_in_a_namespace_that_enforces_the_restricted_pod_standard() -> None:
    for target in ("overlays/backends", "overlays/production"):
        docs = render(target)
        namespace = _find(docs, "Namespace", "tastyplat")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert all(d["metadata"].get("namespace") == "tastyplat" for d in docs if d["kind"] != "Namespace")


def test_production_scales_out_and_exposes_the_gateway() -> None:
    docs = render("overlays/production")
    assert _find(docs, "Service", "gateway")["spec"]["type"] == "LoadBalancer"
    assert _find(docs, "HorizontalPodAutoscaler", "calculator")["spec"]["minReplicas"] == 3
    assert _find(docs, "Service", "postgres")["spec"]["type"] == "ExternalName"
    images = {c["image"] for _, pod in _pod_specs(docs) for c in pod["containers"]}
    assert images == {"registry.example.com/tastyplat:0.1.0"}
