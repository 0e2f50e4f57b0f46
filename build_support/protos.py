"""Generate the protobuf/gRPC Python code and the Envoy descriptor set from proto/ (run by setup.py).

Also runnable on its own: ``python -m build_support.protos``.
"""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party" / "googleapis"
GRPC_PROTOS = ROOT / "third_party" / "grpc"
GEN_ROOT = ROOT / "gen"
DESCRIPTOR_SET = GEN_ROOT / "tastyplat" / "descriptor_set.pb"
# Beyond our own contracts, Envoy's transcoder needs google.rpc (to render error details as JSON) and
# grpc.health.v1 (so health can be called over REST); these go into the descriptor set only.
DESCRIPTOR_EXTRAS = ("google/rpc/status.proto", "google/rpc/error_details.proto", "grpc/health/v1/health.proto")


def _proto_files() -> list[pathlib.Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def proto_packages() -> list[str]:
    """Python packages implied by the proto tree (tastyplat, tastyplat.x, tastyplat.x.v1, ...)."""
    packages: set[str] = set()
    for proto in _proto_files():
        parts = proto.parent.relative_to(PROTO_ROOT).parts
        for depth in range(1, len(parts) + 1):
            packages.add(".".join(parts[:depth]))
    return sorted(packages)


def generate_protos() -> None:
    """Run protoc over every contract; write *_pb2.py, *_pb2.pyi, *_pb2_grpc.py and the descriptor set."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    GEN_ROOT.mkdir(exist_ok=True)
    files = [str(p.relative_to(PROTO_ROOT)) for p in _proto_files()]
    includes = [f"-I{PROTO_ROOT}", f"-I{THIRD_PARTY}", f"-I{GRPC_PROTOS}", f"-I{well_known}"]
    codegen = [
        "grpc_tools.protoc",
        *includes,
        f"--python_out={GEN_ROOT}",
        f"--pyi_out={GEN_ROOT}",
        f"--grpc_python_out={GEN_ROOT}",
        *files,
    ]
    descriptors = [
        "grpc_tools.protoc",
        *includes,
        f"--descriptor_set_out={DESCRIPTOR_SET}",
        "--include_imports",
        "--include_source_info",
        *files,
        *DESCRIPTOR_EXTRAS,
    ]
    DESCRIPTOR_SET.parent.mkdir(parents=True, exist_ok=True)
    for args in (codegen, descriptors):
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed; see the messages above")
    for package in proto_packages():
        init = GEN_ROOT.joinpath(*package.split("."), "__init__.py")
        init.parent.mkdir(parents=True, exist_ok=True)
        if not init.exists():
            init.write_text('"""Generated from proto/; do not edit."""\n')
    (GEN_ROOT / "tastyplat" / "py.typed").write_text("")


if __name__ == "__main__":
    generate_protos()
    print(f"generated {len(_proto_files())} protos into {GEN_ROOT}")
