"""XLSX and CSV files: openpyxl gives back the numbers and charts, LibreOffice opens and prints the workbook,
and CSV round-trips through the csv module."""

from __future__ import annotations

import csv
import io
import pathlib
import re
import subprocess
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from services.reporting.adapters.writers import NUMBER_FORMATS, write_csv, write_xlsx
from services.reporting.domain.tables import (
    Kind,
    alerts_table,
    daily_pnl_table,
    pnl_table,
    positions_table,
    scenario_table,
    snapshots_table,
    transactions_table,
)
from tests.unit.reporting.reporting_data import sample_account

D = Decimal


def _tables():
    a = sample_account()
    return [
        positions_table(a.positions),
        pnl_table(a.pnl),
        daily_pnl_table(a.daily),
        snapshots_table(a.snapshots),
        transactions_table(a.transactions),
        alerts_table([*a.delta_alerts, *a.risk_alerts]),
        scenario_table(a.scenario),
    ]


@pytest.fixture
def workbook_path(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "report.xlsx"
    with path.open("wb") as handle:
        rows = write_xlsx(_tables(), handle)
    a = sample_account()
    assert rows == len(a.positions) + len(a.pnl) + len(a.daily) + len(a.snapshots) + len(a.transactions) + 2 + 5 * 3 * 2
    return path


def test_openpyxl_reads_back_the_numbers(workbook_path: pathlib.Path) -> None:
    wb = load_workbook(workbook_path)
    assert wb.sheetnames == ["Positions", "P&L", "P&L over time", "Delta over time", "Transactions", "Alerts", "Scenarios"]
    ws = wb["Positions"]
    header = [c.value for c in ws[1]]
    row = {h: c.value for h, c in zip(header, ws[3])}
    assert row["Symbol"] == "SPY   240419P00480000"
    assert row["Market value"] == -620.0
    assert row["Unrealized P&L"] == 180.0
    assert row["Implied vol"] == pytest.approx(0.171)
    assert row["Expiration (New York)"].isoformat() == "2024-04-19T16:00:00"
    assert ws["L3"].number_format == NUMBER_FORMATS[Kind.MONEY]
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["A"].width == 24
    tx = wb["Transactions"]
    assert [c.value for c in tx[2]][10:16] == [400, -1, -0.1, -0.04, 0, 398.86]


def test_openpyxl_reads_back_the_charts(workbook_path: pathlib.Path) -> None:
    wb = load_workbook(workbook_path)
    pnl_chart = wb["P&L over time"]._charts[0]
    assert pnl_chart.tagname == "lineChart"
    assert pnl_chart.series[0].val.numRef.f == "'P&L over time'!$C$2:$C$6"
    assert wb["Delta over time"]._charts[0].tagname == "lineChart"
    curve = wb["Scenarios"]._charts[0]
    assert curve.tagname == "scatterChart"
    # One curve per date at the zero vol shift: rows 7-11 (day 0) and 22-26 (day 7).
    assert [s.yVal.numRef.f for s in curve.series] == ["'Scenarios'!$E$7:$E$11", "'Scenarios'!$E$22:$E$26"]
    ws = wb["Scenarios"]
    assert [ws.cell(r, 5).value for r in range(7, 12)] == pytest.approx([-2000.0, -1000.0, 0.0, 1000.0, 2000.0])


# The set-up may install LibreOffice from Debian first, which takes minutes on a fresh machine.
@pytest.mark.timeout(900)
def test_libreoffice_opens_the_workbook_and_prints_it_to_pdf(workbook_path: pathlib.Path, soffice: str, tmp_path: pathlib.Path) -> None:
    profile = tmp_path / "lo-profile"
    out = tmp_path / "out"
    done = subprocess.run(
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf", "--outdir", str(out),
         str(workbook_path)],
        capture_output=True, text=True, timeout=150,
    )
    assert done.returncode == 0, done.stderr
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    # Seven sheets, the wide ones spread over several pages.
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 7
    # LibreOffice read the numbers too: its own CSV export of the first sheet has the short put's figures.
    done = subprocess.run(
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "csv", "--outdir", str(out),
         str(workbook_path)],
        capture_output=True, text=True, timeout=150,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO((out / "report.csv").read_text())))
    assert rows[0][0] == "Symbol"
    assert rows[2][0] == "SPY   240419P00480000"
    assert rows[2][11:14] == ["-620", "-800", "180"]


def test_csv_round_trips_through_the_csv_module() -> None:
    a = sample_account()
    buffer = io.StringIO(newline="")
    rows = write_csv(transactions_table(a.transactions), buffer)
    assert rows == len(a.transactions)
    parsed = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    assert [r["Id"] for r in parsed] == [t.transaction_id for t in a.transactions]
    assert [D(r["Net value"]) for r in parsed] == [t.net_value for t in a.transactions]
    assert parsed[0]["Executed"] == "2024-03-01T15:00:00+00:00"
    assert parsed[0]["Description"] == "row 1"
