"""File writers: XLSX (openpyxl write-only: rows go to disk as they are appended) and CSV, from report tables."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import LineChart, Reference, ScatterChart, Series
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from services.reporting.domain.tables import Chart, ChartKind, Kind, Table

__all__ = ["EXCEL_MAX_ROWS", "NUMBER_FORMATS", "TableWriter", "write_csv", "write_xlsx"]

NEW_YORK = ZoneInfo("America/New_York")
EXCEL_MAX_ROWS = 1_048_576
NUMBER_FORMATS = {
    Kind.MONEY: '"$"#,##0.00;[Red]-"$"#,##0.00',
    Kind.PRICE: "#,##0.00##",
    Kind.NUMBER: "#,##0.00",
    Kind.QUANTITY: "#,##0.####",
    Kind.PERCENT: "0.00%",
    Kind.DATETIME: "yyyy-mm-dd hh:mm",
}
_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="1F4E78")


def _excel_value(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        # Excel has no time zones: show New York wall time (the header says so).
        return value.astimezone(NEW_YORK).replace(tzinfo=None) if value.tzinfo else value
    return value


def _sheet_title(name: str, part: int) -> str:
    title = name if part == 1 else f"{name} ({part})"
    return "".join("_" if ch in "[]:*?/\\" else ch for ch in title)[:31]


class _SheetWriter:
    def __init__(self, wb: Workbook, table: Table, part: int) -> None:
        self.ws = wb.create_sheet(_sheet_title(table.name, part))
        self.table = table
        self.rows = 0
        self.ranges: dict[Any, list[int]] = {}
        ws = self.ws
        ws.freeze_panes = "A2"
        for i, column in enumerate(table.columns, start=1):
            ws.column_dimensions[get_column_letter(i)].width = column.width
        header = []
        for column in table.columns:
            title = f"{column.header} (New York)" if column.kind is Kind.DATETIME else column.header
            cell = WriteOnlyCell(ws, value=title)
            cell.font = _HEADER_FONT
            cell.fill = _HEADER_FILL
            cell.alignment = Alignment(horizontal="center", wrap_text=True)
            header.append(cell)
        ws.append(header)

    def append(self, values: Sequence[Any]) -> None:
        ws = self.ws
        cells = []
        for column, value in zip(self.table.columns, values):
            cell = WriteOnlyCell(ws, value=_excel_value(value, column.kind))
            fmt = NUMBER_FORMATS.get(column.kind)
            if fmt is not None:
                cell.number_format = fmt
            cells.append(cell)
        ws.append(cells)
        self.rows += 1
        row_number = self.rows + 1
        for chart in self.table.charts:
            if chart.series_filter is not None and values[chart.series_filter[0]] != chart.series_filter[1]:
                continue
            key = (id(chart), values[chart.series_by] if chart.series_by is not None else None)
            span = self.ranges.setdefault(key, [row_number, row_number])
            span[1] = row_number

    def add_charts(self) -> None:
        if self.rows == 0:
            return
        for chart in self.table.charts:
            spans = [(key[1], span) for key, span in self.ranges.items() if key[0] == id(chart)]
            if spans:
                self.ws.add_chart(self._chart(chart, spans), f"{chart.anchor_column}2")

    def _chart(self, spec: Chart, spans: list[tuple[Any, list[int]]]) -> LineChart | ScatterChart:
        ws = self.ws
        headers = [c.header for c in self.table.columns]
        if spec.kind is ChartKind.LINE:
            line = LineChart()
            for y in spec.y_columns:
                line.add_data(Reference(ws, min_col=y + 1, min_row=1, max_row=self.rows + 1), titles_from_data=True)
            line.set_categories(Reference(ws, min_col=spec.x_column + 1, min_row=2, max_row=self.rows + 1))
            line.x_axis.number_format = NUMBER_FORMATS[Kind.DATETIME] if self.table.columns[spec.x_column].kind is Kind.DATETIME else "General"
            chart: LineChart | ScatterChart = line
        else:
            scatter = ScatterChart()
            scatter.style = 13
            for key, (first, last) in spans:
                for y in spec.y_columns:
                    xs = Reference(ws, min_col=spec.x_column + 1, min_row=first, max_row=last)
                    ys = Reference(ws, min_col=y + 1, min_row=first, max_row=last)
                    title = headers[y] if key is None else f"{headers[y]}, {headers[spec.series_by or 0].lower()} {key:g}"
                    series = Series(ys, xs, title=title)
                    series.marker.symbol = "none"
                    scatter.series.append(series)
            scatter.x_axis.number_format = "0%"
            chart = scatter
        chart.title = spec.title
        chart.x_axis.title = spec.x_title
        chart.y_axis.title = spec.y_title
        # openpyxl 3.1 hides axes unless told otherwise; Excel and LibreOffice then draw no labels.
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        chart.height = 9
        chart.width = 18
        return chart


def write_xlsx(tables: Sequence[Table], out: IO[bytes] | str) -> int:
    """Write the tables as sheets of one workbook; return the number of data rows written.

    A table longer than a sheet continues on "<name> (2)", and so on. Every sheet has a bold header row
    frozen in place, column widths, number formats by column kind, and the table's native charts.
    """
    wb = Workbook(write_only=True)
    total = 0
    for table in tables:
        part = 1
        sheet = _SheetWriter(wb, table, part)
        for values in table.values():
            if sheet.rows >= EXCEL_MAX_ROWS - 1:
                sheet.add_charts()
                total += sheet.rows
                part += 1
                sheet = _SheetWriter(wb, table, part)
            sheet.append(values)
        sheet.add_charts()
        total += sheet.rows
    wb.save(out)
    return total


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def write_csv(table: Table, out: IO[str]) -> int:
    """Write one table as CSV (header row, RFC 4180 quoting, exact decimals, ISO 8601 times); return its row count."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header for c in table.columns])
    rows = 0
    for values in table.values():
        writer.writerow([_csv_value(v) for v in values])
        rows += 1
    return rows


class TableWriter:
    """The ``ReportWriter`` port over ``write_xlsx`` and ``write_csv``."""

    def write_xlsx(self, tables: Sequence[Table], out: IO[bytes]) -> int:
        """See ``write_xlsx``."""
        return write_xlsx(tables, out)

    def write_csv(self, table: Table, out: IO[str]) -> int:
        """See ``write_csv``."""
        return write_csv(table, out)
