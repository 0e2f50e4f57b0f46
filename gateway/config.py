"""Generate the Envoy 1.40 bootstrap from the build's descriptor set, so every annotated RPC is routed."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import pathlib
from collections.abc import Sequence
from importlib import resources

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from gateway.certs import CLIENT_SPIFFE_PREFIX, Pki
from services.platform.catalogue import PUBLIC_RPCS

HEALTH_SERVICE = "grpc.health.v1.Health"
UPSTREAM_CLUSTER = "tastyplat_grpc"
JWKS_CLUSTER = "tastyplat_jwks"
# The dashboard's static files (gateway/static_site.py), served at `/` and `/assets/` without a token.
DASHBOARD_CLUSTER = "tastyplat_dashboard"
DASHBOARD_PREFIX = "/assets/"
JWT_PROVIDER = "tastyplat_user"
# Identity headers only the gateway may set: removed from every request before the JWT filter runs, so a
# client cannot forge them (services verify the JWT themselves as well; see README, "Identity").
IDENTITY_HEADERS = ("x-jwt-sub", "x-jwt-payload")
# RPCs callable without an access token (sign-up, login, refresh, password reset, the JWKS itself).
PUBLIC_METHODS = tuple(f"{service}.{rpc}" for service, rpc in PUBLIC_RPCS)
# Batches of 100,000 options exceed gRPC's and Envoy's defaults (4 MiB / 1 MiB); see the calculator contract.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_TYPE = "type.googleapis.com/envoy.extensions"


def default_descriptor_set() -> pathlib.Path:
    """Path of the descriptor set written by the package build."""
    return pathlib.Path(str(resources.files("tastyplat").joinpath("descriptor_set.pb")))


def platform_services(descriptor_set: pathlib.Path) -> list[str]:
    """Fully qualified names of every tastyplat service in the descriptor set, plus gRPC health."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    names = [
        f"{f.package}.{s.name}"
        for f in files.file
        if f.package.startswith("tastyplat.")
        for s in f.service
    ]
    return sorted(names) + [HEALTH_SERVICE]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One upstream gRPC server: an IP address (a STATIC cluster) or a DNS name (STRICT_DNS, every address)."""

    host: str
    port: int


@dataclasses.dataclass(frozen=True)
class PackageUpstream:
    """Where the calls of one proto package go when each service runs on its own (distributed, Kubernetes).

    Attributes:
        package: Proto package, e.g. ``"tastyplat.user.v1"``; every ``/<package>.<Service>/<Method>`` path
            (and every REST path the transcoder maps to one) is routed to this upstream.
        endpoints: The replicas serving it; Envoy balances calls across the healthy ones.
    """

    package: str
    endpoints: tuple[Endpoint, ...]

    @property
    def cluster(self) -> str:
        """Envoy cluster name: ``tastyplat_<service>`` for ``tastyplat.<service>.v1``."""
        parts = self.package.split(".")
        return "_".join(parts[:2]) if len(parts) >= 2 else self.package.replace(".", "_")


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    """What the generated gateway listens on and where it sends traffic.

    Attributes:
        descriptor_set: the build's FileDescriptorSet (with imports), read by the JSON transcoder.
        upstream_host: host of the gRPC server all services are reached through.
        upstream_port: its port (50051 embedded).
        listen_host: address the gateway listeners bind to.
        http_port: REST/JSON, grpc-web and native gRPC (h2c) listener.
        admin_port: Envoy admin, always bound to loopback.
        access_log_path: where JSON access logs go ("/dev/stdout" by default).
        https_port: the mTLS listener (TLS 1.2+, client certificate from the platform CA required).
        pki: the CA and server certificate for the mTLS listener; no mTLS listener when None.
        jwt_issuer: ``iss`` of the user service's access tokens; no JWT check when None.
        jwt_audience: ``aud`` the gateway accepts.
        rate_limit_requests: requests per client (JWT subject, else client address) per interval.
        rate_limit_interval_seconds: the interval over which ``rate_limit_requests`` refill.
        upstreams: per-package upstreams (distributed mode); when empty, every call goes to
            ``upstream_host:upstream_port`` (the embedded server holding all services).
        default_package: with ``upstreams``, the package whose upstream also serves the paths of no
            package (gRPC health, reflection); the first upstream's when None.
        dashboard: the HTTP/1.1 static server of the dashboard (gateway/static_site.py); when set, `GET /` and
            `/assets/...` go to it as public routes outside the transcoder; when None, `/` is a 404.
    """

    descriptor_set: pathlib.Path
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 50051
    listen_host: str = "127.0.0.1"
    http_port: int = 8080
    admin_port: int = 9901
    access_log_path: str = "/dev/stdout"
    https_port: int = 8443
    pki: Pki | None = None
    jwt_issuer: str | None = None
    jwt_audience: str = "tastyplat"
    rate_limit_requests: int = 600
    rate_limit_interval_seconds: int = 60
    upstreams: tuple[PackageUpstream, ...] = ()
    default_package: str | None = None
    dashboard: Endpoint | None = None

    def __post_init__(self) -> None:
        packages = [u.package for u in self.upstreams]
        if len(set(packages)) != len(packages):
            raise ValueError(f"a package has two upstreams: {packages}")
        if any(not u.endpoints for u in self.upstreams):
            raise ValueError("every package upstream needs at least one endpoint")
        if self.default_package is not None and self.default_package not in packages:
            raise ValueError(f"default_package {self.default_package!r} is not among the upstreams")


def _access_log(path: str) -> list[dict]:
    return [
        {
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": f"{_TYPE}.access_loggers.file.v3.FileAccessLog",
                "path": path,
                "log_format": {
                    "json_format": {
                        "time": "%START_TIME%",
                        "request_id": "%REQ(X-REQUEST-ID)%",
                        "method": "%REQ(:METHOD)%",
                        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
                        "protocol": "%PROTOCOL%",
                        "status": "%RESPONSE_CODE%",
                        "grpc_status": "%GRPC_STATUS(NUMBER)%",
                        "flags": "%RESPONSE_FLAGS%",
                        "duration_ms": "%DURATION%",
                        "upstream": "%UPSTREAM_HOST%",
                        "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                    }
                },
            },
        }
    ]


def _transcoder(descriptor_set: pathlib.Path, services: Sequence[str]) -> dict:
    return {
        "name": "envoy.filters.http.grpc_json_transcoder",
        "typed_config": {
            "@type": f"{_TYPE}.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
            "proto_descriptor": str(descriptor_set),
            "services": list(services),
            "auto_mapping": True,
            "convert_grpc_status": True,
            "max_request_body_size": MAX_MESSAGE_BYTES,
            "max_response_body_size": MAX_MESSAGE_BYTES,
            # Without these, unknown paths and query parameters go upstream untranscoded and come back as 503s.
            "request_validation_options": {
                "reject_unknown_method": True,
                "reject_unknown_query_parameters": True,
            },
            "print_options": {
                "always_print_primitive_fields": True,
                "preserve_proto_field_names": True,
                "stream_newline_delimited": True,
            },
        },
    }


def public_routes(descriptor_set: pathlib.Path) -> list[tuple[str, str]]:
    """(HTTP method, path) of every public RPC: its REST mapping and its native gRPC path."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    routes: list[tuple[str, str]] = []
    for f in files.file:
        for service in f.service:
            for method in service.method:
                full = f"{f.package}.{service.name}.{method.name}"
                if full not in PUBLIC_METHODS:
                    continue
                routes.append(("POST", f"/{f.package}.{service.name}/{method.name}"))
                rule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb and verb != "custom":
                    routes.append((verb.upper(), getattr(rule, verb)))
    return routes


