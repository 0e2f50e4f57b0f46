#!/usr/bin/env bash
# Build the platform into a fresh virtual environment: the build stage of deploy/Dockerfile runs exactly this,
# and tests/integration/test_deploy_image.py runs it too, so the image's recipe is known to work without Docker.
#
# usage: deploy/build.sh SOURCE_DIR VENV_DIR
#   SOURCE_DIR  a checkout of the project (pyproject.toml, setup.py, proto/, core_ext/, services/, gateway/...)
#   VENV_DIR    where the virtual environment goes (/opt/tastyplat in the image)
# TASTYPLAT_MARCH picks the ISA core_ext is compiled for (default x86-64-v3, AVX2: portable across nodes;
# "native" would tie the image to the build machine's CPU).
set -euo pipefail

src=$(cd "$1" && pwd)
venv=$2
python=${PYTHON:-python3}

"$python" -m venv "$venv"
# The build (protoc for the contracts, cythonize + gcc for core_ext) runs in pip's isolated build environment
# with the versions pinned in pyproject.toml's [build-system]; the result is a normal, non-editable install.
TASTYPLAT_MARCH=${TASTYPLAT_MARCH:-x86-64-v3} "$venv/bin/pip" install --no-cache-dir --disable-pip-version-check \
  --no-compile --quiet "$src"

# Envoy's JSON transcoder reads the descriptor set from a fixed path (deploy/kubernetes/base/gateway/envoy.json).
mkdir -p "$venv/share/tastyplat"
"$venv/bin/python" -I - "$venv/share/tastyplat/descriptor_set.pb" <<'PY'
import shutil, sys
from gateway.config import default_descriptor_set
shutil.copyfile(default_descriptor_set(), sys.argv[1])
PY

# The root file system is read-only at run time: compile every module now, since nothing can write .pyc later.
"$venv/bin/python" -m compileall -q -j 0 "$venv/lib" >/dev/null

# Smoke: the compiled core, the generated contracts and every service's entry point import.
"$venv/bin/python" -I - <<'PY'
import importlib
import core_ext
from services.platform.catalogue import CATALOGUE
assert core_ext.__file__ and "site-packages" in core_ext.__file__, core_ext.__file__
for service in CATALOGUE:
    service.modules()                                   # tastyplat.<svc>.v1.<svc>_service_pb2 / _pb2_grpc
    importlib.import_module(f"services.{service.name}")
print("build ok:", ", ".join(s.name for s in CATALOGUE))
PY
