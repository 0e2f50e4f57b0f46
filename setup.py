"""Build: generate protobuf/gRPC code and the Envoy descriptor set, and compile the Cython core."""

from __future__ import annotations

import os
import pathlib
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from build_support.protos import generate_protos, proto_packages  # noqa: E402


# Generated before setup() so that every command (egg_info, build_py, editable installs) sees the packages.
generate_protos()

# Compiler flags for the pricing kernel. -fno-math-errno lets gcc call glibc's SIMD maths (libmvec)
# without -ffast-math, so NaN/Inf semantics stay IEEE. -fno-trapping-math only tells gcc that floating-point
# exceptions never trap (Python never unmasks them), which lets it if-convert, and so vectorize, the
# implied-vol loops; results are unchanged. TASTYPLAT_MARCH picks the target ISA: "native" for this
# machine, "x86-64-v3" for a portable AVX2 build.
MARCH = os.environ.get("TASTYPLAT_MARCH", "native")
# -fopenmp: the American array kernel spreads large arrays over threads (core_ext.set_threads).
CORE_EXT_COMPILE_ARGS = ["-O3", f"-march={MARCH}", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"]
CORE_EXT_LINK_ARGS = ["-lm", "-lmvec", "-fopenmp"] if sys.platform.startswith("linux") else ["-fopenmp"]

extensions = cythonize(
    [
        Extension(
            "core_ext._bsm",
            ["core_ext/_bsm.pyx"],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=CORE_EXT_COMPILE_ARGS,
            extra_link_args=CORE_EXT_LINK_ARGS,
        ),
        # The delta monitor book's per-tick steps (plain loops: no OpenMP, no SIMD maths).
        Extension(
            "services.deltamonitor.domain._book_kernel",
            ["services/deltamonitor/domain/_book_kernel.pyx"],
            extra_compile_args=["-O3", f"-march={MARCH}"],
        ),
    ],
    compiler_directives={"language_level": "3", "embedsignature": True},
)

setup(
    packages=proto_packages()
    + find_packages(include=["services", "services.*", "core_ext", "core_ext.*", "gateway", "gateway.*"]),
    package_dir={"tastyplat": "gen/tastyplat"},
    package_data={
        "tastyplat": ["descriptor_set.pb", "py.typed"],
        "": ["*.pyi", "py.typed"],
    },
    ext_modules=extensions,
)
