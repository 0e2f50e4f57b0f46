"""Build: generate protobuf/gRPC code and the Envoy descriptor set, and compile the Cython core."""

from __future__ import annotations

import os
import pathlib
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party" / "googleapis"
GEN_ROOT = ROOT / "gen"
DESCRIPTOR_SET = GEN_ROOT / "tastyplat" / "descriptor_set.pb"


def _proto_files() -> list[pathlib.Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def _proto_packages() -> list[str]:
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
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{THIRD_PARTY}",
        f"-I{well_known}",
        f"--python_out={GEN_ROOT}",
        f"--pyi_out={GEN_ROOT}",
        f"--grpc_python_out={GEN_ROOT}",
        f"--descriptor_set_out={DESCRIPTOR_SET}",
        "--include_imports",
        "--include_source_info",
        *files,
    ]
    DESCRIPTOR_SET.parent.mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    for package in _proto_packages():
        init = GEN_ROOT.joinpath(*package.split("."), "__init__.py")
        init.parent.mkdir(parents=True, exist_ok=True)
        if not init.exists():
            init.write_text('"""Generated from proto/; do not edit."""\n')
    (GEN_ROOT / "tastyplat" / "py.typed").write_text("")


class BuildPyWithProtos(build_py):
    """build_py that first regenerates the protobuf modules (also runs for editable installs)."""

    def run(self) -> None:
        generate_protos()
        super().run()


# Compiler flags for the pricing kernel. -fno-math-errno lets gcc call glibc's SIMD maths (libmvec)
# without -ffast-math, so NaN/Inf semantics stay IEEE. TASTYPLAT_MARCH picks the target ISA: "native"
# for this machine, "x86-64-v3" for a portable AVX2 build.
MARCH = os.environ.get("TASTYPLAT_MARCH", "native")
CORE_EXT_COMPILE_ARGS = ["-O3", f"-march={MARCH}", "-fno-math-errno"]
CORE_EXT_LINK_ARGS = ["-lm", "-lmvec"] if sys.platform.startswith("linux") else []

extensions = cythonize(
    [
        Extension(
            "core_ext._bsm",
            ["core_ext/_bsm.pyx"],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=CORE_EXT_COMPILE_ARGS,
            extra_link_args=CORE_EXT_LINK_ARGS,
        )
    ],
    compiler_directives={"language_level": "3", "embedsignature": True},
)

setup(
    packages=_proto_packages()
    + find_packages(include=["services", "services.*", "core_ext", "core_ext.*", "gateway", "gateway.*"]),
    package_dir={"tastyplat": "gen/tastyplat"},
    package_data={
        "tastyplat": ["descriptor_set.pb", "py.typed"],
        "": ["*.pyi", "py.typed"],
    },
    ext_modules=extensions,
    cmdclass={"build_py": BuildPyWithProtos},
)
