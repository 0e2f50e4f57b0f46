"""The NotificationService servicer: authenticate, convert, call the application, convert back."""

from __future__ import annotations

from typing import Any

import grpc.aio
from tastyplat.notification.v1 import notification_service_pb2 as pb
from tastyplat.notification.v1 import notification_service_pb2_grpc as pb_grpc

from services.notification.api import convert
from services.notification.app import NotificationApp
from services.notification.domain.errors import FieldInvalid
from services.notification.domain.model import DeliveryStatus
from services.notification.ports import Authenticator, Caller

__all__ = ["NotificationServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


def _authorization(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None


class NotificationServicer(pb_grpc.NotificationServiceServicer):
    """Implements tastyplat.notification.v1.NotificationService on ``NotificationApp``."""

    def __init__(self, app: NotificationApp, authenticator: Authenticator) -> None:
        """Serve ``app``; every call is authenticated by ``authenticator``."""
        self._app = app
        self._auth = authenticator

    async def _caller(self, context: Context) -> Caller:
        return await self._auth.authenticate(_authorization(context))

    async def RegisterChannel(self, request: pb.RegisterChannelRequest, context: Context) -> pb.RegisterChannelResponse:
        """RegisterChannel."""
        caller = await self._caller(context)
        channel = await self._app.register_channel(
            caller,
            request_id=request.request_id,
            kind=int(request.kind),
            address=request.address,
            display_name=request.display_name,
        )
        return pb.RegisterChannelResponse(channel=convert.channel_to_proto(channel))

    async def ListChannels(self, request: pb.ListChannelsRequest, context: Context) -> pb.ListChannelsResponse:
        """ListChannels."""
        caller = await self._caller(context)
        channels, token = await self._app.list_channels(caller, request.page_size, request.page_token)
        return pb.ListChannelsResponse(channels=[convert.channel_to_proto(c) for c in channels], next_page_token=token)

    async def DeleteChannel(self, request: pb.DeleteChannelRequest, context: Context) -> pb.DeleteChannelResponse:
        """DeleteChannel."""
        caller = await self._caller(context)
        await self._app.delete_channel(caller, request.channel_id)
        return pb.DeleteChannelResponse()

    async def SendTestNotification(
        self, request: pb.SendTestNotificationRequest, context: Context
    ) -> pb.SendTestNotificationResponse:
        """SendTestNotification."""
        caller = await self._caller(context)
        delivery = await self._app.send_test(caller, request.channel_id, request.message)
        return pb.SendTestNotificationResponse(delivery=convert.delivery_to_proto(delivery))

    async def ListDeliveries(self, request: pb.ListDeliveriesRequest, context: Context) -> pb.ListDeliveriesResponse:
        """ListDeliveries."""
        caller = await self._caller(context)
        status = None
        if request.status:
            try:
                status = DeliveryStatus(request.status)
            except ValueError:
                raise FieldInvalid("status", f"unknown delivery status {request.status}") from None
        deliveries, token = await self._app.list_deliveries(
            caller,
            page_size=request.page_size,
            page_token=request.page_token,
            alert_id=request.alert_id,
            channel_id=request.channel_id,
            status=status,
        )
        return pb.ListDeliveriesResponse(
            deliveries=[convert.delivery_to_proto(d) for d in deliveries], next_page_token=token
        )
