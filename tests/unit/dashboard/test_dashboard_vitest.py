"""The dashboard's TypeScript unit tests (Vitest: NDJSON framing, Greeks aggregation, token refresh, stream
resume), run from the suite so `make test` covers them."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.mark.timeout(600)
def test_dashboard_unit_tests_pass() -> None:
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed: the dashboard's unit tests need Node.js 20 with npm")
    done = subprocess.run(
        ["make", "--no-print-directory", "dashboard-test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert " passed" in output and " failed" not in output, output[-4000:]