def _exact(method: str, path: str) -> dict:
    return {"path": path, "headers": [{"name": ":method", "string_match": {"exact": method}}]}


def _header_scrub() -> dict:
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": f"{_TYPE}.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [{"remove": h} for h in IDENTITY_HEADERS]},
        },
    }


def _jwt_filter(settings: GatewaySettings) -> dict:
    public = [{"match": _exact(m, p)} for m, p in public_routes(settings.descriptor_set)]
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": f"{_TYPE}.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                JWT_PROVIDER: {
                    "issuer": settings.jwt_issuer,
                    "audiences": [settings.jwt_audience],
                    # Envoy's defaults accept tokens without exp and tokens in ?access_token=.
                    "require_expiration": True,
                    "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                    "forward": True,  # services verify the token themselves too
                    "claim_to_headers": [{"header_name": "x-jwt-sub", "claim_name": "sub"}],
                    "payload_in_metadata": "jwt_payload",
                    "clock_skew_seconds": 30,
                    "remote_jwks": {
                        "http_uri": {
                            "uri": f"http://127.0.0.1:{settings.http_port}/.well-known/jwks.json",
                            "cluster": JWKS_CLUSTER,
                            "timeout": "2s",
                        },
                        # Keys rotate: refetch often, and let a token with an unknown kid trigger a refetch.
                        "cache_duration": "60s",
                        "async_fetch": {"fast_listener": True, "failed_refetch_duration": "1s"},
                        "retry_policy": {"num_retries": 3},
                    },
                }
            },
            "rules": [
                *public,
                {"match": {"prefix": f"/{HEALTH_SERVICE}/"}},
                {"match": {"path": "/"}},
                *([{"match": {"prefix": DASHBOARD_PREFIX}}] if settings.dashboard is not None else []),
                {"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}},
            ],
        },
    }


