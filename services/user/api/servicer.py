"""The UserService servicer: reads identity and client address from the call, delegates to the use cases."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import grpc.aio
from tastyplat.user.v1 import user_service_pb2 as pb
from tastyplat.user.v1 import user_service_pb2_grpc as pb_grpc

from services.user.api import convert
from services.user.app import UserApp
from services.user.domain.errors import AuthenticationRequired
from services.user.domain.model import Identity

__all__ = ["UserServicer", "bearer_token", "client_address"]

Context = grpc.aio.ServicerContext[Any, Any]


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the call's single ``authorization: Bearer <token>`` header, or None if there is none.

    Raises:
        AuthenticationRequired: several ``authorization`` headers, another scheme, or an empty token.
    """
    values = [v for k, v in metadata or () if k.lower() == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise AuthenticationRequired("more than one authorization header")
    value = values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("authorization must be 'Bearer <access token>'")
    return token.strip()


def client_address(peer: str, metadata: Iterable[tuple[str, str | bytes]] | None, trusted_proxy_hops: int) -> str:
    """The address of the client that made the call, for throttling and the audit log.

    With ``trusted_proxy_hops`` = N > 0, the Nth ``x-forwarded-for`` entry from the right is taken (each
    trusted proxy appends the address it received the call from; entries further left are the client's own
    claims and are ignored). Otherwise, or when the header is too short, the connection's peer address.
    """
    if trusted_proxy_hops > 0:
        forwarded = [
            v.decode("latin-1") if isinstance(v, bytes) else v
            for k, v in metadata or ()
            if k.lower() == "x-forwarded-for"
        ]
        hops = [h.strip() for h in ",".join(forwarded).split(",") if h.strip()]
        if len(hops) >= trusted_proxy_hops:
            candidate = hops[-trusted_proxy_hops]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = rest.rsplit(":", 1)[0].strip("[]")
        return host
    return kind or "unknown"


class UserServicer(pb_grpc.UserServiceServicer):
    """``tastyplat.user.v1.UserService`` over ``UserApp``.

    Identity: every RPC on user data verifies the caller's JWT here, against this service's own keys (the
    issuer checks its own signatures; no network hop, no trust in headers set upstream). In distributed mode a
    caller that reaches the service port directly, bypassing the gateway, gets exactly the same checks, and a
    forged ``x-user-id``/``x-jwt-payload`` header from any caller is simply never read.
    """

    def __init__(self, app: UserApp, *, trusted_proxy_hops: int = 0) -> None:
        """Serve ``app``; ``trusted_proxy_hops`` as in ``client_address``."""
        self._app = app
        self._hops = trusted_proxy_hops

    async def _identity(self, context: Context) -> Identity:
        token = bearer_token(context.invocation_metadata())
        if token is None:
            raise AuthenticationRequired()
        return await self._app.authenticate(token)

    def _address(self, context: Context) -> str:
        return client_address(context.peer() or "", context.invocation_metadata(), self._hops)

    async def CreateUser(self, request: pb.CreateUserRequest, context: Context) -> pb.CreateUserResponse:
        """Sign up."""
        view = await self._app.create_user(email=request.email, password=request.password,
                                           request_id=request.request_id)
        return pb.CreateUserResponse(user=convert.user_to_proto(view))

    async def Login(self, request: pb.LoginRequest, context: Context) -> pb.LoginResponse:
        """Log in."""
        grant = await self._app.login(email=request.email, password=request.password,
                                      client_address=self._address(context))
        return pb.LoginResponse(tokens=convert.tokens_to_proto(grant), user_id=grant.user_id)

    async def RefreshToken(self, request: pb.RefreshTokenRequest, context: Context) -> pb.RefreshTokenResponse:
        """Rotate a refresh token."""
        grant = await self._app.refresh(refresh_token=request.refresh_token)
        return pb.RefreshTokenResponse(tokens=convert.tokens_to_proto(grant))

    async def Logout(self, request: pb.LogoutRequest, context: Context) -> pb.LogoutResponse:
        """Revoke a session or all sessions."""
        identity = await self._identity(context) if request.all_sessions else None
        await self._app.logout(refresh_token=request.refresh_token, all_sessions=request.all_sessions,
                               identity=identity)
        return pb.LogoutResponse()

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:
        """Read a user."""
        view = await self._app.get_user(await self._identity(context), request.user_id)
        return pb.GetUserResponse(user=convert.user_to_proto(view))

    async def ListUsers(self, request: pb.ListUsersRequest, context: Context) -> pb.ListUsersResponse:
        """List users (admin)."""
        views, token = await self._app.list_users(
            await self._identity(context), page_size=request.page_size, page_token=request.page_token,
            email_prefix=request.email_prefix,
        )
        return pb.ListUsersResponse(users=[convert.user_to_proto(v) for v in views], next_page_token=token)

    async def DeleteUser(self, request: pb.DeleteUserRequest, context: Context) -> pb.DeleteUserResponse:
        """Delete a user."""
        await self._app.delete_user(await self._identity(context), request.user_id)
        return pb.DeleteUserResponse()

    async def UpdateUserRoles(self, request: pb.UpdateUserRolesRequest, context: Context) -> pb.UpdateUserRolesResponse:
        """Replace roles (admin)."""
        identity = await self._identity(context)
        roles = convert.roles_from_proto(request.roles)
        view = await self._app.update_roles(identity, request.user_id, roles)
        return pb.UpdateUserRolesResponse(user=convert.user_to_proto(view))

    async def UpdateNotificationPreferences(
        self, request: pb.UpdateNotificationPreferencesRequest, context: Context
    ) -> pb.UpdateNotificationPreferencesResponse:
        """Change preferences."""
        identity = await self._identity(context)
        patch = convert.patch_from_proto(
            request.notification_preferences, request.update_mask, has_mask=request.HasField("update_mask")
        )
        preferences = await self._app.update_preferences(identity, request.user_id, patch)
        return pb.UpdateNotificationPreferencesResponse(
            notification_preferences=convert.preferences_to_proto(preferences)
        )

    async def SendVerificationCode(
        self, request: pb.SendVerificationCodeRequest, context: Context
    ) -> pb.SendVerificationCodeResponse:
        """Send a verification code."""
        identity = await self._identity(context)
        channel = convert.contact_channel_from_proto(request.channel)
        expires_at = await self._app.send_verification_code(identity, request.user_id, channel)
        return pb.SendVerificationCodeResponse(code_expire_time=convert.timestamp(expires_at))

    async def VerifyContact(self, request: pb.VerifyContactRequest, context: Context) -> pb.VerifyContactResponse:
        """Confirm a contact."""
        identity = await self._identity(context)
        channel = convert.contact_channel_from_proto(request.channel)
        preferences = await self._app.verify_contact(identity, request.user_id, channel, request.code)
        return pb.VerifyContactResponse(notification_preferences=convert.preferences_to_proto(preferences))

    async def RequestPasswordReset(
        self, request: pb.RequestPasswordResetRequest, context: Context
    ) -> pb.RequestPasswordResetResponse:
        """E-mail a reset token (silently nothing for an unknown address)."""
        await self._app.request_password_reset(email=request.email, client_address=self._address(context))
        return pb.RequestPasswordResetResponse()

    async def ResetPassword(self, request: pb.ResetPasswordRequest, context: Context) -> pb.ResetPasswordResponse:
        """Set a new password with a reset token."""
        await self._app.reset_password(reset_token=request.reset_token, new_password=request.new_password)
        return pb.ResetPasswordResponse()

    async def GetJwks(self, request: pb.GetJwksRequest, context: Context) -> pb.GetJwksResponse:
        """Publish the verification keys."""
        return convert.jwks_to_proto(await self._app.jwks())
