"""The container image's recipe without a Docker engine: the Dockerfile's shape, and its build stage (deploy/build.sh)
run for real into a clean virtual environment from a copy of the sources, then the result used as the image would."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages and line.strip() and not line.lstrip().startswith("#"):
            stages[-1].append(line.strip())
    return stages


def test_dockerfile_builds_in_one_stage_and_runs_from_another() -> None:
    build, runtime = _stages()
    assert build[0].endswith("AS build") and runtime[0].endswith("AS runtime")
    assert any("bash deploy/build.sh /src /opt/tastyplat" in line for line in build)
    assert any("build-essential" in line for line in build), "gcc compiles core_ext"
    assert not any("build-essential" in line for line in runtime), "no compiler in the runtime image"
    copies = [line for line in runtime if line.startswith("COPY")]
    assert copies == ["COPY --from=build /opt/tastyplat /opt/tastyplat"]


def test_dockerfile_runs_as_a_fixed_non_root_user() -> None:
    runtime = _stages()[-1]
    users = [line for line in runtime if line.startswith("USER ")]
    assert users, "no USER in the runtime stage: it would run as root"
    uid, _, gid = users[-1].split()[1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0, "numeric, so runAsNonRoot can check it"
    assert any("PYTHONDONTWRITEBYTECODE=1" in line for line in runtime), "the root file system is read-only"


def test_dockerfile_copies_everything_the_build_needs() -> None:
    copied = set()
    for line in _stages()[0]:
        if line.startswith("COPY "):
            copied.update(part.rstrip("/") for part in line.split()[1:-1])
    needed = {"pyproject.toml", "setup.py", "build_support", "proto", "third_party", "core_ext", "services", "gateway"}
    assert needed <= copied, needed - copied


def _tracked_sources(destination: pathlib.Path) -> None:
    # What `docker build` would see: the tracked files of the working tree (gen/, build/, .venv are ignored).
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for relative in filter(None, files):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_the_build_stage_produces_a_working_environment(tmp_path: pathlib.Path) -> None:
    source, venv = tmp_path / "src", tmp_path / "venv"
    _tracked_sources(source)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    environment["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    built = subprocess.run(
        ["bash", str(ROOT / "deploy" / "build.sh"), str(source), str(venv)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=220, check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-5000:]
    assert "build ok: broker, marketdata, portfolio, user, calculator, deltamonitor, notification, reporting" in built.stdout

    python = str(venv / "bin" / "python")

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "-I", *args], cwd=tmp_path, env={**environment, **extra_env}, capture_output=True, text=True,
            timeout=60, check=False,
        )

    # The compiled core prices an option (Hull's example 15.6) from the fresh environment, not from the sources.
    priced = run("-c", "import core_ext, core_ext._bsm as m; g = core_ext.greeks('call', 42.0, 40.0, 0.5, 0.2, 0.1); "
                       "print(m.__file__); print(round(g.price, 4))")
    assert priced.returncode == 0, priced.stderr
    location, price = priced.stdout.split()
    assert location.startswith(str(venv)) and location.endswith(".so")
    assert price == "4.7594"
    # Generated contracts and the descriptor set Envoy's transcoder reads in the image.
    contracts = run("-c", "from tastyplat.user.v1 import user_service_pb2_grpc; from gateway.config import platform_services, "
                          "default_descriptor_set; print(len(platform_services(default_descriptor_set())))")
    assert contracts.returncode == 0, contracts.stderr
    assert int(contracts.stdout) == 9  # eight services and gRPC health
    assert (venv / "share" / "tastyplat" / "descriptor_set.pb").stat().st_size > 10_000
    # Every module was compiled at build time (the image's root file system is read-only).
    assert list((venv / "lib").glob("python3*/site-packages/services/platform/__pycache__/server.*.pyc"))
    # An entry point as Kubernetes starts it: a bad setting stops it with status 2 naming the variable.
    entry = run("-m", "services.calculator", CALCULATOR_PORT="not-a-port")
    assert entry.returncode == 2 and "CALCULATOR_PORT" in entry.stderr
    # The gateway runs Envoy from the same image.
    envoy = subprocess.run([str(venv / "bin" / "envoy"), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert envoy.returncode == 0 and re.search(r"\b1\.40\.\d+\b", envoy.stdout), envoy.stdout + envoy.stderr