def _reflection_guard() -> dict:
    # Reflection exposes the whole API: through the gateway only for tokens whose roles claim holds "admin".
    admin = {
        "metadata": {
            "filter": "envoy.filters.http.jwt_authn",
            "path": [{"key": "jwt_payload"}, {"key": "roles"}],
            "value": {"list_match": {"one_of": {"string_match": {"exact": "admin"}}}},
        }
    }
    reflection = {"url_path": {"path": {"prefix": "/grpc.reflection."}}}
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": f"{_TYPE}.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "DENY",
                "policies": {
                    "reflection-admin-only": {
                        "permissions": [reflection],
                        "principals": [{"not_id": admin}],
                    }
                },
            },
        },
    }


def _rate_limit_filter(settings: GatewaySettings) -> dict:
    bucket = {
        "max_tokens": settings.rate_limit_requests,
        "tokens_per_fill": settings.rate_limit_requests,
        "fill_interval": f"{settings.rate_limit_interval_seconds}s",
    }
    everyone = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": f"{_TYPE}.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "per_client",
            # The filter-wide bucket is only a ceiling; the per-client descriptors below do the work.
            "token_bucket": {"max_tokens": 1_000_000, "tokens_per_fill": 1_000_000, "fill_interval": "1s"},
            "filter_enabled": {**everyone, "runtime_key": "per_client_enabled"},
            "filter_enforced": {**everyone, "runtime_key": "per_client_enforced"},
            "rate_limited_as_resource_exhausted": True,
            "max_dynamic_descriptors": 100_000,
            "descriptors": [
                {"entries": [{"key": "subject"}], "token_bucket": bucket},
                {"entries": [{"key": "anonymous", "value": "true"}, {"key": "remote_address"}], "token_bucket": bucket},
            ],
            "rate_limits": [
                {"actions": [{"request_headers": {"header_name": "x-jwt-sub", "descriptor_key": "subject"}}]},
                {
                    "actions": [
                        {
                            "header_value_match": {
                                "descriptor_key": "anonymous",
                                "descriptor_value": "true",
                                "headers": [{"name": "x-jwt-sub", "present_match": False}],
                            }
                        },
                        {"remote_address": {}},
                    ]
                },
            ],
            "response_headers_to_add": [
                {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": "x-rate-limited", "value": "true"}}
            ],
        },
    }


def _local_reply_config() -> dict:
    # Envoy's own refusals (401, 403, 404, 429...) reach REST clients as JSON, like the services' errors.
    return {
        "body_format": {
            "json_format": {
                "code": "%RESPONSE_CODE%",
                "message": "%LOCAL_REPLY_BODY%",
                "reason": "%RESPONSE_CODE_DETAILS%",
                "request_id": "%REQ(X-REQUEST-ID)%",
            }
        }
    }


