"""The user directory: the caller's contacts and preferences from the user service, or from memory in tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio

from services.notification.domain.errors import AuthenticationRequired
from services.notification.domain.model import ChannelKind, Preferences, QuietHours, Severity
from services.notification.ports import Caller
from services.platform.errors import Unavailable
from services.platform.peers import translate_peer_error

__all__ = ["GrpcUserDirectory", "InMemoryDirectory", "preferences_from_proto"]


def preferences_from_proto(prefs: Any, now: datetime) -> Preferences:
    """tastyplat.user.v1.NotificationPreferences as the domain's ``Preferences``."""
    quiet = prefs.quiet_hours
    channels: dict[Severity, tuple[ChannelKind, ...]] = {}
    for entry in prefs.severity_channels:
        try:
            severity = Severity(entry.severity)
            kinds = tuple(ChannelKind(k) for k in entry.channels if k)
        except ValueError:
            continue
        channels[severity] = kinds
    delay = prefs.escalation_delay
    return Preferences(
        phone_number=prefs.phone_number,
        phone_verified=prefs.phone_number_verified,
        email=prefs.email.lower(),
        email_verified=prefs.email_verified,
        push_tokens=frozenset(d.device_token for d in prefs.push_devices if d.device_token),
        quiet_hours=QuietHours(
            enabled=quiet.enabled,
            time_zone=quiet.time_zone or "UTC",
            start_minute=quiet.start_minute,
            end_minute=quiet.end_minute,
            allow_critical=quiet.allow_critical,
        ),
        severity_channels=channels,
        escalation_delay=timedelta(seconds=delay.seconds, microseconds=delay.nanos // 1000),
        fetched_at=now,
    )


class GrpcUserDirectory:
    """``UserService.GetUser("me")`` with the caller's access token."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        """Use a platform peer channel to the user service."""
        from tastyplat.user.v1 import user_service_pb2, user_service_pb2_grpc

        self._pb = user_service_pb2
        self._stub = user_service_pb2_grpc.UserServiceStub(channel)

    async def preferences(self, caller: Caller) -> Preferences:
        """The caller's preferences and contact verification state."""
        try:
            response = await self._stub.GetUser(
                self._pb.GetUserRequest(user_id="me"), metadata=(("authorization", caller.authorization),)
            )
        except grpc.aio.AioRpcError as error:
            translated = translate_peer_error(error, "user")
            if translated is not None:
                raise translated from None
            if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND):
                raise AuthenticationRequired("the user service does not recognise the caller") from None
            raise Unavailable(
                f"the user service failed: {error.code().name}", reason="PEER_UNAVAILABLE", metadata={"peer": "user"}
            ) from None
        return preferences_from_proto(response.user.notification_preferences, datetime.now(UTC))


class InMemoryDirectory:
    """Preferences by user id (tests and the embedded demo)."""

    def __init__(self) -> None:
        """Start with no users."""
        self.users: dict[str, Preferences] = {}

    async def preferences(self, caller: Caller) -> Preferences:
        """The stored preferences, or the defaults (nothing verified)."""
        return self.users.get(caller.user_id, Preferences())
