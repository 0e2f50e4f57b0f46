"""Fixtures for the contract tests: the compiled descriptor set of proto/, indexed for lookups."""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile

import pytest
from google.api import annotations_pb2  # noqa: F401  (registers the google.api.http extension for parsing)
from google.protobuf import descriptor_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
BUILD_DESCRIPTOR_SET = ROOT / "gen" / "tastyplat" / "descriptor_set.pb"


@dataclasses.dataclass(frozen=True)
class Contracts:
    """The platform's contracts, compiled from proto/ with source comments."""

    files: dict[str, descriptor_pb2.FileDescriptorProto]
    messages: dict[str, descriptor_pb2.DescriptorProto]
    enums: dict[str, descriptor_pb2.EnumDescriptorProto]
    services: dict[str, descriptor_pb2.ServiceDescriptorProto]
    comments: dict[tuple[str, tuple[int, ...]], str]
    service_paths: dict[str, tuple[str, tuple[int, ...]]]
    message_paths: dict[str, tuple[str, tuple[int, ...]]]

    def own_files(self) -> list[descriptor_pb2.FileDescriptorProto]:
        """The files under proto/ (package tastyplat.*), not their imports."""
        return [f for name, f in self.files.items() if name.startswith("tastyplat/")]

    def method_comment(self, service: str, method: str) -> str:
        """Leading comment of an RPC."""
        file_name, path = self.service_paths[service]
        names = [m.name for m in self.services[service].method]
        return self.comments.get((file_name, (*path, 2, names.index(method))), "")

    def field_comment(self, message: str, field: str) -> str:
        """Leading comment of a message field."""
        file_name, path = self.message_paths[message]
        names = [f.name for f in self.messages[message].field]
        return self.comments.get((file_name, (*path, 2, names.index(field))), "")


def _compile(proto_root: pathlib.Path, out: pathlib.Path) -> descriptor_pb2.FileDescriptorSet:
    import grpc_tools
    from grpc_tools import protoc

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{ROOT / 'third_party' / 'googleapis'}",
        f"-I{well_known}",
        f"--descriptor_set_out={out}",
        "--include_imports",
        "--include_source_info",
        *files,
    ]
    assert protoc.main(args) == 0, "protoc failed on proto/; see the messages above"
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def index(fds: descriptor_pb2.FileDescriptorSet) -> Contracts:
    """Index a descriptor set by fully qualified name."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
    services: dict[str, descriptor_pb2.ServiceDescriptorProto] = {}
    comments: dict[tuple[str, tuple[int, ...]], str] = {}
    service_paths: dict[str, tuple[str, tuple[int, ...]]] = {}
    message_paths: dict[str, tuple[str, tuple[int, ...]]] = {}

    def add_message(file_name: str, prefix: str, msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...]) -> None:
        full = f"{prefix}.{msg.name}"
        messages[full] = msg
        message_paths[full] = (file_name, path)
        for i, nested in enumerate(msg.nested_type):
            add_message(file_name, full, nested, (*path, 3, i))
        for nested_enum in msg.enum_type:
            enums[f"{full}.{nested_enum.name}"] = nested_enum

    for f in fds.file:
        files[f.name] = f
        for i, msg in enumerate(f.message_type):
            add_message(f.name, f.package, msg, (4, i))
        for enum in f.enum_type:
            enums[f"{f.package}.{enum.name}"] = enum
        for i, svc in enumerate(f.service):
            services[f"{f.package}.{svc.name}"] = svc
            service_paths[f"{f.package}.{svc.name}"] = (f.name, (6, i))
        for loc in f.source_code_info.location:
            if loc.leading_comments:
                comments[(f.name, tuple(loc.path))] = loc.leading_comments
    return Contracts(files, messages, enums, services, comments, service_paths, message_paths)


@pytest.fixture(scope="session")
def source_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The contracts as they are in proto/ now, compiled afresh."""
    with tempfile.TemporaryDirectory() as tmp:
        return _compile(PROTO_ROOT, pathlib.Path(tmp) / "contracts.pb")


@pytest.fixture(scope="session")
def contracts(source_descriptor_set: descriptor_pb2.FileDescriptorSet) -> Contracts:
    """The contracts in proto/, indexed."""
    return index(source_descriptor_set)


@pytest.fixture(scope="session")
def build_contracts() -> Contracts:
    """The descriptor set the build wrote for Envoy (gen/tastyplat/descriptor_set.pb), indexed."""
    assert BUILD_DESCRIPTOR_SET.exists(), (
        f"{BUILD_DESCRIPTOR_SET} is missing: run `python -m build_support.protos` (or `pip install -e .`)"
    )
    return index(descriptor_pb2.FileDescriptorSet.FromString(BUILD_DESCRIPTOR_SET.read_bytes()))
