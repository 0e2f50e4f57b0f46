"""Unit tests of the user service's domain rules: no I/O, plain values in and decisions out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.user.domain.access import UserCursor, UserPageRequest, check_role_change, target_user_id
from services.user.domain.errors import (
    EmailInvalid,
    FieldInvalid,
    FieldRequired,
    LastAdmin,
    PageTokenInvalid,
    PasswordTooWeak,
    PhoneNumberInvalid,
    TimeZoneInvalid,
    UpdateMaskInvalid,
    UserNotFound,
    VerificationThrottled,
)
from services.user.domain.keys import KeyRing, KeyRotationPolicy, SigningAlgorithm, SigningKey
from services.user.domain.model import Identity, Role, normalize_email
from services.user.domain.passwords import PasswordPolicy, normalize_password
from services.user.domain.preferences import (
    Channel,
    Contact,
    NotificationPreferences,
    PreferencesPatch,
    PushDevice,
    PushPlatform,
    QuietHours,
    Severity,
)
from services.user.domain.sessions import RefreshToken, RefreshVerdict, RevokeReason, Session, SessionPolicy, judge
from services.user.domain.throttle import ThrottlePolicy, address_key
from services.user.domain.tokens import AccessClaims
from services.user.domain.verification import AttemptOutcome, ContactChannel, VerificationPolicy

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
ALICE = "5b0c2d8e-7d6a-4f57-9c55-2a4f5f0e0a11"
BOB = "8f6f2b1e-3b9c-4d0a-8a1e-6a7c9d2e4b22"


def identity(user_id: str = ALICE, *roles: Role) -> Identity:
    return Identity(user_id, frozenset(roles or {Role.TRADER}), "sid", "jti", T0)


# E-mail and passwords ---------------------------------------------------------------------------------


def test_normalize_email_trims_and_lowercases() -> None:
    assert normalize_email("  Alice@Example.COM ") == "alice@example.com"


@pytest.mark.parametrize("bad", ["alice", "alice@", "@example.com", "a b@example.com", "alice@example", "x@-a.com"])
def test_normalize_email_rejects_malformed(bad: str) -> None:
    with pytest.raises(EmailInvalid) as caught:
        normalize_email(bad)
    assert caught.value.field_violations[0].field == "email"


def test_normalize_email_rejects_empty_as_required() -> None:
    with pytest.raises(FieldRequired):
        normalize_email("   ")


def test_password_policy_accepts_long_passphrase() -> None:
    PasswordPolicy().check("purple monkey dishwasher", email="alice@example.com")


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1!", "at least 12"),
        ("x" * 257, "at most 256"),
        ("aaaaaaaaaaaaaaaa", "repeat"),
        ("Password1234", "breached"),
        ("my alice@example.com pw", "e-mail"),
        ("alicealice-secret", "e-mail"),
    ],
)
def test_password_policy_rejects_weak_password(password: str, why: str) -> None:
    with pytest.raises(PasswordTooWeak, match=why):
        PasswordPolicy().check(password, email="alice@example.com")


def test_password_normalization_makes_compatibility_forms_equal() -> None:
    assert normalize_password("ｐａｓｓｗｏｒｄ") == "password"


# Sessions -----------------------------------------------------------------------------------------------


def _session_and_token(used_at: datetime | None = None) -> tuple[Session, RefreshToken]:
    policy = SessionPolicy()
    session = policy.open_session("s1", ALICE, T0)
    return session, replace(policy.issue(session, b"h", T0), used_at=used_at)


def test_judge_rotates_fresh_token() -> None:
    session, token = _session_and_token()
    assert judge(token, session, T0 + timedelta(minutes=1)) is RefreshVerdict.ROTATE


def test_judge_flags_used_token_as_reuse() -> None:
    session, token = _session_and_token(used_at=T0)
    assert judge(token, session, T0 + timedelta(minutes=1)) is RefreshVerdict.REUSED


def test_judge_expires_idle_token() -> None:
    session, token = _session_and_token()
    assert judge(token, session, T0 + timedelta(days=15)) is RefreshVerdict.EXPIRED


def test_judge_refuses_everything_of_a_revoked_session() -> None:
    session, token = _session_and_token(used_at=T0)
    revoked = session.revoked(T0, RevokeReason.LOGOUT)
    assert judge(token, revoked, T0) is RefreshVerdict.REVOKED


def test_successor_token_never_outlives_its_session() -> None:
    policy = SessionPolicy(refresh_token_ttl=timedelta(days=14), session_max_lifetime=timedelta(days=30))
    session = policy.open_session("s1", ALICE, T0)
    late = policy.issue(session, b"h", T0 + timedelta(days=25))
    assert late.expires_at == session.expires_at


def test_revoking_twice_keeps_first_reason() -> None:
    session = SessionPolicy().open_session("s1", ALICE, T0)
    once = session.revoked(T0, RevokeReason.REUSE_DETECTED)
    assert once.revoked(T0 + timedelta(hours=1), RevokeReason.LOGOUT).revoke_reason is RevokeReason.REUSE_DETECTED


# Throttle -----------------------------------------------------------------------------------------------

POLICY = ThrottlePolicy(3, timedelta(minutes=15), timedelta(minutes=1), timedelta(minutes=4))


def test_throttle_locks_after_max_failures() -> None:
    record = None
    for _ in range(3):
        record = POLICY.after_failure(record, T0)
    assert POLICY.retry_after(record, T0) == 60.0


def test_throttle_allows_below_max_failures() -> None:
    record = POLICY.after_failure(POLICY.after_failure(None, T0), T0)
    assert POLICY.retry_after(record, T0) is None


def test_throttle_lockout_doubles_and_caps() -> None:
    record = None
    now = T0
    lockouts = []
    for _ in range(4):
        for _ in range(3):
            record = POLICY.after_failure(record, now)
        wait = POLICY.retry_after(record, now)
        assert wait is not None
        lockouts.append(wait)
        now += timedelta(seconds=wait)
    assert lockouts == [60.0, 120.0, 240.0, 240.0]


def test_throttle_failure_while_locked_changes_nothing() -> None:
    record = None
    for _ in range(3):
        record = POLICY.after_failure(record, T0)
    assert POLICY.after_failure(record, T0 + timedelta(seconds=5)) == record


def test_throttle_forgets_after_quiet_window() -> None:
    record = POLICY.after_failure(POLICY.after_failure(None, T0), T0)
    later = POLICY.after_failure(record, T0 + timedelta(minutes=16))
    assert later.failures == 1 and later.lockouts == 0


def test_address_key_groups_ipv6_by_64_and_unmaps_ipv4() -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "address:192.0.2.1"


# Verification -------------------------------------------------------------------------------------------

VPOLICY = VerificationPolicy()


def test_right_code_verifies() -> None:
    challenge = VPOLICY.new_challenge("c1", ALICE, ContactChannel.SMS, "+14155550100", "123456", T0)
    after, outcome = VPOLICY.attempt(challenge, "+14155550100", "123456", T0)
    assert outcome is AttemptOutcome.VERIFIED and after.consumed_at == T0


def test_code_for_another_destination_is_invalid() -> None:
    challenge = VPOLICY.new_challenge("c1", ALICE, ContactChannel.SMS, "+14155550100", "123456", T0)
    assert VPOLICY.attempt(challenge, "+14155550199", "123456", T0)[1] is AttemptOutcome.INVALID


def test_expired_code_is_invalid() -> None:
    challenge = VPOLICY.new_challenge("c1", ALICE, ContactChannel.SMS, "+14155550100", "123456", T0)
    assert VPOLICY.attempt(challenge, "+14155550100", "123456", T0 + timedelta(minutes=11))[1] is AttemptOutcome.INVALID


def test_wrong_codes_exhaust_the_challenge_even_for_the_right_code_later() -> None:
    challenge = VPOLICY.new_challenge("c1", ALICE, ContactChannel.SMS, "+14155550100", "123456", T0)
    outcomes = []
    for _ in range(VPOLICY.max_attempts):
        challenge, outcome = VPOLICY.attempt(challenge, "+14155550100", "000000", T0)
        outcomes.append(outcome)
    assert outcomes[-1] is AttemptOutcome.EXHAUSTED
    assert VPOLICY.attempt(challenge, "+14155550100", "123456", T0)[1] is AttemptOutcome.EXHAUSTED


def test_resend_within_cooldown_is_throttled() -> None:
    last = VPOLICY.new_challenge("c1", ALICE, ContactChannel.SMS, "+14155550100", "123456", T0)
    with pytest.raises(VerificationThrottled) as caught:
        VPOLICY.check_send(last, [T0], T0 + timedelta(seconds=10))
    assert caught.value.retry_after == 50.0


def test_destination_daily_budget_is_enforced_across_users() -> None:
    sends = [T0 + timedelta(minutes=i) for i in range(VPOLICY.max_sends_per_day)]
    with pytest.raises(VerificationThrottled, match="today"):
        VPOLICY.check_send(None, sends, T0 + timedelta(hours=1))


# Preferences --------------------------------------------------------------------------------------------


def test_changed_phone_number_starts_unverified_and_is_reported() -> None:
    prefs = NotificationPreferences(phone=Contact("+14155550100", T0))
    patch = PreferencesPatch(paths=frozenset({"phone_number"}), phone_number="+1 (415) 555-0199")
    updated, changed = prefs.apply(patch, T0)
    assert updated.phone == Contact("+14155550199") and changed == {ContactChannel.SMS}


def test_unchanged_phone_number_keeps_its_verification() -> None:
    prefs = NotificationPreferences(phone=Contact("+14155550100", T0))
    updated, changed = prefs.apply(PreferencesPatch(paths=frozenset({"phone_number"}), phone_number="+14155550100"), T0)
    assert updated.phone == Contact("+14155550100", T0) and not changed


def test_alert_email_equal_to_verified_login_address_needs_no_code() -> None:
    prefs = NotificationPreferences()
    patch = PreferencesPatch(paths=frozenset({"email"}), email="alice@example.com")
    updated, changed = prefs.apply(patch, T0, verified_login_email="alice@example.com")
    assert updated.email is not None and updated.email.verified and not changed


def test_invalid_phone_number_is_rejected() -> None:
    with pytest.raises(PhoneNumberInvalid):
        NotificationPreferences().apply(PreferencesPatch(paths=frozenset({"phone_number"}), phone_number="0800-FLOWERS"), T0)


def test_output_only_mask_path_is_rejected() -> None:
    with pytest.raises(UpdateMaskInvalid):
        NotificationPreferences().apply(PreferencesPatch(paths=frozenset({"phone_number_verified"})), T0)


def test_quiet_hours_sub_field_update_keeps_the_others() -> None:
    prefs = NotificationPreferences(quiet_hours=QuietHours(True, "Europe/Berlin", 1320, 420, False))
    patch = PreferencesPatch(paths=frozenset({"quiet_hours.start_minute"}), quiet_hours=QuietHours(start_minute=1380))
    updated, _ = prefs.apply(patch, T0)
    assert updated.quiet_hours == QuietHours(True, "Europe/Berlin", 1380, 420, False)


def test_unknown_time_zone_is_rejected() -> None:
    patch = PreferencesPatch(paths=frozenset({"quiet_hours"}), quiet_hours=QuietHours(True, "Mars/Olympus", 0, 60))
    with pytest.raises(TimeZoneInvalid):
        NotificationPreferences().apply(patch, T0)


@pytest.mark.parametrize("minute", [-1, 1440])
def test_quiet_hours_minute_out_of_range_is_rejected(minute: int) -> None:
    patch = PreferencesPatch(paths=frozenset({"quiet_hours"}), quiet_hours=QuietHours(True, "UTC", minute, 60))
    with pytest.raises(FieldInvalid, match="0..1439"):
        NotificationPreferences().apply(patch, T0)


def test_quiet_hours_wrap_midnight_in_local_time() -> None:
    quiet = QuietHours(True, "America/New_York", 22 * 60, 7 * 60)
    assert quiet.contains(datetime(2024, 1, 3, 4, 0, tzinfo=UTC))  # 23:00 in New York
    assert not quiet.contains(datetime(2024, 1, 3, 13, 0, tzinfo=UTC))  # 08:00 in New York
    assert quiet.ends_after(datetime(2024, 1, 3, 4, 0, tzinfo=UTC)) == datetime(2024, 1, 3, 12, 0, tzinfo=UTC)


def test_deliverable_skips_unverified_contacts() -> None:
    prefs = NotificationPreferences(phone=Contact("+14155550100"), email=Contact("a@example.com", T0))
    assert prefs.deliverable(Severity.CRITICAL, T0) == (Channel.STREAM, Channel.EMAIL)


def test_deliverable_in_quiet_hours_is_stream_only_unless_critical_allowed() -> None:
    prefs = NotificationPreferences(
        email=Contact("a@example.com", T0),
        push_devices=(PushDevice("tok", PushPlatform.IOS),),
        quiet_hours=QuietHours(True, "UTC", 14 * 60, 15 * 60, allow_critical=True),
    )
    assert prefs.deliverable(Severity.WARNING, T0) == (Channel.STREAM,)
    assert prefs.deliverable(Severity.CRITICAL, T0) == (Channel.STREAM, Channel.PUSH, Channel.EMAIL)


def test_duplicate_severity_is_rejected() -> None:
    patch = PreferencesPatch(
        paths=frozenset({"severity_channels"}),
        severity_channels=((Severity.INFO, (Channel.STREAM,)), (Severity.INFO, (Channel.EMAIL,))),
    )
    with pytest.raises(FieldInvalid, match="twice"):
        NotificationPreferences().apply(patch, T0)


def test_push_devices_keep_registration_time_of_known_tokens() -> None:
    prefs = NotificationPreferences(push_devices=(PushDevice("tok", PushPlatform.IOS, "phone", T0),))
    patch = PreferencesPatch(
        paths=frozenset({"push_devices"}),
        push_devices=(PushDevice("tok", PushPlatform.IOS, "renamed"), PushDevice("new", PushPlatform.WEB)),
    )
    updated, _ = prefs.apply(patch, T0 + timedelta(days=1))
    assert [(d.device_token, d.registered_at) for d in updated.push_devices] == [
        ("tok", T0),
        ("new", T0 + timedelta(days=1)),
    ]


# Access rules -------------------------------------------------------------------------------------------


def test_me_resolves_to_the_caller() -> None:
    assert target_user_id(identity(), "me") == ALICE


def test_another_users_id_is_not_found_for_a_trader() -> None:
    with pytest.raises(UserNotFound):
        target_user_id(identity(), BOB)


def test_admin_may_name_another_user() -> None:
    assert target_user_id(identity(ALICE, Role.ADMIN), BOB.upper()) == BOB


def test_admin_cannot_drop_own_admin_role() -> None:
    with pytest.raises(LastAdmin):
        check_role_change(identity(ALICE, Role.ADMIN), ALICE, [Role.TRADER])


def test_page_token_is_bound_to_its_filter() -> None:
    page = UserPageRequest.parse(10, "", "al")
    token = page.next_token(UserCursor(T0, ALICE))
    assert UserPageRequest.parse(10, token, "al").after == UserCursor(T0, ALICE)
    with pytest.raises(PageTokenInvalid):
        UserPageRequest.parse(10, token, "bo")


@pytest.mark.parametrize("token", ["garbage", "eyJ0IjoxfQ", "e30"])
def test_malformed_page_token_is_rejected(token: str) -> None:
    with pytest.raises(PageTokenInvalid):
        UserPageRequest.parse(10, token, "")


def test_page_size_is_clamped_and_defaulted() -> None:
    assert UserPageRequest.parse(0, "", "").page_size == 50
    assert UserPageRequest.parse(10_000, "", "").page_size == 500


# Keys ---------------------------------------------------------------------------------------------------

KPOLICY = KeyRotationPolicy(
    rotation_period=timedelta(days=30), prepublish=timedelta(minutes=10), access_token_ttl=timedelta(minutes=10)
)


def key(kid: str, activates_at: datetime) -> SigningKey:
    return SigningKey(kid, SigningAlgorithm.EDDSA, b"", {"kid": kid}, activates_at, activates_at)


def test_new_key_is_published_before_it_signs() -> None:
    ring = KeyRing.of([key("old", T0), key("new", T0 + timedelta(minutes=10))])
    now = T0 + timedelta(minutes=5)
    assert ring.signing_key(now).kid == "old"  # type: ignore[union-attr]
    assert [k.kid for k in ring.published(now, KPOLICY)] == ["old", "new"]


def test_superseded_key_stays_published_until_its_tokens_expire() -> None:
    ring = KeyRing.of([key("old", T0), key("new", T0 + timedelta(minutes=10))])
    still = T0 + timedelta(minutes=20, seconds=29)
    gone = T0 + timedelta(minutes=20, seconds=30)
    assert [k.kid for k in ring.published(still, KPOLICY)] == ["old", "new"]
    assert [k.kid for k in ring.published(gone, KPOLICY)] == ["new"]
    assert [k.kid for k in ring.expired(gone, KPOLICY)] == ["old"]


def test_rotation_is_due_after_the_period() -> None:
    ring = KeyRing.of([key("k", T0)])
    assert not ring.needs_rotation(T0 + timedelta(days=29), KPOLICY)
    assert ring.needs_rotation(T0 + timedelta(days=30), KPOLICY)


# Access-token claims ------------------------------------------------------------------------------------


def payload(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": "i", "aud": "a", "sub": ALICE, "iat": int(T0.timestamp()), "exp": int(T0.timestamp()) + 600,
        "jti": "j", "roles": ["trader"], "sid": "s",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_claims_parse_valid_payload() -> None:
    claims = AccessClaims.parse(payload(), now=T0, leeway=timedelta(seconds=30))
    assert claims.identity().user_id == ALICE and claims.roles == {Role.TRADER}


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": None},
        {"exp": "9999999999"},
        {"exp": 1.5e9},
        {"exp": int(T0.timestamp()) - 31},
        {"iat": int(T0.timestamp()) + 31},
        {"exp": int(T0.timestamp()) + 2 * 86400},
        {"roles": ["superuser"]},
        {"roles": "admin"},
        {"aud": ["a", "b"]},
        {"exp": 10**20},
    ],
)
def test_claims_reject_bad_payload(overrides: dict[str, object]) -> None:
    from services.user.domain.errors import AuthenticationRequired

    with pytest.raises(AuthenticationRequired):
        AccessClaims.parse(payload(**overrides), now=T0, leeway=timedelta(seconds=30))
