"""buf lint (STANDARD + COMMENTS) is clean, with the one documented exception."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _buf() -> str:
    beside_python = pathlib.Path(sys.executable).parent / "buf"
    found = str(beside_python) if beside_python.exists() else shutil.which("buf")
    if found is None:
        pytest.fail("buf is not installed (the dev extra installs buf-bin)")
    return found


def test_buf_lint_is_clean() -> None:
    result = subprocess.run([_buf(), "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_buf_config_uses_standard_and_comments() -> None:
    config = (ROOT / "buf.yaml").read_text()
    assert "version: v2" in config
    assert "- STANDARD" in config and "- COMMENTS" in config and "- FILE" in config


def test_only_the_http_body_download_has_a_lint_exception() -> None:
    ignores = [
        (path.relative_to(ROOT / "proto").as_posix(), line.strip(), lines[i + 1].strip() if i + 1 < len(lines) else "")
        for path in sorted((ROOT / "proto").rglob("*.proto"))
        for lines in [path.read_text().splitlines()]
        for i, line in enumerate(lines)
        if "buf:lint:ignore" in line
    ]
    assert ignores == [
        (
            "tastyplat/reporting/v1/reporting_service.proto",
            "// buf:lint:ignore RPC_RESPONSE_STANDARD_NAME",
            "rpc CreateReport(CreateReportRequest) returns (stream google.api.HttpBody) {",
        )
    ]
