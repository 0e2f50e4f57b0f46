"""Validation of report and analysis requests (the rules the contract lists, in its order)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.reporting.domain.errors import (
    CsvNeedsOneSection,
    FieldInvalid,
    FieldRequired,
    TimeRangeInvalid,
)
from services.reporting.domain.model import ReportFormat, ReportSpec, Section

__all__ = ["file_name", "validate_period", "validate_report"]

NEW_YORK = ZoneInfo("America/New_York")


def validate_period(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime | None, datetime]:
    """(start, end) with end defaulting to now.

    Raises:
        TimeRangeInvalid: start is after end.
    """
    end = end if end is not None else now
    if start is not None and start > end:
        raise TimeRangeInvalid()
    return start, end


def validate_report(
    account_number: str,
    report_format: int,
    sections: Sequence[int],
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    request_id: str = "",
) -> ReportSpec:
    """A checked report request.

    Raises:
        FieldRequired: account_number empty, or format UNSPECIFIED.
        TimeRangeInvalid: start after end.
        CsvNeedsOneSection: CSV with other than one section.
        FieldInvalid: a section UNSPECIFIED, unknown or repeated.
    """
    if not account_number:
        raise FieldRequired("account_number")
    if report_format not in (ReportFormat.XLSX, ReportFormat.CSV):
        if report_format == 0:
            raise FieldRequired("format")
        raise FieldInvalid("format", f"unknown format {report_format}")
    start, end = validate_period(start, end, now)
    fmt = ReportFormat(report_format)
    if fmt is ReportFormat.CSV and len(sections) != 1:
        raise CsvNeedsOneSection(len(sections))
    seen: list[Section] = []
    for i, value in enumerate(sections):
        if value not in Section._value2member_map_:
            raise FieldInvalid(f"sections[{i}]", "is UNSPECIFIED or unknown")
        section = Section(value)
        if section in seen:
            raise FieldInvalid(f"sections[{i}]", f"repeats {section.name}")
        seen.append(section)
    chosen = tuple(seen) if seen else tuple(Section)
    return ReportSpec(account_number, fmt, chosen, start, end, request_id)


def file_name(spec: ReportSpec) -> str:
    """The download name, e.g. "5WW55555-2024-06.xlsx" or "5WW55555-2024-06-transactions.csv"."""
    last = (spec.end - timedelta(microseconds=1)).astimezone(NEW_YORK)
    if spec.start is None or spec.start.astimezone(NEW_YORK).strftime("%Y-%m") == last.strftime("%Y-%m"):
        period = last.strftime("%Y-%m")
    else:
        period = f"{spec.start.astimezone(NEW_YORK):%Y-%m-%d}_{last:%Y-%m-%d}"
    safe = "".join(ch for ch in spec.account_number if ch.isalnum() or ch in "-_")
    if spec.format is ReportFormat.CSV:
        return f"{safe}-{period}-{spec.sections[0].name.lower().replace('_', '-')}.csv"
    return f"{safe}-{period}.xlsx"
