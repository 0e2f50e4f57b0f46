"""Unit tests of user management, notification preferences, contact verification and password reset."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from user_unit_support import PASSWORD, sign_up

from services.platform.clock import FakeClock
from services.user.domain.errors import (
    AuthenticationRequired,
    ContactAlreadyVerified,
    ContactMissing,
    FieldRequired,
    InvalidCredentials,
    LastAdmin,
    PasswordTooWeak,
    RefreshTokenInvalid,
    ResetThrottled,
    ResetTokenInvalid,
    RoleRequired,
    UserNotFound,
    VerificationCodeInvalid,
    VerificationThrottled,
)
from services.user.domain.model import Role
from services.user.domain.preferences import PreferencesPatch
from services.user.domain.verification import ContactChannel
from services.user.ports import CodePurpose
from services.user.wiring import UserComponents

PHONE = "+14155550100"


def phone_patch(number: str = PHONE) -> PreferencesPatch:
    return PreferencesPatch(paths=frozenset({"phone_number"}), phone_number=number)


# Users --------------------------------------------------------------------------------------------------


async def test_get_user_me_returns_own_user_with_preferences(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    view = await service.app.get_user(alice.identity, "me")
    assert view.user.user_id == alice.user_id
    assert view.preferences is not None and view.preferences.email is not None
    assert view.preferences.email.address == "alice@example.com"


async def test_trader_cannot_read_another_user_and_learns_nothing(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    bob = await sign_up(service, "bob@example.com")
    with pytest.raises(UserNotFound) as existing:
        await service.app.get_user(alice.identity, bob.user_id)
    with pytest.raises(UserNotFound) as missing:
        await service.app.get_user(alice.identity, "00000000-0000-4000-8000-000000000000")
    assert existing.value.reason == missing.value.reason == "USER_NOT_FOUND"


@pytest.mark.parametrize("operation", ["delete", "preferences", "send_code", "verify"])
async def test_trader_cannot_touch_another_users_data(service: UserComponents, operation: str) -> None:
    alice = await sign_up(service, "alice@example.com")
    bob = await sign_up(service, "bob@example.com")
    app = service.app
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "delete": lambda: app.delete_user(alice.identity, bob.user_id),
        "preferences": lambda: app.update_preferences(alice.identity, bob.user_id, phone_patch()),
        "send_code": lambda: app.send_verification_code(alice.identity, bob.user_id, ContactChannel.EMAIL),
        "verify": lambda: app.verify_contact(alice.identity, bob.user_id, ContactChannel.EMAIL, "123456"),
    }
    with pytest.raises(UserNotFound):
        await calls[operation]()
    assert (await app.get_user(bob.identity, "me")).preferences.phone is None  # type: ignore[union-attr]


async def test_admin_reads_any_user(service: UserComponents) -> None:
    admin = await sign_up(service, "root@example.com", admin=True)
    bob = await sign_up(service, "bob@example.com")
    assert (await service.app.get_user(admin.identity, bob.user_id)).user.email == "bob@example.com"


async def test_admin_reading_missing_user_gets_not_found(service: UserComponents) -> None:
    admin = await sign_up(service, "root@example.com", admin=True)
    with pytest.raises(UserNotFound):
        await service.app.get_user(admin.identity, "00000000-0000-4000-8000-000000000000")


async def test_list_users_is_admin_only(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    with pytest.raises(RoleRequired):
        await service.app.list_users(alice.identity, page_size=10, page_token="", email_prefix="")


async def test_list_users_pages_in_creation_order(service: UserComponents, clock: FakeClock) -> None:
    admin = await sign_up(service, "root@example.com", admin=True)
    for i in range(4):
        clock.advance(1)
        await service.app.create_user(email=f"user{i}@example.com", password=PASSWORD)
    seen: list[str] = []
    token = ""
    while True:
        views, token = await service.app.list_users(admin.identity, page_size=2, page_token=token, email_prefix="user")
        seen += [v.user.email for v in views]
        if not token:
            break
    assert seen == [f"user{i}@example.com" for i in range(4)]


async def test_demoted_admin_loses_admin_rights_at_once(service: UserComponents) -> None:
    admin = await sign_up(service, "root@example.com", admin=True)
    other = await sign_up(service, "other@example.com", admin=True)
    await service.app.update_roles(other.identity, admin.user_id, [Role.TRADER])
    with pytest.raises(RoleRequired):
        await service.app.list_users(admin.identity, page_size=10, page_token="", email_prefix="")


async def test_update_roles_replaces_roles_and_audits(service: UserComponents) -> None:
    admin = await sign_up(service, "root@example.com", admin=True)
    bob = await sign_up(service, "bob@example.com")
    view = await service.app.update_roles(admin.identity, bob.user_id, [Role.READONLY])
    assert view.user.roles == {Role.READONLY}
    last = (await service.audit.entries())[-1].fields
    assert (last["event"], last["details"]) == ("role.changed", {"before": "trader", "after": "readonly"})


async def test_update_roles_by_trader_is_denied(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    with pytest.raises(RoleRequired):
        await service.app.update_roles(alice.identity, alice.user_id, [Role.ADMIN])


async def test_admin_cannot_remove_own_admin_role(service: UserComponents) -> None:
    admin = await sign_up(service, "root@example.com", admin=True)
    with pytest.raises(LastAdmin):
        await service.app.update_roles(admin.identity, admin.user_id, [Role.TRADER])


async def test_update_roles_needs_roles(service: UserComponents) -> None:
    admin = await sign_up(service, "root@example.com", admin=True)
    with pytest.raises(FieldRequired):
        await service.app.update_roles(admin.identity, admin.user_id, [])


async def test_delete_self_removes_user_and_sessions(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.delete_user(alice.identity, "me")
    with pytest.raises(RefreshTokenInvalid):
        await service.app.refresh(refresh_token=alice.grant.refresh_token)
    with pytest.raises(InvalidCredentials):
        await service.app.login(email="alice@example.com", password=PASSWORD, client_address="192.0.2.1")


async def test_admin_deletes_another_user(service: UserComponents) -> None:
    admin = await sign_up(service, "root@example.com", admin=True)
    bob = await sign_up(service, "bob@example.com")
    await service.app.delete_user(admin.identity, bob.user_id)
    with pytest.raises(UserNotFound):
        await service.app.get_user(admin.identity, bob.user_id)


async def test_bootstrap_admin_is_created_once(service: UserComponents) -> None:
    first = await service.app.ensure_admin(email="root@example.com", password=PASSWORD)
    again = await service.app.ensure_admin(email="root@example.com", password=PASSWORD)
    assert first.user_id == again.user_id and Role.ADMIN in again.roles


# Preferences and verification ---------------------------------------------------------------------------


async def test_new_phone_number_gets_only_a_verification_code(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    prefs = await service.app.update_preferences(alice.identity, "me", phone_patch())
    assert prefs.phone is not None and not prefs.phone.verified
    messages = [m for m in service.outbox.messages if m.destination == PHONE]
    assert [(m.purpose, len(m.code)) for m in messages] == [(CodePurpose.CONTACT_VERIFICATION, 6)]


async def test_verify_contact_with_right_code(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.update_preferences(alice.identity, "me", phone_patch())
    code = service.outbox.last_to(PHONE).code  # type: ignore[union-attr]
    prefs = await service.app.verify_contact(alice.identity, "me", ContactChannel.SMS, code)
    assert prefs.phone is not None and prefs.phone.verified


async def test_verify_contact_with_wrong_code(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.update_preferences(alice.identity, "me", phone_patch())
    with pytest.raises(VerificationCodeInvalid):
        await service.app.verify_contact(alice.identity, "me", ContactChannel.SMS, "not-it")


async def test_too_many_wrong_codes_throttle_verification(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.update_preferences(alice.identity, "me", phone_patch())
    code = service.outbox.last_to(PHONE).code  # type: ignore[union-attr]
    wrong = "999999" if code != "999999" else "888888"
    for _ in range(4):
        with pytest.raises(VerificationCodeInvalid):
            await service.app.verify_contact(alice.identity, "me", ContactChannel.SMS, wrong)
    with pytest.raises(VerificationThrottled):
        await service.app.verify_contact(alice.identity, "me", ContactChannel.SMS, wrong)
    with pytest.raises(VerificationThrottled):
        await service.app.verify_contact(alice.identity, "me", ContactChannel.SMS, code)


async def test_code_for_old_number_does_not_verify_new_number(service: UserComponents, clock: FakeClock) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.update_preferences(alice.identity, "me", phone_patch())
    old_code = service.outbox.last_to(PHONE).code  # type: ignore[union-attr]
    clock.advance(61)
    await service.app.update_preferences(alice.identity, "me", phone_patch("+14155550199"))
    new_code = service.outbox.last_to("+14155550199").code  # type: ignore[union-attr]
    if old_code != new_code:
        with pytest.raises(VerificationCodeInvalid):
            await service.app.verify_contact(alice.identity, "me", ContactChannel.SMS, old_code)
    prefs = await service.app.verify_contact(alice.identity, "me", ContactChannel.SMS, new_code)
    assert prefs.phone is not None and prefs.phone.address == "+14155550199" and prefs.phone.verified


async def test_resend_too_soon_is_throttled(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.update_preferences(alice.identity, "me", phone_patch())
    with pytest.raises(VerificationThrottled):
        await service.app.send_verification_code(alice.identity, "me", ContactChannel.SMS)


async def test_destination_receives_at_most_five_codes_a_day_from_anyone(
    service: UserComponents, clock: FakeClock
) -> None:
    sessions = [await sign_up(service, f"user{i}@example.com") for i in range(6)]
    for session in sessions:
        clock.advance(61)
        await service.app.update_preferences(session.identity, "me", phone_patch())
    assert len([m for m in service.outbox.messages if m.destination == PHONE]) == 5
    with pytest.raises(VerificationThrottled, match="today"):
        await service.app.send_verification_code(sessions[-1].identity, "me", ContactChannel.SMS)


async def test_send_code_without_contact_is_refused(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    with pytest.raises(ContactMissing):
        await service.app.send_verification_code(alice.identity, "me", ContactChannel.SMS)


async def test_send_code_to_verified_contact_is_refused(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.update_preferences(alice.identity, "me", phone_patch())
    code = service.outbox.last_to(PHONE).code  # type: ignore[union-attr]
    await service.app.verify_contact(alice.identity, "me", ContactChannel.SMS, code)
    with pytest.raises(ContactAlreadyVerified):
        await service.app.send_verification_code(alice.identity, "me", ContactChannel.SMS)


async def test_verifying_login_address_marks_the_user_email_verified(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    await service.app.send_verification_code(alice.identity, "me", ContactChannel.EMAIL)
    code = service.outbox.last_to("alice@example.com").code  # type: ignore[union-attr]
    await service.app.verify_contact(alice.identity, "me", ContactChannel.EMAIL, code)
    assert (await service.app.get_user(alice.identity, "me")).user.email_verified


# Password reset -----------------------------------------------------------------------------------------


async def _reset_token(service: UserComponents, email: str) -> str:
    await service.app.request_password_reset(email=email, client_address="192.0.2.1")
    message = service.outbox.last_to(email)
    assert message is not None and message.purpose is CodePurpose.PASSWORD_RESET
    return message.code


async def test_password_reset_sets_new_password_and_revokes_sessions(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    token = await _reset_token(service, "alice@example.com")
    await service.app.reset_password(reset_token=token, new_password="a brand new passphrase")
    with pytest.raises(RefreshTokenInvalid):
        await service.app.refresh(refresh_token=alice.grant.refresh_token)
    with pytest.raises(AuthenticationRequired):
        await service.app.authenticate(alice.grant.access_token)
    grant = await service.app.login(email="alice@example.com", password="a brand new passphrase", client_address="192.0.2.1")
    assert grant.user_id == alice.user_id


async def test_reset_token_is_single_use(service: UserComponents) -> None:
    await sign_up(service, "alice@example.com")
    token = await _reset_token(service, "alice@example.com")
    await service.app.reset_password(reset_token=token, new_password="a brand new passphrase")
    with pytest.raises(ResetTokenInvalid):
        await service.app.reset_password(reset_token=token, new_password="another new passphrase")


async def test_reset_token_expires(service: UserComponents, clock: FakeClock) -> None:
    await sign_up(service, "alice@example.com")
    token = await _reset_token(service, "alice@example.com")
    clock.advance(timedelta(minutes=31).total_seconds())
    with pytest.raises(ResetTokenInvalid):
        await service.app.reset_password(reset_token=token, new_password="a brand new passphrase")


async def test_weak_new_password_keeps_reset_token_usable(service: UserComponents) -> None:
    await sign_up(service, "alice@example.com")
    token = await _reset_token(service, "alice@example.com")
    with pytest.raises(PasswordTooWeak):
        await service.app.reset_password(reset_token=token, new_password="short")
    await service.app.reset_password(reset_token=token, new_password="a brand new passphrase")


async def test_reset_for_unknown_address_sends_nothing_and_succeeds(service: UserComponents) -> None:
    await service.app.request_password_reset(email="ghost@example.com", client_address="192.0.2.1")
    assert service.outbox.messages == []


async def test_reset_requests_are_throttled_per_address(service: UserComponents) -> None:
    for _ in range(10):
        await service.app.request_password_reset(email="ghost@example.com", client_address="192.0.2.1")
    with pytest.raises(ResetThrottled):
        await service.app.request_password_reset(email="ghost@example.com", client_address="192.0.2.1")


async def test_reset_proves_login_address(service: UserComponents) -> None:
    alice = await sign_up(service, "alice@example.com")
    token = await _reset_token(service, "alice@example.com")
    await service.app.reset_password(reset_token=token, new_password="a brand new passphrase")
    grant = await service.app.login(email="alice@example.com", password="a brand new passphrase", client_address="192.0.2.1")
    identity = await service.app.authenticate(grant.access_token)
    view = await service.app.get_user(identity, "me")
    assert view.user.email_verified and view.preferences.email.verified  # type: ignore[union-attr]
    assert alice.user_id == identity.user_id
