"""Generate the Envoy 1.40 bootstrap from the build's descriptor set, so every annotated RPC is routed."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence
from importlib import resources

from google.protobuf import descriptor_pb2

HEALTH_SERVICE = "grpc.health.v1.Health"
UPSTREAM_CLUSTER = "tastyplat_grpc"
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
    """

    descriptor_set: pathlib.Path
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 50051
    listen_host: str = "127.0.0.1"
    http_port: int = 8080
    admin_port: int = 9901
    access_log_path: str = "/dev/stdout"


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


def _http_connection_manager(settings: GatewaySettings, services: Sequence[str]) -> dict:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": f"{_TYPE}.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "gateway_http",
            "codec_type": "AUTO",
            "preserve_external_request_id": True,
            "access_log": _access_log(settings.access_log_path),
            # HTTP/1.1 REST clients only learn that a stream failed mid-way from trailers.
            "http_protocol_options": {"enable_trailers": True},
            "route_config": {
                "name": "platform",
                "virtual_hosts": [
                    {
                        "name": "platform",
                        "domains": ["*"],
                        "routes": [
                            {
                                "match": {"prefix": "/"},
                                "route": {
                                    "cluster": UPSTREAM_CLUSTER,
                                    # A route timeout would cut streams short; the client's deadline governs.
                                    "timeout": "0s",
                                    "max_stream_duration": {"grpc_timeout_header_max": "0s"},
                                },
                            }
                        ],
                    }
                ],
            },
            "http_filters": [
                {
                    "name": "envoy.filters.http.grpc_web",
                    "typed_config": {"@type": f"{_TYPE}.filters.http.grpc_web.v3.GrpcWeb"},
                },
                _transcoder(settings.descriptor_set, services),
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": f"{_TYPE}.filters.http.router.v3.Router"},
                },
            ],
        },
    }


def _upstream_cluster(settings: GatewaySettings) -> dict:
    return {
        "name": UPSTREAM_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "per_connection_buffer_limit_bytes": MAX_MESSAGE_BYTES,
        # Required for a gRPC upstream: without it the config validates and every call 502s.
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": f"{_TYPE}.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": UPSTREAM_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": settings.upstream_host,
                                        "port_value": settings.upstream_port,
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "2s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": ""},
            }
        ],
        "circuit_breakers": {
            "thresholds": [
                {"priority": "DEFAULT", "max_connections": 1024, "max_pending_requests": 1024, "max_requests": 4096}
            ]
        },
    }


def build_config(settings: GatewaySettings) -> dict:
    """The Envoy bootstrap as a dict (JSON is valid Envoy YAML)."""
    services = platform_services(settings.descriptor_set)
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": settings.admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway_http",
                    "address": {"socket_address": {"address": settings.listen_host, "port_value": settings.http_port}},
                    "per_connection_buffer_limit_bytes": MAX_MESSAGE_BYTES,
                    "filter_chains": [{"filters": [_http_connection_manager(settings, services)]}],
                }
            ],
            "clusters": [_upstream_cluster(settings)],
        },
    }


def write_config(settings: GatewaySettings, path: pathlib.Path) -> pathlib.Path:
    """Write the bootstrap for `settings` to `path` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_config(settings), indent=2))
    return path
