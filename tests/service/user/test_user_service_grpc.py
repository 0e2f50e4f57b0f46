"""Service tests: the user service on a real grpc.aio server on port 0, called through the generated stubs."""

from __future__ import annotations

import json
from collections.abc import Awaitable

import grpc
import jwt
import pytest
from google.protobuf import field_mask_pb2, json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tastyplat.type.v1 import channel_pb2
from tastyplat.user.v1 import user_service_pb2 as pb

from services.platform.error_mapping import RichError, decode_error
from user_service_support import ADMIN_EMAIL, ADMIN_PASSWORD, Running

PASSWORD = "service test passphrase"
NO_SUCH_USER = "00000000-0000-4000-8000-000000000000"


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def failure(call: Awaitable[object]) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return decode_error(caught.value)


async def sign_up(running: Running, email: str) -> tuple[str, pb.TokenPair]:
    created = await running.stub.CreateUser(pb.CreateUserRequest(email=email, password=PASSWORD))
    login = await running.stub.Login(pb.LoginRequest(email=email, password=PASSWORD))
    return created.user.user_id, login.tokens


async def admin_token(running: Running) -> str:
    login = await running.stub.Login(pb.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    return login.tokens.access_token


async def test_health_is_serving_for_user_service(running: Running) -> None:
    health = health_pb2_grpc.HealthStub(running.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service="tastyplat.user.v1.UserService"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_sign_up_login_and_read_self(running: Running) -> None:
    user_id, tokens = await sign_up(running, "Alice@Example.com")
    assert tokens.token_type == "Bearer" and tokens.refresh_token
    me = await running.stub.GetUser(pb.GetUserRequest(user_id="me"), metadata=bearer(tokens.access_token))
    assert (me.user.user_id, me.user.email, list(me.user.roles)) == (user_id, "alice@example.com", [pb.ROLE_TRADER])
    assert me.user.notification_preferences.email == "alice@example.com"


async def test_rpc_without_token_is_unauthenticated(running: Running) -> None:
    error = await failure(running.stub.GetUser(pb.GetUserRequest(user_id="me")))
    assert (error.code, error.reason, error.domain) == (
        grpc.StatusCode.UNAUTHENTICATED, "AUTHENTICATION_REQUIRED", "user.tastyplat"
    )


async def test_forged_identity_headers_are_ignored(running: Running) -> None:
    alice_id, alice = await sign_up(running, "alice@example.com")
    bob_id, _ = await sign_up(running, "bob@example.com")
    forged = [("x-user-id", bob_id), ("x-jwt-sub", bob_id), ("x-jwt-payload", json.dumps({"sub": bob_id}))]
    error = await failure(running.stub.GetUser(pb.GetUserRequest(user_id=bob_id), metadata=forged))
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    me = await running.stub.GetUser(pb.GetUserRequest(user_id="me"), metadata=bearer(alice.access_token) + forged)
    assert me.user.user_id == alice_id


async def test_bad_email_is_invalid_argument_with_field_violation(running: Running) -> None:
    error = await failure(running.stub.CreateUser(pb.CreateUserRequest(email="not-an-address", password=PASSWORD)))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "EMAIL_INVALID")
    assert error.field_violations[0][0] == "email"


async def test_taken_email_is_already_exists(running: Running) -> None:
    await sign_up(running, "alice@example.com")
    error = await failure(running.stub.CreateUser(pb.CreateUserRequest(email="alice@example.com", password=PASSWORD)))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN")


async def test_wrong_password_then_throttle(running: Running) -> None:
    await sign_up(running, "alice@example.com")
    for _ in range(5):
        error = await failure(running.stub.Login(pb.LoginRequest(email="alice@example.com", password="wrong")))
        assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    error = await failure(running.stub.Login(pb.LoginRequest(email="alice@example.com", password=PASSWORD)))
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_THROTTLED")
    assert error.retry_after is not None and 50 < error.retry_after <= 60


async def test_address_throttle_keys_on_the_trusted_forwarded_address(running: Running) -> None:
    await sign_up(running, "alice@example.com")
    attacker = [("x-forwarded-for", "198.51.100.66")]
    for i in range(20):
        await failure(running.stub.Login(pb.LoginRequest(email=f"u{i}@example.com", password="x"), metadata=attacker))
    error = await failure(
        running.stub.Login(pb.LoginRequest(email="alice@example.com", password=PASSWORD), metadata=attacker)
    )
    assert error.reason == "LOGIN_THROTTLED"
    ok = await running.stub.Login(
        pb.LoginRequest(email="alice@example.com", password=PASSWORD), metadata=[("x-forwarded-for", "198.51.100.67")]
    )
    assert ok.tokens.access_token


async def test_refresh_token_reuse_revokes_the_family(running: Running) -> None:
    _, tokens = await sign_up(running, "alice@example.com")
    rotated = await running.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=tokens.refresh_token))
    error = await failure(running.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=tokens.refresh_token)))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    error = await failure(running.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=rotated.tokens.refresh_token)))
    assert error.reason == "REFRESH_TOKEN_INVALID"


