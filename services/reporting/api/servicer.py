"""The ReportingService servicer: authenticate, validate, build, and stream the file as HttpBody chunks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc.aio
from google.api import httpbody_pb2
from tastyplat.reporting.v1 import reporting_service_pb2 as pb
from tastyplat.reporting.v1 import reporting_service_pb2_grpc as pb_grpc

from services.reporting.api import convert
from services.reporting.app import ReportingApp
from services.reporting.domain.requests import validate_report
from services.reporting.ports import Authenticator

__all__ = ["ReportingServicer"]

log = logging.getLogger("tastyplat.reporting")
Context = grpc.aio.ServicerContext[Any, Any]
_DONE = object()


def _authorization(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None


class ReportingServicer(pb_grpc.ReportingServiceServicer):
    """Implements tastyplat.reporting.v1.ReportingService on ``ReportingApp``."""

    def __init__(self, app: ReportingApp, authenticator: Authenticator) -> None:
        """Serve ``app``; every call is authenticated by ``authenticator``."""
        self._app = app
        self._auth = authenticator

    async def CreateReport(self, request: pb.CreateReportRequest, context: Context) -> None:
        """CreateReport: file name and metadata in the initial metadata, the file as HttpBody chunks, the size and
        SHA-256 in the trailers. No HttpBody ``extensions`` (Envoy's transcoder resets such streams)."""
        caller = await self._auth.authenticate(_authorization(context))
        spec = validate_report(
            request.account_number,
            request.format,
            list(request.sections),
            convert.optional_time(request.start_time, request.HasField("start_time")),
            convert.optional_time(request.end_time, request.HasField("end_time")),
            self._app.clock.now(),
            request.request_id,
        )
        report = await self._app.create_report(caller, spec)
        archive = self._app.archive
        chunks = None
        try:
            headers = (
                ("content-disposition", f'attachment; filename="{report.file_name}"'),
                ("x-report-metadata-bin", report.metadata),
            )
            try:
                await context.send_initial_metadata(headers)
                late: tuple[tuple[str, str | bytes], ...] = ()
            except Exception as error:  # noqa: BLE001  # grpc's UsageError: the server sent its own headers first
                # A server built with request_id_in_initial_metadata=True has already sent the initial metadata
                # (x-request-id); the report's headers then travel in the trailers instead.
                log.warning("report headers moved to the trailers", extra={"error": str(error)})
                late = headers
            chunks = archive.chunks(report)
            first = True
            while True:
                chunk = await asyncio.to_thread(next, chunks, _DONE)
                if chunk is _DONE:
                    break
                message = httpbody_pb2.HttpBody(data=chunk)  # type: ignore[arg-type]
                if first:
                    message.content_type = report.content_type
                    first = False
                await context.write(message)
            context.set_trailing_metadata((*late, ("x-report-trailer-bin", convert.trailer(report))))
        finally:
            if chunks is not None:
                chunks.close()  # type: ignore[attr-defined]  # closes the file of a stream cut short
            await asyncio.to_thread(archive.discard, report)

    async def AnalyzeTransactions(
        self, request: pb.AnalyzeTransactionsRequest, context: Context
    ) -> pb.AnalyzeTransactionsResponse:
        """AnalyzeTransactions."""
        caller = await self._auth.authenticate(_authorization(context))
        analysis = await self._app.analyze(
            caller,
            request.account_number,
            convert.optional_time(request.start_time, request.HasField("start_time")),
            convert.optional_time(request.end_time, request.HasField("end_time")),
        )
        return convert.analysis_to_proto(analysis)