def _http_filters(settings: GatewaySettings, services: Sequence[str]) -> list[dict]:
    filters = [_header_scrub()]
    if settings.jwt_issuer is not None:
        filters += [_jwt_filter(settings), _reflection_guard()]
    filters.append(_rate_limit_filter(settings))
    filters += [
        {"name": "envoy.filters.http.grpc_web", "typed_config": {"@type": f"{_TYPE}.filters.http.grpc_web.v3.GrpcWeb"}},
        _transcoder(settings.descriptor_set, services),
        {"name": "envoy.filters.http.router", "typed_config": {"@type": f"{_TYPE}.filters.http.router.v3.Router"}},
    ]
    return filters


def _route_to(cluster: str, *, retry: bool) -> dict:
    route: dict = {
        "cluster": cluster,
        # A route timeout would cut streams short; the client's deadline governs.
        "timeout": "0s",
        "max_stream_duration": {"grpc_timeout_header_max": "0s"},
    }
    if retry:
        # Only failures where the call never reached a server: safe for every method, streams included, and
        # what a replica restarting or being killed looks like.
        route["retry_policy"] = {
            "retry_on": "connect-failure,refused-stream,reset-before-request",
            "num_retries": 2,
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {"@type": f"{_TYPE}.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
                }
            ],
            "host_selection_retry_max_attempts": 3,
        }
    return route


def _dashboard_routes(settings: GatewaySettings) -> list[dict]:
    if settings.dashboard is None:
        return []
    # The transcoder rejects every path it cannot map to an RPC (reject_unknown_method), so it is switched off
    # on these routes; JWT rules exempt them (the page and its assets are public, the API calls carry tokens).
    static = {
        "route": {"cluster": DASHBOARD_CLUSTER, "timeout": "15s"},
        "typed_per_filter_config": {
            "envoy.filters.http.grpc_json_transcoder": {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                "disabled": True,
            }
        },
    }
    return [{"match": {"path": "/"}, **static}, {"match": {"prefix": DASHBOARD_PREFIX}, **static}]


def _routes(settings: GatewaySettings) -> list[dict]:
    return _dashboard_routes(settings) + _service_routes(settings)


def _service_routes(settings: GatewaySettings) -> list[dict]:
    if not settings.upstreams:
        return [{"match": {"prefix": "/"}, "route": _route_to(UPSTREAM_CLUSTER, retry=False)}]
    # The transcoder rewrites a REST path to its gRPC path and clears the route cache, so with the default
    # match_incoming_request_route (false) the router matches these gRPC prefixes for REST calls too.
    routes = [
        {"match": {"prefix": f"/{u.package}."}, "route": _route_to(u.cluster, retry=True)} for u in settings.upstreams
    ]
    routes.append({"match": {"prefix": "/"}, "route": _route_to(_default_upstream(settings).cluster, retry=True)})
    return routes


def _default_upstream(settings: GatewaySettings) -> PackageUpstream:
    if settings.default_package is None:
        return settings.upstreams[0]
    (found,) = [u for u in settings.upstreams if u.package == settings.default_package]
    return found


def _http_connection_manager(settings: GatewaySettings, services: Sequence[str], stat_prefix: str) -> dict:
    config: dict = {
        "@type": f"{_TYPE}.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "preserve_external_request_id": True,
        # The gateway is the edge: it sets x-forwarded-for from the peer address (services trust one hop), so a
        # client cannot pick the address its login throttling and rate limits are keyed on.
        "use_remote_address": True,
        # REST clients get x-request-id as a response header even from RPCs that answer in trailers only.
        "always_set_request_id_in_response": True,
        "access_log": _access_log(settings.access_log_path),
        # HTTP/1.1 REST clients only learn that a stream failed mid-way from trailers.
        "http_protocol_options": {"enable_trailers": True},
        "local_reply_config": _local_reply_config(),
        "route_config": {
            "name": "platform",
            "virtual_hosts": [
                {
                    "name": "platform",
                    "domains": ["*"],
                    "routes": _routes(settings),
                }
            ],
        },
        "http_filters": _http_filters(settings, services),
    }
    if stat_prefix == "gateway_https":
        config["forward_client_cert_details"] = "SANITIZE_SET"
        config["set_current_client_cert_details"] = {"uri": True}
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": config}


