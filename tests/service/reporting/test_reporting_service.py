"""ReportingService through its generated stubs: streamed files with metadata and trailer, retries, analysis, errors."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from decimal import Decimal

import grpc
import pytest
from openpyxl import load_workbook
from tastyplat.reporting.v1 import reporting_service_pb2 as pb

from services.platform.error_mapping import decode_error
from tests.service.reporting.conftest import ACCOUNT, ReportingRig

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def download(rig: ReportingRig, request: pb.CreateReportRequest, user: str = "alice"):
    call = rig.stub.CreateReport(request, metadata=rig.auth(user))
    initial = dict(await call.initial_metadata())
    chunks = [message async for message in call]
    trailing = dict(await call.trailing_metadata())
    return initial, chunks, trailing


def _dec(m) -> Decimal:
    return Decimal(m.units) + Decimal(m.nanos).scaleb(-9)


async def test_xlsx_streams_in_chunks_with_metadata_and_trailer(rig: ReportingRig) -> None:
    initial, chunks, trailing = await download(
        rig, pb.CreateReportRequest(account_number=ACCOUNT, format=pb.REPORT_FORMAT_XLSX)
    )
    data = b"".join(c.data for c in chunks)
    assert chunks[0].content_type == XLSX
    assert all(not c.extensions for c in chunks)
    meta = pb.ReportMetadata.FromString(initial["x-report-metadata-bin"])
    assert initial["content-disposition"] == f'attachment; filename="{meta.file_name}"'
    assert meta.file_name.startswith(f"{ACCOUNT}-") and meta.file_name.endswith(".xlsx")
    assert list(meta.sections) == [1, 2, 3, 4, 5]
    trailer = pb.ReportTrailer.FromString(trailing["x-report-trailer-bin"])
    assert trailer.size_bytes == len(data)
    assert trailer.sha256 == hashlib.sha256(data).hexdigest()
    wb = load_workbook(io.BytesIO(data))
    assert "Alerts" in wb.sheetnames
    alerts = wb["Alerts"]
    assert [alerts.cell(r, 3).value for r in (2, 3)] == ["DELTA_BREACH", "RISK_LIMIT_BREACH"]
    assert trailer.row_count == sum(ws.max_row - 1 for ws in wb.worksheets)


async def test_csv_of_one_section_round_trips(rig: ReportingRig) -> None:
    _, chunks, _ = await download(
        rig,
        pb.CreateReportRequest(
            account_number=ACCOUNT, format=pb.REPORT_FORMAT_CSV, sections=[pb.REPORT_SECTION_TRANSACTIONS]
        ),
    )
    assert chunks[0].content_type == "text/csv; charset=utf-8"
    text = b"".join(c.data for c in chunks).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [Decimal(r["Value"]) for r in rows] == [Decimal("400.00"), Decimal("-250.00"), Decimal("-120.00"),
                                                    Decimal("-48000.00"), Decimal("48.50")]


async def test_a_retry_with_the_same_request_id_streams_the_same_file(rig: ReportingRig) -> None:
    request = pb.CreateReportRequest(request_id="r-1", account_number=ACCOUNT, format=pb.REPORT_FORMAT_XLSX,
                                     sections=[pb.REPORT_SECTION_POSITIONS])
    first_meta, first, _ = await download(rig, request)
    calls = rig.sources.calls
    second_meta, second, _ = await download(rig, request)
    assert b"".join(c.data for c in first) == b"".join(c.data for c in second)
    assert first_meta["x-report-metadata-bin"] == second_meta["x-report-metadata-bin"]
    assert rig.sources.calls == calls  # nothing was read again


async def test_analyze_transactions(rig: ReportingRig) -> None:
    response = await rig.stub.AnalyzeTransactions(
        pb.AnalyzeTransactionsRequest(account_number=ACCOUNT), metadata=rig.auth()
    )
    assert response.trade_count == 4 and response.win_rate == 0.5
    assert _dec(response.average_winner) == Decimal("225")
    assert _dec(response.premium_paid) == Decimal("-370")
    assert [b.key for b in response.by_month] == ["2024-03", "2024-04"]


async def _error(call) -> tuple[grpc.StatusCode, str, list]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    rich = decode_error(raised.value)
    return rich.code, rich.reason, rich.field_violations


async def _stream_error(rig: ReportingRig, request: pb.CreateReportRequest, user: str = "alice"):
    async def consume() -> None:
        async for _ in rig.stub.CreateReport(request, metadata=rig.auth(user)):
            pass

    return await _error(consume())


@pytest.mark.parametrize(
    ("request_kwargs", "reason", "field"),
    [
        ({"format": pb.REPORT_FORMAT_XLSX}, "FIELD_REQUIRED", "account_number"),
        ({"account_number": ACCOUNT}, "FIELD_REQUIRED", "format"),
        ({"account_number": ACCOUNT, "format": pb.REPORT_FORMAT_CSV}, "CSV_NEEDS_ONE_SECTION", "sections"),
        ({"account_number": ACCOUNT, "format": pb.REPORT_FORMAT_XLSX, "sections": [1, 1]}, "FIELD_INVALID", "sections[1]"),
        ({"account_number": ACCOUNT, "format": pb.REPORT_FORMAT_XLSX, "sections": [0]}, "FIELD_INVALID", "sections[0]"),
    ],
)
async def test_bad_report_requests_are_invalid_argument(rig: ReportingRig, request_kwargs, reason, field) -> None:
    code, got, violations = await _stream_error(rig, pb.CreateReportRequest(**request_kwargs))
    assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert violations[0][0] == field


async def test_reversed_period_is_time_range_invalid(rig: ReportingRig) -> None:
    request = pb.CreateReportRequest(account_number=ACCOUNT, format=pb.REPORT_FORMAT_XLSX)
    request.start_time.FromSeconds(2_000_000_000)
    request.end_time.FromSeconds(1_000_000_000)
    code, reason, _ = await _stream_error(rig, request)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TIME_RANGE_INVALID")


async def test_another_users_account_is_not_found(rig: ReportingRig) -> None:
    code, reason, _ = await _stream_error(
        rig, pb.CreateReportRequest(account_number=ACCOUNT, format=pb.REPORT_FORMAT_XLSX), user="mallory"
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")


async def test_too_many_reports_in_progress(rig: ReportingRig) -> None:
    gate = asyncio.Event()
    original = rig.sources.positions

    async def slow_positions(account_number, caller):
        await gate.wait()
        return await original(account_number, caller)

    rig.sources.positions = slow_positions  # type: ignore[method-assign]
    request = pb.CreateReportRequest(account_number=ACCOUNT, format=pb.REPORT_FORMAT_XLSX, sections=[pb.REPORT_SECTION_POSITIONS])
    first = asyncio.create_task(download(rig, request))
    await asyncio.sleep(0.2)
    code, reason, _ = await _stream_error(rig, request)
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_REPORTS")
    gate.set()
    _, chunks, _ = await first
    assert chunks


async def test_missing_token_is_unauthenticated(rig: ReportingRig) -> None:
    code, reason, _ = await _error(rig.stub.AnalyzeTransactions(pb.AnalyzeTransactionsRequest(account_number=ACCOUNT)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "AUTHENTICATION_REQUIRED")


async def test_on_a_server_that_sends_its_own_headers_the_report_headers_move_to_the_trailers(
    rig: ReportingRig,
) -> None:
    from services.platform.testing import client_channel, running_server
    from tastyplat.reporting.v1 import reporting_service_pb2_grpc as pb_grpc

    import dataclasses

    # A registration that does not declare its own initial metadata: the platform sends the request id first.
    registration = dataclasses.replace(rig.assembly.registration, own_initial_metadata=())
    async with running_server([registration]) as server:
        channel = client_channel(server)
        try:
            stub = pb_grpc.ReportingServiceStub(channel)
            call = stub.CreateReport(
                pb.CreateReportRequest(account_number=ACCOUNT, format=pb.REPORT_FORMAT_CSV, sections=[pb.REPORT_SECTION_ALERTS]),
                metadata=rig.auth(),
            )
            data = b"".join([m.data async for m in call])
            trailing = dict(await call.trailing_metadata())
        finally:
            await channel.close()
    assert trailing["content-disposition"].endswith('-alerts.csv"')
    assert pb.ReportTrailer.FromString(trailing["x-report-trailer-bin"]).size_bytes == len(data)


async def test_on_a_default_server_the_wired_registration_sends_the_file_name_first(rig: ReportingRig) -> None:
    from services.platform.testing import client_channel, running_server
    from tastyplat.reporting.v1 import reporting_service_pb2_grpc as pb_grpc

    async with running_server([rig.assembly.registration]) as server:
        channel = client_channel(server)
        try:
            call = pb_grpc.ReportingServiceStub(channel).CreateReport(
                pb.CreateReportRequest(account_number=ACCOUNT, format=pb.REPORT_FORMAT_CSV, sections=[pb.REPORT_SECTION_ALERTS]),
                metadata=rig.auth(),
            )
            initial = dict(await call.initial_metadata())
            _ = [m async for m in call]
            trailing = dict(await call.trailing_metadata())
        finally:
            await channel.close()
    assert initial["content-disposition"].endswith('-alerts.csv"')
    assert trailing["x-request-id"]
