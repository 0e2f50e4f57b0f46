"""Unit tests of the gRPC edge helpers (metadata, client address, conversions) and of the settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from tastyplat.type.v1 import channel_pb2
from tastyplat.user.v1 import user_service_pb2 as pb

from services.platform.settings import InvalidSettingError, MissingSettingError
from services.user.api import convert
from services.user.api.servicer import bearer_token, client_address
from services.user.app import UserView
from services.user.config import UserSettings
from services.user.domain.errors import AuthenticationRequired, FieldInvalid, FieldRequired
from services.user.domain.model import Role, User
from services.user.domain.preferences import Channel, NotificationPreferences, Severity

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def test_bearer_token_is_read_from_authorization() -> None:
    assert bearer_token([("authorization", "Bearer abc.def.ghi")]) == "abc.def.ghi"


def test_missing_authorization_means_no_token() -> None:
    assert bearer_token([("x-user-id", "forged")]) is None


@pytest.mark.parametrize(
    "metadata",
    [[("authorization", "Basic dXNlcjpwdw==")], [("authorization", "Bearer ")],
     [("authorization", "Bearer a"), ("authorization", "Bearer b")]],
)
def test_unusable_authorization_is_refused(metadata: list[tuple[str, str]]) -> None:
    with pytest.raises(AuthenticationRequired):
        bearer_token(metadata)


def test_client_address_from_peer_without_trusted_proxies() -> None:
    assert client_address("ipv4:192.0.2.7:5555", [("x-forwarded-for", "203.0.113.1")], 0) == "192.0.2.7"
    assert client_address("ipv6:[2001:db8::1]:5555", None, 0) == "2001:db8::1"


def test_client_address_takes_the_entry_the_trusted_proxy_appended() -> None:
    metadata = [("x-forwarded-for", "10.0.0.1, 203.0.113.5")]
    assert client_address("ipv4:127.0.0.1:1", metadata, 1) == "203.0.113.5"


def test_client_address_ignores_unparseable_forwarded_entry() -> None:
    assert client_address("ipv4:127.0.0.1:1", [("x-forwarded-for", "evil")], 1) == "127.0.0.1"


def test_user_to_proto_orders_roles_and_carries_preferences() -> None:
    user = User("u1", "a@example.com", "h", frozenset({Role.ADMIN, Role.TRADER}), True, T0, T0)
    message = convert.user_to_proto(UserView(user, NotificationPreferences.default_for("a@example.com")))
    assert list(message.roles) == [pb.ROLE_TRADER, pb.ROLE_ADMIN]
    assert message.notification_preferences.email == "a@example.com"
    assert not message.notification_preferences.email_verified


def test_roles_from_proto_rejects_unspecified() -> None:
    with pytest.raises(FieldRequired):
        convert.roles_from_proto([pb.ROLE_UNSPECIFIED])


def test_contact_channel_must_be_sms_or_email() -> None:
    with pytest.raises(FieldInvalid):
        convert.contact_channel_from_proto(channel_pb2.CHANNEL_KIND_PUSH)


def test_patch_from_proto_with_empty_mask_takes_every_writable_field() -> None:
    patch = convert.patch_from_proto(pb.NotificationPreferences(), field_mask_pb2.FieldMask(), has_mask=False)
    assert "phone_number" in patch.paths and "phone_number_verified" not in patch.paths


def test_patch_from_proto_maps_channels_per_severity() -> None:
    message = pb.NotificationPreferences(
        severity_channels=[
            pb.SeverityChannels(severity=channel_pb2.SEVERITY_CRITICAL,
                                channels=[channel_pb2.CHANNEL_KIND_SMS, channel_pb2.CHANNEL_KIND_STREAM])
        ]
    )
    patch = convert.patch_from_proto(message, field_mask_pb2.FieldMask(paths=["severity_channels"]), has_mask=True)
    assert patch.severity_channels == ((Severity.CRITICAL, (Channel.SMS, Channel.STREAM)),)


def test_patch_from_proto_rejects_unspecified_channel() -> None:
    message = pb.NotificationPreferences(
        severity_channels=[pb.SeverityChannels(severity=channel_pb2.SEVERITY_INFO, channels=[channel_pb2.CHANNEL_KIND_UNSPECIFIED])]
    )
    with pytest.raises(FieldInvalid, match=r"severity_channels\[0\]\.channels\[0\]"):
        convert.patch_from_proto(message, field_mask_pb2.FieldMask(), has_mask=False)


def test_patch_from_proto_rejects_negative_escalation_delay() -> None:
    message = pb.NotificationPreferences(escalation_delay=duration_pb2.Duration(seconds=-5))
    with pytest.raises(FieldInvalid, match="escalation_delay"):
        convert.patch_from_proto(message, field_mask_pb2.FieldMask(), has_mask=False)


def test_jwks_to_proto_keeps_member_names() -> None:
    response = convert.jwks_to_proto([{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1", "use": "sig", "alg": "EdDSA"}])
    assert (response.keys[0].kty, response.keys[0].kid, response.keys[0].y) == ("OKP", "k1", "")


# Settings -----------------------------------------------------------------------------------------------

SEED = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def test_settings_bus_delivery_needs_rabbitmq_url() -> None:
    with pytest.raises(MissingSettingError, match="USER_RABBITMQ_URL"):
        UserSettings.from_env({"USER_STORAGE": "memory", "USER_AUDIT_SIGNING_KEY": SEED})


def test_settings_missing_audit_key_names_the_variable() -> None:
    with pytest.raises(MissingSettingError, match="USER_AUDIT_SIGNING_KEY"):
        UserSettings.from_env({"USER_STORAGE": "memory"})


def test_settings_postgres_needs_database_url() -> None:
    with pytest.raises(MissingSettingError, match="USER_DATABASE_URL"):
        UserSettings.from_env({"USER_AUDIT_SIGNING_KEY": SEED})


def test_settings_postgres_needs_secret_keys() -> None:
    with pytest.raises(MissingSettingError, match="USER_SECRET_KEYS"):
        UserSettings.from_env({"USER_AUDIT_SIGNING_KEY": SEED, "USER_DATABASE_URL": "postgresql://x/y"})


MEMORY = {"USER_STORAGE": "memory", "USER_CODE_DELIVERY": "outbox", "USER_AUDIT_SIGNING_KEY": SEED}


def test_settings_refuse_argon2_below_owasp_minimum() -> None:
    with pytest.raises(InvalidSettingError, match="USER_ARGON2_MEMORY_KIB"):
        UserSettings.from_env({**MEMORY, "USER_ARGON2_MEMORY_KIB": "4096"})


def test_settings_refuse_unknown_jwt_algorithm() -> None:
    with pytest.raises(InvalidSettingError, match="USER_JWT_ALGORITHM"):
        UserSettings.from_env({**MEMORY, "USER_JWT_ALGORITHM": "HS256"})


def test_settings_hide_secrets_in_repr() -> None:
    settings = UserSettings.from_env(MEMORY)
    assert SEED not in repr(settings) and settings.port == 8084
