"""Unit tests of sign-up, login, sessions and access-token verification over in-memory adapters."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import timedelta

import jwt
import pytest
from user_unit_support import PASSWORD, sign_up

from services.platform.clock import FakeClock
from services.user.domain.errors import (
    AuthenticationRequired,
    EmailTaken,
    FieldInvalid,
    FieldRequired,
    InvalidCredentials,
    LoginThrottled,
    PasswordTooWeak,
    RefreshTokenInvalid,
    RefreshTokenReused,
)
from services.user.domain.model import Role
from services.user.wiring import UserComponents


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forge(header: Mapping[str, object], payload: Mapping[str, object], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


# Sign-up -------------------------------------------------------------------------------------------------


async def test_create_user_stores_trader_with_lowercased_email_and_argon2id_hash(service: UserComponents) -> None:
    view = await service.app.create_user(email="Alice@Example.com", password=PASSWORD)
    assert view.user.email == "alice@example.com"
    assert view.user.roles == {Role.TRADER}
    assert view.user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_create_user_twice_with_same_email_is_taken(service: UserComponents) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    with pytest.raises(EmailTaken):
        await service.app.create_user(email="ALICE@example.com", password=PASSWORD)


async def test_create_user_retry_with_same_request_id_returns_first_user(service: UserComponents) -> None:
    first = await service.app.create_user(email="alice@example.com", password=PASSWORD, request_id="req-1")
    again = await service.app.create_user(email="alice@example.com", password=PASSWORD, request_id="req-1")
    assert again.user.user_id == first.user.user_id


async def test_request_id_reused_with_other_password_is_refused(service: UserComponents) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD, request_id="req-1")
    with pytest.raises(FieldInvalid, match="request_id"):
        await service.app.create_user(email="alice@example.com", password=PASSWORD + "x", request_id="req-1")


async def test_create_user_with_weak_password_is_refused(service: UserComponents) -> None:
    with pytest.raises(PasswordTooWeak):
        await service.app.create_user(email="alice@example.com", password="password1234")


async def test_create_user_is_audited(service: UserComponents) -> None:
    view = await service.app.create_user(email="alice@example.com", password=PASSWORD)
    entries = await service.audit.entries()
    assert [(e.fields["event"], e.fields["subject"]) for e in entries] == [("user.created", view.user.user_id)]


# Login and throttling ------------------------------------------------------------------------------------


async def test_login_returns_verifiable_access_token(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    assert session.identity.user_id == session.user_id
    assert session.identity.roles == {Role.TRADER}


async def test_login_wrong_password_and_unknown_account_fail_alike(service: UserComponents) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    errors = []
    for email, password in (("alice@example.com", "wrong password!!"), ("nobody@example.com", PASSWORD)):
        with pytest.raises(InvalidCredentials) as caught:
            await service.app.login(email=email, password=password, client_address="192.0.2.1")
        errors.append((caught.value.reason, caught.value.message))
    assert errors[0] == errors[1]


async def test_login_empty_fields_are_required(service: UserComponents) -> None:
    with pytest.raises(FieldRequired):
        await service.app.login(email="", password="x", client_address="192.0.2.1")


async def test_login_throttles_account_after_five_failures(service: UserComponents) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    for i in range(5):
        with pytest.raises(InvalidCredentials):
            await service.app.login(email="alice@example.com", password="wrong", client_address=f"192.0.2.{i}")
    with pytest.raises(LoginThrottled) as caught:
        await service.app.login(email="alice@example.com", password=PASSWORD, client_address="198.51.100.7")
    assert caught.value.retry_after == 60.0


async def test_login_throttle_applies_to_unknown_accounts_too(service: UserComponents) -> None:
    for i in range(5):
        with pytest.raises(InvalidCredentials):
            await service.app.login(email="ghost@example.com", password="wrong", client_address=f"192.0.2.{i}")
    with pytest.raises(LoginThrottled):
        await service.app.login(email="ghost@example.com", password="wrong", client_address="198.51.100.7")


async def test_login_throttles_client_address_across_accounts(service: UserComponents) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    for i in range(20):
        with pytest.raises(InvalidCredentials):
            await service.app.login(email=f"user{i}@example.com", password="wrong", client_address="203.0.113.9")
    with pytest.raises(LoginThrottled):
        await service.app.login(email="alice@example.com", password=PASSWORD, client_address="203.0.113.9")
    grant = await service.app.login(email="alice@example.com", password=PASSWORD, client_address="203.0.113.10")
    assert grant.access_token


async def test_login_throttle_lifts_after_lockout(service: UserComponents, clock: FakeClock) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await service.app.login(email="alice@example.com", password="wrong", client_address="192.0.2.1")
    clock.advance(61)
    assert await service.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")


async def test_successful_login_resets_account_failures(service: UserComponents) -> None:
    await service.app.create_user(email="alice@example.com", password=PASSWORD)
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            await service.app.login(email="alice@example.com", password="wrong", client_address="192.0.2.1")
    await service.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")
    with pytest.raises(InvalidCredentials):
        await service.app.login(email="alice@example.com", password="wrong", client_address="192.0.2.1")


# Refresh rotation and reuse ------------------------------------------------------------------------------


async def test_refresh_rotates_the_token(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    grant = await service.app.refresh(refresh_token=session.grant.refresh_token)
    assert grant.refresh_token != session.grant.refresh_token
    assert (await service.app.authenticate(grant.access_token)).session_id == session.identity.session_id


async def test_reused_refresh_token_revokes_the_family(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    stolen = session.grant.refresh_token
    successor = await service.app.refresh(refresh_token=stolen)
    with pytest.raises(RefreshTokenReused):
        await service.app.refresh(refresh_token=stolen)
    with pytest.raises(RefreshTokenInvalid):
        await service.app.refresh(refresh_token=successor.refresh_token)
    with pytest.raises(AuthenticationRequired, match="session"):
        await service.app.authenticate(successor.access_token)


async def test_reuse_detection_is_audited(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    await service.app.refresh(refresh_token=session.grant.refresh_token)
    with pytest.raises(RefreshTokenReused):
        await service.app.refresh(refresh_token=session.grant.refresh_token)
    events = [e.fields["event"] for e in await service.audit.entries()]
    assert events[-1] == "refresh_token.reused"


async def test_concurrent_double_refresh_revokes_the_family(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    results = await asyncio.gather(
        service.app.refresh(refresh_token=session.grant.refresh_token),
        service.app.refresh(refresh_token=session.grant.refresh_token),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["RefreshTokenReused", "TokenGrant"]
    grant = next(r for r in results if not isinstance(r, BaseException))
    with pytest.raises(RefreshTokenInvalid):
        await service.app.refresh(refresh_token=grant.refresh_token)


async def test_unknown_refresh_token_is_invalid(service: UserComponents) -> None:
    with pytest.raises(RefreshTokenInvalid):
        await service.app.refresh(refresh_token="not-a-token")


async def test_idle_refresh_token_expires(service: UserComponents, clock: FakeClock) -> None:
    session = await sign_up(service, "alice@example.com")
    clock.advance(timedelta(days=14, seconds=1).total_seconds())
    with pytest.raises(RefreshTokenInvalid):
        await service.app.refresh(refresh_token=session.grant.refresh_token)


async def test_refresh_carries_current_roles(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    user = await service.app.get_user(session.identity, "me")
    await service.app.update_roles_unchecked(user.user, frozenset({Role.READONLY}))
    grant = await service.app.refresh(refresh_token=session.grant.refresh_token)
    assert (await service.app.authenticate(grant.access_token)).roles == {Role.READONLY}


# Logout -------------------------------------------------------------------------------------------------


async def test_logout_revokes_the_session_and_its_access_tokens(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    await service.app.logout(refresh_token=session.grant.refresh_token, all_sessions=False, identity=None)
    with pytest.raises(RefreshTokenInvalid):
        await service.app.refresh(refresh_token=session.grant.refresh_token)
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(session.grant.access_token)


async def test_logout_twice_succeeds(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    for _ in range(2):
        await service.app.logout(refresh_token=session.grant.refresh_token, all_sessions=False, identity=None)


async def test_logout_all_sessions_needs_identity(service: UserComponents) -> None:
    with pytest.raises(AuthenticationRequired):
        await service.app.logout(refresh_token="", all_sessions=True, identity=None)


async def test_logout_all_sessions_ends_every_session(service: UserComponents) -> None:
    first = await sign_up(service, "alice@example.com")
    second = await service.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")
    await service.app.logout(refresh_token="", all_sessions=True, identity=first.identity)
    for token in (first.grant.refresh_token, second.refresh_token):
        with pytest.raises(RefreshTokenInvalid):
            await service.app.refresh(refresh_token=token)


# Access-token verification ------------------------------------------------------------------------------


async def test_expired_access_token_is_refused(service: UserComponents, clock: FakeClock) -> None:
    session = await sign_up(service, "alice@example.com")
    clock.advance(600 + 30)
    with pytest.raises(AuthenticationRequired, match="expired"):
        await service.app.authenticate(session.grant.access_token)


async def test_tampered_access_token_is_refused(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    header, body, signature = session.grant.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["roles"] = ["admin"]
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(f"{header}.{b64(json.dumps(claims).encode())}.{signature}")


@pytest.mark.parametrize("trailing", ["", "."])
async def test_alg_none_token_is_refused(service: UserComponents, trailing: str) -> None:
    session = await sign_up(service, "alice@example.com")
    claims = jwt.decode(session.grant.access_token, options={"verify_signature": False})
    token = forge({"alg": "none", "typ": "at+jwt", "kid": (await service.app.keys.signing_key()).kid}, claims)
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(token.rstrip(".") + trailing)


async def test_hs256_keyed_with_public_key_is_refused(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    key = await service.app.keys.signing_key()
    claims = jwt.decode(session.grant.access_token, options={"verify_signature": False})
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    unsigned = forge(header, claims).rsplit(".", 1)[0]
    mac = hmac.new(key.public_jwk["x"].encode(), unsigned.encode(), hashlib.sha256).digest()
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(f"{unsigned}.{b64(mac)}")


async def test_token_without_exp_signed_by_real_key_is_refused(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    key = await service.app.keys.signing_key()
    claims = jwt.decode(session.grant.access_token, options={"verify_signature": False})
    del claims["exp"]
    token = jwt.encode(claims, key.private_pem, algorithm="EdDSA", headers={"kid": key.kid, "typ": "at+jwt"})
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(token)


@pytest.mark.parametrize(("claim", "value"), [("aud", "someone-else"), ("iss", "https://evil.example")])
async def test_token_for_other_audience_or_issuer_is_refused(service: UserComponents, claim: str, value: str) -> None:
    session = await sign_up(service, "alice@example.com")
    key = await service.app.keys.signing_key()
    claims = jwt.decode(session.grant.access_token, options={"verify_signature": False})
    claims[claim] = value
    token = jwt.encode(claims, key.private_pem, algorithm="EdDSA", headers={"kid": key.kid, "typ": "at+jwt"})
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(token)


async def test_token_of_other_type_is_refused(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    key = await service.app.keys.signing_key()
    claims = jwt.decode(session.grant.access_token, options={"verify_signature": False})
    token = jwt.encode(claims, key.private_pem, algorithm="EdDSA", headers={"kid": key.kid, "typ": "JWT"})
    with pytest.raises(AuthenticationRequired, match="not an access token"):
        await service.app.authenticate(token)


@pytest.mark.parametrize("kid", ["unknown", "../../etc/passwd", "' OR 1=1 --", ""])
async def test_token_with_unknown_kid_is_refused(service: UserComponents, kid: str) -> None:
    session = await sign_up(service, "alice@example.com")
    header, body, signature = session.grant.access_token.split(".")
    new_header = json.loads(base64.urlsafe_b64decode(header + "=="))
    new_header["kid"] = kid
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(f"{b64(json.dumps(new_header).encode())}.{body}.{signature}")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 1_000_000, "\udcff.a.b"])
async def test_garbage_access_token_is_refused(service: UserComponents, token: str) -> None:
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(token)


async def test_token_of_deleted_user_no_longer_works(service: UserComponents) -> None:
    session = await sign_up(service, "alice@example.com")
    await service.app.delete_user(session.identity, "me")
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(session.grant.access_token)


# Key rotation -------------------------------------------------------------------------------------------


async def test_key_rotation_keeps_old_tokens_valid_and_publishes_both_keys(
    service: UserComponents, clock: FakeClock
) -> None:
    session = await sign_up(service, "alice@example.com")
    old_kid = jwt.get_unverified_header(session.grant.access_token)["kid"]
    new_key = await service.app.rotate_signing_key()
    assert {k["kid"] for k in await service.app.jwks()} == {old_kid, new_key.kid}
    clock.advance(601)  # the new key is active now
    fresh = await service.app.refresh(refresh_token=session.grant.refresh_token)
    assert jwt.get_unverified_header(fresh.access_token)["kid"] == new_key.kid
    clock.advance(-0) if False else None
    assert (await service.app.authenticate(fresh.access_token)).user_id == session.user_id


async def test_old_key_leaves_jwks_once_its_tokens_expired(service: UserComponents, clock: FakeClock) -> None:
    old = await service.app.keys.signing_key()
    new = await service.app.rotate_signing_key()
    clock.advance(600 + 600 + 31)
    await service.app.maintain()
    assert [k["kid"] for k in await service.app.jwks()] == [new.kid]
    assert old.kid not in {k.kid for k in await service.app.keys.published()}


async def test_token_signed_by_old_key_verifies_during_overlap(service: UserComponents, clock: FakeClock) -> None:
    session = await sign_up(service, "alice@example.com")
    await service.app.rotate_signing_key()
    clock.advance(601)
    assert (await service.app.authenticate(session.grant.access_token)).user_id == session.user_id


async def test_es256_keys_sign_and_publish_p256_jwks(clock: FakeClock) -> None:
    from services.user.testing import memory_settings
    from services.user.wiring import build

    service = build(memory_settings(jwt_algorithm="ES256"), clock=clock)
    await service.start()
    try:
        session = await sign_up(service, "alice@example.com")
        assert jwt.get_unverified_header(session.grant.access_token)["alg"] == "ES256"
        [jwk] = await service.app.jwks()
        assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256") and jwk["y"]
        public = jwt.PyJWK.from_dict(dict(jwk)).key
        claims = jwt.decode(session.grant.access_token, public, algorithms=["ES256"], audience="tastyplat",
                            options={"verify_exp": False})  # the fake clock is in 2024
        assert claims["sub"] == session.user_id
    finally:
        await service.stop()