def _mtls_transport_socket(pki: Pki) -> dict:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": f"{_TYPE}.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(pki.server_cert)},
                        "private_key": {"filename": str(pki.server_key)},
                    }
                ],
                "validation_context": {
                    "trusted_ca": {"filename": str(pki.ca_cert)},
                    "match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"prefix": CLIENT_SPIFFE_PREFIX}}
                    ],
                },
            },
        },
    }


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _static_cluster(name: str, host: str, port: int, *, http2: bool) -> dict:
    return _cluster(name, (Endpoint(host, port),), http2=http2)


def _cluster(name: str, endpoints: Sequence[Endpoint], *, http2: bool) -> dict:
    lb_endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": e.host, "port_value": e.port}}}} for e in endpoints
    ]
    cluster: dict = {
        "name": name,
        # A DNS name (a Kubernetes headless Service) resolves to every replica; STRICT_DNS keeps them all.
        "type": "STATIC" if all(_is_ip(e.host) for e in endpoints) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}]},
    }
    if cluster["type"] == "STRICT_DNS":
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if http2:
        # Required for a gRPC upstream: without it the config validates and every call 502s.
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": f"{_TYPE}.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def _upstream_clusters(settings: GatewaySettings) -> list[dict]:
    if not settings.upstreams:
        return [_grpc_cluster(UPSTREAM_CLUSTER, (Endpoint(settings.upstream_host, settings.upstream_port),))]
    clusters = []
    for upstream in settings.upstreams:
        cluster = _grpc_cluster(upstream.cluster, upstream.endpoints)
        # A replica that keeps failing calls leaves the rotation before its health check notices; with one
        # replica, never eject it (there is nowhere else to go).
        cluster["outlier_detection"] = {
            "consecutive_gateway_failure": 3,
            "consecutive_5xx": 5,
            "interval": "2s",
            "base_ejection_time": "10s",
            "max_ejection_percent": 50 if len(upstream.endpoints) > 1 else 0,
        }
        clusters.append(cluster)
    return clusters


def _grpc_cluster(name: str, endpoints: Sequence[Endpoint]) -> dict:
    cluster = _cluster(name, endpoints, http2=True)
    cluster["per_connection_buffer_limit_bytes"] = MAX_MESSAGE_BYTES
    cluster["health_checks"] = [
        {
            "timeout": "1s",
            "interval": "2s",
            # Until a cluster has carried traffic Envoy checks it only every no_traffic_interval (60 s by
            # default), and the timer armed then runs out before the 2 s interval applies: a replica killed in
            # its first minute stayed "healthy" for up to a minute.
            "no_traffic_interval": "2s",
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            "grpc_health_check": {"service_name": ""},
        }
    ]
    cluster["circuit_breakers"] = {
        "thresholds": [{"priority": "DEFAULT", "max_connections": 1024, "max_pending_requests": 1024, "max_requests": 4096}]
    }
    return cluster


def _listener(name: str, host: str, port: int, chain: dict) -> dict:
    return {
        "name": name,
        "address": {"socket_address": {"address": host, "port_value": port}},
        "per_connection_buffer_limit_bytes": MAX_MESSAGE_BYTES,
        "filter_chains": [chain],
    }


def build_config(settings: GatewaySettings) -> dict:
    """The Envoy bootstrap as a dict (JSON is valid Envoy YAML)."""
    services = platform_services(settings.descriptor_set)
    listeners = [
        _listener(
            "gateway_http",
            settings.listen_host,
            settings.http_port,
            {"filters": [_http_connection_manager(settings, services, "gateway_http")]},
        )
    ]
    if settings.pki is not None:
        chain = {
            "transport_socket": _mtls_transport_socket(settings.pki),
            "filters": [_http_connection_manager(settings, services, "gateway_https")],
        }
        listeners.append(_listener("gateway_mtls", settings.listen_host, settings.https_port, chain))
    clusters = _upstream_clusters(settings)
    if settings.jwt_issuer is not None:
        clusters.append(_static_cluster(JWKS_CLUSTER, "127.0.0.1", settings.http_port, http2=False))
    if settings.dashboard is not None:
        clusters.append(_cluster(DASHBOARD_CLUSTER, (settings.dashboard,), http2=False))
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": settings.admin_port}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def write_config(settings: GatewaySettings, path: pathlib.Path) -> pathlib.Path:
    """Write the bootstrap for `settings` to `path` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_config(settings), indent=2))
    return path