async def test_logout_revokes_the_session(running: Running) -> None:
    _, tokens = await sign_up(running, "alice@example.com")
    await running.stub.Logout(pb.LogoutRequest(refresh_token=tokens.refresh_token))
    error = await failure(running.stub.GetUser(pb.GetUserRequest(user_id="me"), metadata=bearer(tokens.access_token)))
    assert error.reason == "AUTHENTICATION_REQUIRED"


@pytest.mark.parametrize(
    "rpc",
    ["GetUser", "DeleteUser", "UpdateNotificationPreferences", "SendVerificationCode", "VerifyContact"],
)
async def test_user_never_reaches_another_users_data(running: Running, rpc: str) -> None:
    _, alice = await sign_up(running, "alice@example.com")
    bob_id, bob = await sign_up(running, "bob@example.com")
    requests = {
        "GetUser": pb.GetUserRequest(user_id=bob_id),
        "DeleteUser": pb.DeleteUserRequest(user_id=bob_id),
        "UpdateNotificationPreferences": pb.UpdateNotificationPreferencesRequest(
            user_id=bob_id, notification_preferences=pb.NotificationPreferences(phone_number="+14155550100"),
            update_mask=field_mask_pb2.FieldMask(paths=["phone_number"]),
        ),
        "SendVerificationCode": pb.SendVerificationCodeRequest(user_id=bob_id, channel=channel_pb2.CHANNEL_KIND_EMAIL),
        "VerifyContact": pb.VerifyContactRequest(user_id=bob_id, channel=channel_pb2.CHANNEL_KIND_EMAIL, code="123456"),
    }
    error = await failure(getattr(running.stub, rpc)(requests[rpc], metadata=bearer(alice.access_token)))
    missing = await failure(running.stub.GetUser(pb.GetUserRequest(user_id=NO_SUCH_USER), metadata=bearer(alice.access_token)))
    assert (error.code, error.reason) == (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    still = await running.stub.GetUser(pb.GetUserRequest(user_id="me"), metadata=bearer(bob.access_token))
    assert still.user.notification_preferences.phone_number == ""
    assert running.components.outbox.messages == []


@pytest.mark.parametrize("rpc", ["ListUsers", "UpdateUserRoles"])
async def test_admin_rpcs_are_denied_to_traders(running: Running, rpc: str) -> None:
    alice_id, alice = await sign_up(running, "alice@example.com")
    request = pb.ListUsersRequest() if rpc == "ListUsers" else pb.UpdateUserRolesRequest(
        user_id=alice_id, roles=[pb.ROLE_ADMIN]
    )
    error = await failure(getattr(running.stub, rpc)(request, metadata=bearer(alice.access_token)))
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")


async def test_admin_lists_users_and_changes_roles(running: Running) -> None:
    token = await admin_token(running)
    alice_id, _ = await sign_up(running, "alice@example.com")
    listed = await running.stub.ListUsers(pb.ListUsersRequest(email_prefix="ali"), metadata=bearer(token))
    assert [u.user_id for u in listed.users] == [alice_id]
    changed = await running.stub.UpdateUserRoles(
        pb.UpdateUserRolesRequest(user_id=alice_id, roles=[pb.ROLE_READONLY]), metadata=bearer(token)
    )
    assert list(changed.user.roles) == [pb.ROLE_READONLY]


async def test_admin_cannot_drop_own_admin_role(running: Running) -> None:
    token = await admin_token(running)
    error = await failure(
        running.stub.UpdateUserRoles(pb.UpdateUserRolesRequest(user_id="me", roles=[pb.ROLE_TRADER]), metadata=bearer(token))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LAST_ADMIN")


async def test_unspecified_role_is_invalid_argument(running: Running) -> None:
    token = await admin_token(running)
    alice_id, _ = await sign_up(running, "alice@example.com")
    error = await failure(
        running.stub.UpdateUserRoles(pb.UpdateUserRolesRequest(user_id=alice_id, roles=[pb.ROLE_UNSPECIFIED]),
                                     metadata=bearer(token))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED")


async def test_phone_number_is_verified_with_the_code_sent_to_it(running: Running) -> None:
    _, tokens = await sign_up(running, "alice@example.com")
    updated = await running.stub.UpdateNotificationPreferences(
        pb.UpdateNotificationPreferencesRequest(
            user_id="me",
            notification_preferences=pb.NotificationPreferences(phone_number="+14155550100"),
            update_mask=field_mask_pb2.FieldMask(paths=["phone_number"]),
        ),
        metadata=bearer(tokens.access_token),
    )
    assert updated.notification_preferences.phone_number == "+14155550100"
    assert not updated.notification_preferences.phone_number_verified
    code = running.components.outbox.last_to("+14155550100").code  # type: ignore[union-attr]
    verified = await running.stub.VerifyContact(
        pb.VerifyContactRequest(user_id="me", channel=channel_pb2.CHANNEL_KIND_SMS, code=code),
        metadata=bearer(tokens.access_token),
    )
    assert verified.notification_preferences.phone_number_verified


async def test_output_only_mask_path_is_update_mask_invalid(running: Running) -> None:
    _, tokens = await sign_up(running, "alice@example.com")
    error = await failure(
        running.stub.UpdateNotificationPreferences(
            pb.UpdateNotificationPreferencesRequest(
                user_id="me",
                notification_preferences=pb.NotificationPreferences(phone_number_verified=True),
                update_mask=field_mask_pb2.FieldMask(paths=["phone_number_verified"]),
            ),
            metadata=bearer(tokens.access_token),
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UPDATE_MASK_INVALID")


async def test_password_reset_over_grpc(running: Running) -> None:
    await sign_up(running, "alice@example.com")
    await running.stub.RequestPasswordReset(pb.RequestPasswordResetRequest(email="alice@example.com"))
    token = running.components.outbox.last_to("alice@example.com").code  # type: ignore[union-attr]
    await running.stub.ResetPassword(pb.ResetPasswordRequest(reset_token=token, new_password="a fresh passphrase 2"))
    login = await running.stub.Login(pb.LoginRequest(email="alice@example.com", password="a fresh passphrase 2"))
    assert login.tokens.access_token
    error = await failure(
        running.stub.ResetPassword(pb.ResetPasswordRequest(reset_token=token, new_password="yet another passphrase"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "RESET_TOKEN_INVALID")


async def test_delete_self_over_grpc(running: Running) -> None:
    _, tokens = await sign_up(running, "alice@example.com")
    await running.stub.DeleteUser(pb.DeleteUserRequest(user_id="me"), metadata=bearer(tokens.access_token))
    error = await failure(running.stub.Login(pb.LoginRequest(email="alice@example.com", password=PASSWORD)))
    assert error.reason == "INVALID_CREDENTIALS"


async def test_jwks_verifies_issued_tokens_with_a_standard_library(running: Running) -> None:
    _, tokens = await sign_up(running, "alice@example.com")
    jwks = await running.stub.GetJwks(pb.GetJwksRequest())
    document = json_format.MessageToDict(jwks, preserving_proto_field_name=True)
    key_set = jwt.PyJWKSet.from_dict(document)
    kid = jwt.get_unverified_header(tokens.access_token)["kid"]
    claims = jwt.decode(tokens.access_token, key_set[kid].key, algorithms=["EdDSA"], audience="tastyplat",
                        issuer="https://user.tastyplat", options={"require": ["exp", "iat", "sub", "jti"]})
    assert claims["roles"] == ["trader"] and set(document) == {"keys"}
    assert {k["kty"] for k in document["keys"]} == {"OKP"} and all(k["use"] == "sig" for k in document["keys"])
