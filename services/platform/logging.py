"""JSON log lines (one object per line) carrying the current call's request id, configured once per process."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import IO, Any

from services.platform.context import current_request_id

__all__ = ["JsonFormatter", "RequestIdFilter", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is emitted as a field.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


class RequestIdFilter(logging.Filter):
    """Stamps ``record.request_id`` from the call context unless the caller passed one in ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the request id and keep the record."""
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: timestamp, level, logger, message, request_id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record; exceptions go into an ``exception`` field with the full traceback."""
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in line:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info))
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


_installed: logging.Handler | None = None


def configure_logging(level: int | str = "INFO", *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record to ``stream`` as JSON lines; safe to call again (it replaces, never duplicates).

    Args:
        level: Root logger level.
        stream: Where lines go; stderr by default.

    Returns:
        The installed handler (tests remove it with ``logging.getLogger().removeHandler``).
    """
    global _installed
    # Lines carry none of these, and looking them up costs every record (access lines come per call).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    _installed = handler
    return handler
