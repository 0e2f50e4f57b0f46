"""The DeltaMonitorService servicer: authenticate, convert, call the application, convert back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from datetime import UTC

import grpc.aio
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as pb
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2_grpc as pb_grpc

from services.deltamonitor.api import convert
from services.deltamonitor.app import DeltaMonitorApp, Heartbeat, StreamEnd
from services.deltamonitor.domain.errors import FieldInvalid
from services.deltamonitor.domain.model import AlertState
from services.deltamonitor.ports import Authenticator, Caller

__all__ = ["DeltaMonitorServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


def _authorization(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None


class DeltaMonitorServicer(pb_grpc.DeltaMonitorServiceServicer):
    """Implements tastyplat.deltamonitor.v1.DeltaMonitorService on ``DeltaMonitorApp``."""

    def __init__(self, app: DeltaMonitorApp, authenticator: Authenticator) -> None:
        """Serve ``app``; every call is authenticated by ``authenticator``."""
        self._app = app
        self._auth = authenticator

    async def _caller(self, context: Context) -> Caller:
        return await self._auth.authenticate(_authorization(context))

    async def CreateWatch(self, request: pb.CreateWatchRequest, context: Context) -> pb.CreateWatchResponse:
        """CreateWatch."""
        caller = await self._caller(context)
        view = await self._app.create_watch(caller, request.request_id, convert.draft_from_proto(request.watch))
        return pb.CreateWatchResponse(watch=convert.watch_to_proto(view))

    async def GetWatch(self, request: pb.GetWatchRequest, context: Context) -> pb.GetWatchResponse:
        """GetWatch."""
        caller = await self._caller(context)
        view = await self._app.get_watch(caller, request.watch_id)
        return pb.GetWatchResponse(watch=convert.watch_to_proto(view))

    async def ListWatches(self, request: pb.ListWatchesRequest, context: Context) -> pb.ListWatchesResponse:
        """ListWatches."""
        caller = await self._caller(context)
        views, token = await self._app.list_watches(
            caller, request.page_size, request.page_token, request.account_number
        )
        return pb.ListWatchesResponse(watches=[convert.watch_to_proto(v) for v in views], next_page_token=token)

    async def UpdateWatch(self, request: pb.UpdateWatchRequest, context: Context) -> pb.UpdateWatchResponse:
        """UpdateWatch."""
        caller = await self._caller(context)
        view = await self._app.update_watch(
            caller,
            request.watch_id,
            convert.draft_from_proto(request.watch),
            list(request.update_mask.paths),
        )
        return pb.UpdateWatchResponse(watch=convert.watch_to_proto(view))

    async def DeleteWatch(self, request: pb.DeleteWatchRequest, context: Context) -> pb.DeleteWatchResponse:
        """DeleteWatch."""
        caller = await self._caller(context)
        await self._app.delete_watch(caller, request.watch_id)
        return pb.DeleteWatchResponse()

    async def ListAlerts(self, request: pb.ListAlertsRequest, context: Context) -> pb.ListAlertsResponse:
        """ListAlerts."""
        caller = await self._caller(context)
        state = None
        if request.state:
            try:
                state = AlertState(request.state)
            except ValueError:
                raise FieldInvalid("state", f"unknown alert state {request.state}") from None
        alerts, token = await self._app.list_alerts(
            caller,
            page_size=request.page_size,
            page_token=request.page_token,
            watch_id=request.watch_id,
            state=state,
            start_time=request.start_time.ToDatetime(tzinfo=UTC) if request.HasField("start_time") else None,
            end_time=request.end_time.ToDatetime(tzinfo=UTC) if request.HasField("end_time") else None,
            account_number=request.account_number,
        )
        return pb.ListAlertsResponse(alerts=[convert.alert_to_proto(a) for a in alerts], next_page_token=token)

    async def AcknowledgeAlert(
        self, request: pb.AcknowledgeAlertRequest, context: Context
    ) -> pb.AcknowledgeAlertResponse:
        """AcknowledgeAlert."""
        caller = await self._caller(context)
        alert = await self._app.acknowledge_alert(caller, request.alert_id)
        return pb.AcknowledgeAlertResponse(alert=convert.alert_to_proto(alert))

    async def StreamAlerts(
        self, request: pb.StreamAlertsRequest, context: Context
    ) -> AsyncIterator[pb.StreamAlertsResponse]:
        """StreamAlerts."""
        caller = await self._caller(context)
        stream = await self._app.stream_alerts(caller, request.after_alert_id)
        # aclosing: a cancelled call must unregister its queue at once, not when the generator is collected.
        async with contextlib.aclosing(stream):
            async for item in stream:
                if isinstance(item, Heartbeat):
                    yield convert.heartbeat(item.time)
                elif isinstance(item, StreamEnd):
                    yield convert.stream_end(item.reason)
                    return
                else:
                    yield pb.StreamAlertsResponse(alert=convert.alert_to_proto(item))
