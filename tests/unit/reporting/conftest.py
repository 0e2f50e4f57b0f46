"""LibreOffice for the XLSX tests: installed from Debian's packages when ``soffice`` is missing (never skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def soffice() -> str:
    """Path of ``soffice``; runs ``apt-get install libreoffice-calc`` first when it is absent.

    Fails (does not skip) with the reason when it cannot be installed.
    """
    found = shutil.which("soffice")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "libreoffice-calc"],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.fail(f"cannot install LibreOffice: {' '.join(step)} failed: {error}")
        if done.returncode != 0:
            pytest.fail(f"cannot install LibreOffice: {' '.join(step)} exited {done.returncode}: {done.stderr[-2000:]}")
    found = shutil.which("soffice")
    if not found:
        pytest.fail("libreoffice-calc installed but no soffice on PATH")
    return found
