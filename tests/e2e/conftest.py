"""Fixtures for end-to-end tests: the embedded platform started once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from embedded_proc import EmbeddedPlatform, start_embedded


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPlatform]:
    """The embedded platform, started once per test module and stopped with SIGTERM afterwards."""
    platform = start_embedded(tmp_path_factory.mktemp("embedded"))
    try:
        yield platform
    finally:
        platform.stop()
