"""JSON log lines: one object per line with the standard fields, extras and tracebacks."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

from services.platform.context import set_call_context


def test_log_line_is_json_with_standard_and_extra_fields(json_logs: Callable[[], list[dict[str, Any]]]) -> None:
    logging.getLogger("tastyplat.test").info("price %s", 1.5, extra={"symbol": "SPY"})
    (line,) = [entry for entry in json_logs() if entry["logger"] == "tastyplat.test"]
    assert line["message"] == "price 1.5" and line["level"] == "INFO" and line["symbol"] == "SPY"
    assert line["timestamp"].endswith("+00:00")
    assert line["request_id"] is None


def test_request_id_comes_from_the_call_context(json_logs: Callable[[], list[dict[str, Any]]]) -> None:
    call_context = contextvars.copy_context()
    call_context.run(set_call_context, "req-ctx", None)
    call_context.run(logging.getLogger("tastyplat.test").warning, "inside")
    logging.getLogger("tastyplat.test").warning("outside")
    by_message = {e["message"]: e["request_id"] for e in json_logs() if e["logger"] == "tastyplat.test"}
    assert by_message == {"inside": "req-ctx", "outside": None}


def test_exception_is_logged_with_traceback(json_logs: Callable[[], list[dict[str, Any]]]) -> None:
    try:
        raise ValueError("bad tick")
    except ValueError:
        logging.getLogger("tastyplat.test").exception("failed")
    (line,) = [entry for entry in json_logs() if entry["logger"] == "tastyplat.test"]
    assert "Traceback" in line["exception"] and "ValueError: bad tick" in line["exception"]
