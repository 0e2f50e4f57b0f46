"""Portfolio and reports end to end on the embedded platform of ``make run``: REST through Envoy with a real
user's token, the paper account's Greeks and P&L, and a report downloaded as a file."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import pytest
from embedded_proc import EmbeddedPlatform  # tests/e2e: the `embedded` fixture's platform (make run's)
from openpyxl import load_workbook

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery staple 42"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def session(embedded: EmbeddedPlatform) -> tuple[dict[str, str], str]:
    email = f"trader-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=embedded.rest_base, timeout=30) as client:
        assert client.post("/v1/users", json={"email": email, "password": PASSWORD}).status_code == 200
        login = client.post("/v1/auth:login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"authorization": f"Bearer {login.json()['tokens']['access_token']}"}
        accounts = client.get("/v1/accounts", headers=headers)
        assert accounts.status_code == 200, accounts.text
    return headers, accounts.json()["accounts"][0]["account_number"]


def test_greeks_and_pnl_over_rest(embedded: EmbeddedPlatform, session: tuple[dict[str, str], str]) -> None:
    headers, account = session
    greeks = httpx.get(f"{embedded.rest_base}/v1/portfolios/{account}/greeks", headers=headers, timeout=60)
    assert greeks.status_code == 200, greeks.text
    body = greeks.json()
    assert body["benchmark_symbol"] == "SPY"
    assert {u["underlying_symbol"] for u in body["underlyings"]} == {"AAPL", "QQQ", "SPY", "TSLA"}
    pnl = httpx.get(f"{embedded.rest_base}/v1/portfolios/{account}/pnl", headers=headers, timeout=60)
    assert pnl.status_code == 200, pnl.text
    assert pnl.json()["account"]["key"] == account


def test_a_report_downloads_as_a_file(embedded: EmbeddedPlatform, session: tuple[dict[str, str], str]) -> None:
    headers, account = session
    response = httpx.post(
        f"{embedded.rest_base}/v1/reports", headers=headers, timeout=120,
        json={"accountNumber": account, "format": "REPORT_FORMAT_XLSX", "sections": ["REPORT_SECTION_POSITIONS", "REPORT_SECTION_SCENARIOS"]},
    )
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == XLSX
    assert response.headers["content-disposition"].startswith('attachment; filename="')
    assert response.headers["content-disposition"].endswith('.xlsx"')
    assert response.headers["x-request-id"]
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Positions", "Scenarios"]
    assert workbook["Scenarios"]._charts


def test_a_csv_report_over_rest_round_trips(embedded: EmbeddedPlatform, session: tuple[dict[str, str], str]) -> None:
    headers, account = session
    response = httpx.post(
        f"{embedded.rest_base}/v1/reports", headers=headers, timeout=120,
        json={"accountNumber": account, "format": "REPORT_FORMAT_CSV", "sections": ["REPORT_SECTION_TRANSACTIONS"]},
    )
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert rows and rows[0]["Type"] in {"TRADE", "MONEY_MOVEMENT", "RECEIVE_DELIVER"}
