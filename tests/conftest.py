"""Fixtures shared by the whole suite (kept small: each test area adds its own conftest.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.platform.clock import FakeClock
from services.platform.logging import configure_logging


@pytest.fixture
def fake_clock() -> FakeClock:
    """A deterministic clock at 2024-01-02T14:30:00Z that moves only on ``advance``."""
    return FakeClock()


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Capture the platform's JSON log lines at DEBUG; call the fixture's value to get them parsed."""
    stream = io.StringIO()
    root = logging.getLogger()
    previous_level = root.level
    handler = configure_logging("DEBUG", stream=stream)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
