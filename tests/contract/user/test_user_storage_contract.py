"""The storage contract of the user service, run against the in-memory and the PostgreSQL adapters alike."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.platform.audit import AuditLog, AuditSigner, MemoryAuditStore, PostgresAuditStore
from services.platform.clock import FakeClock
from services.user.adapters.jwt_tokens import KeyPairFactory
from services.user.adapters.memory import MemoryStorage
from services.user.adapters.postgres import PostgresStorage
from services.user.domain.access import UserCursor, UserPageRequest
from services.user.domain.errors import EmailTaken
from services.user.domain.keys import SigningAlgorithm
from services.user.domain.model import Role, User
from services.user.domain.preferences import (
    Channel,
    Contact,
    NotificationPreferences,
    PushDevice,
    PushPlatform,
    QuietHours,
    Severity,
)
from services.user.domain.sessions import RefreshToken, RevokeReason, Session, SessionPolicy, hash_token
from services.user.domain.throttle import ThrottlePolicy
from services.user.domain.verification import ContactChannel, PasswordResetTicket, VerificationPolicy

Storage = MemoryStorage | PostgresStorage
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(20)]


def user(i: int, email: str | None = None, *, at: datetime = T0, request_id: str | None = None) -> User:
    return User(IDS[i], email or f"user{i}@example.com", "$argon2id$hash", frozenset({Role.TRADER}), False, at, at,
                request_id)


async def add(storage: Storage, i: int, **kwargs: object) -> User:
    u = user(i, **kwargs)  # type: ignore[arg-type]
    await storage.users.add(u, NotificationPreferences.default_for(u.email))
    return u


# Users --------------------------------------------------------------------------------------------------


async def test_added_user_reads_back_by_id_email_and_request_id(storage: Storage) -> None:
    u = await add(storage, 1, request_id="req-1")
    assert await storage.users.get(u.user_id) == u
    assert await storage.users.get_by_email(u.email) == u
    assert await storage.users.get_by_request_id("req-1") == u


async def test_missing_user_reads_as_none(storage: Storage) -> None:
    assert await storage.users.get(IDS[9]) is None
    assert await storage.users.get_by_email("nobody@example.com") is None
    assert await storage.users.get_preferences(IDS[9]) is None


async def test_duplicate_email_is_taken(storage: Storage) -> None:
    await add(storage, 1, email="same@example.com")
    with pytest.raises(EmailTaken):
        await add(storage, 2, email="same@example.com")


async def test_duplicate_request_id_is_refused(storage: Storage) -> None:
    await add(storage, 1, request_id="req-1")
    with pytest.raises(EmailTaken):
        await add(storage, 2, request_id="req-1")


async def test_update_changes_roles_hash_and_verification(storage: Storage) -> None:
    u = await add(storage, 1)
    changed = replace(u, roles=frozenset({Role.ADMIN, Role.READONLY}), password_hash="new", email_verified=True,
                      updated_at=T0 + timedelta(hours=1))
    assert await storage.users.update(changed)
    assert await storage.users.get(u.user_id) == changed


async def test_update_of_missing_user_reports_false(storage: Storage) -> None:
    assert not await storage.users.update(user(5))


async def test_preferences_round_trip_exactly(storage: Storage) -> None:
    u = await add(storage, 1)
    prefs = NotificationPreferences(
        phone=Contact("+14155550100", T0),
        email=Contact("alerts@example.com"),
        push_devices=(PushDevice("tok-1", PushPlatform.ANDROID, "Pixel 8", T0),),
        quiet_hours=QuietHours(True, "America/New_York", 1320, 420, False),
        severity_channels=((Severity.WARNING, (Channel.EMAIL,)), (Severity.CRITICAL, (Channel.SMS, Channel.PUSH))),
        escalation_delay=timedelta(minutes=7, seconds=30),
    )
    assert await storage.users.save_preferences(u.user_id, prefs)
    assert await storage.users.get_preferences(u.user_id) == prefs


async def test_delete_cascades_to_everything_of_the_user(storage: Storage) -> None:
    u = await add(storage, 1)
    policy = SessionPolicy()
    session = policy.open_session(IDS[10], u.user_id, T0)
    await storage.sessions.open(session, policy.issue(session, hash_token("r1"), T0))
    await storage.resets.add(PasswordResetTicket(hash_token("reset"), u.user_id, T0, T0 + timedelta(hours=1)))
    challenge = VerificationPolicy().new_challenge(IDS[11], u.user_id, ContactChannel.SMS, "+14155550100", "123456", T0)
    await storage.verifications.add(challenge)
    assert await storage.users.delete(u.user_id)
    assert await storage.users.get(u.user_id) is None
    assert await storage.sessions.find(hash_token("r1")) is None
    assert await storage.sessions.get_session(session.session_id) is None
    assert await storage.resets.find(hash_token("reset")) is None
    assert await storage.verifications.latest(u.user_id, ContactChannel.SMS) is None
    assert not await storage.users.delete(u.user_id)


async def test_list_page_orders_by_creation_then_id_and_continues_after_cursor(storage: Storage) -> None:
    for i in (3, 1, 2):
        await add(storage, i, at=T0 + timedelta(minutes=i % 2))
    first = await storage.users.list_page(UserPageRequest(2, "", None))
    assert [u.user_id for u in first] == [IDS[2], IDS[1], IDS[3]]
    rest = await storage.users.list_page(UserPageRequest(2, "", UserCursor(first[1].created_at, first[1].user_id)))
    assert [u.user_id for u in rest] == [IDS[3]]


async def test_list_page_filters_by_prefix_literally(storage: Storage) -> None:
    await add(storage, 1, email="a_b@example.com")
    await add(storage, 2, email="axb@example.com")
    await add(storage, 3, email="a%c@example.com")
    assert [u.email for u in await storage.users.list_page(UserPageRequest(10, "a_", None))] == ["a_b@example.com"]
    assert [u.email for u in await storage.users.list_page(UserPageRequest(10, "a%", None))] == ["a%c@example.com"]


# Sessions -----------------------------------------------------------------------------------------------


async def _session(
    storage: Storage, user_index: int = 1, session_index: int = 10, token: str = "r1"
) -> tuple[Session, RefreshToken]:
    u = await storage.users.get(IDS[user_index]) or await add(storage, user_index)
    policy = SessionPolicy()
    session = policy.open_session(IDS[session_index], u.user_id, T0)
    first = policy.issue(session, hash_token(token), T0)
    await storage.sessions.open(session, first)
    return session, first


async def test_opened_session_is_found_by_token_hash(storage: Storage) -> None:
    session, first = await _session(storage)
    assert await storage.sessions.find(first.token_hash) == (first, session)
    assert await storage.sessions.get_session(session.session_id) == session


async def test_rotate_marks_used_once_and_stores_successor(storage: Storage) -> None:
    session, first = await _session(storage)
    successor = SessionPolicy().issue(session, hash_token("r2"), T0 + timedelta(minutes=1))
    assert await storage.sessions.rotate(first, successor, T0 + timedelta(minutes=1))
    found = await storage.sessions.find(first.token_hash)
    assert found is not None and found[0].used_at == T0 + timedelta(minutes=1)
    assert await storage.sessions.find(successor.token_hash) == (successor, session)
    other = SessionPolicy().issue(session, hash_token("r3"), T0)
    assert not await storage.sessions.rotate(first, other, T0 + timedelta(minutes=2))
    assert await storage.sessions.find(other.token_hash) is None


async def test_concurrent_rotations_let_exactly_one_win(storage: Storage) -> None:
    session, first = await _session(storage)
    policy = SessionPolicy()
    results = await asyncio.gather(
        *(storage.sessions.rotate(first, policy.issue(session, hash_token(f"n{i}"), T0), T0) for i in range(8))
    )
    assert sorted(results) == [False] * 7 + [True]


async def test_revoke_is_idempotent_and_keeps_first_reason(storage: Storage) -> None:
    session, _ = await _session(storage)
    assert await storage.sessions.revoke(session.session_id, T0, RevokeReason.REUSE_DETECTED)
    assert await storage.sessions.revoke(session.session_id, T0 + timedelta(hours=1), RevokeReason.LOGOUT)
    stored = await storage.sessions.get_session(session.session_id)
    assert stored is not None and (stored.revoked_at, stored.revoke_reason) == (T0, RevokeReason.REUSE_DETECTED)
    assert not await storage.sessions.revoke(IDS[19], T0, RevokeReason.LOGOUT)


async def test_revoke_all_counts_only_active_sessions_of_the_user(storage: Storage) -> None:
    await _session(storage, 1, 10, "a")
    s2, _ = await _session(storage, 1, 11, "b")
    await _session(storage, 2, 12, "c")
    await storage.sessions.revoke(s2.session_id, T0, RevokeReason.LOGOUT)
    assert await storage.sessions.revoke_all(IDS[1], T0 + timedelta(minutes=1), RevokeReason.PASSWORD_RESET) == 1
    other = await storage.sessions.get_session(IDS[12])
    assert other is not None and other.revoked_at is None


async def test_purge_drops_ended_sessions_and_their_tokens(storage: Storage) -> None:
    s1, t1 = await _session(storage, 1, 10, "a")
    s2, t2 = await _session(storage, 1, 11, "b")
    await storage.sessions.revoke(s1.session_id, T0, RevokeReason.LOGOUT)
    assert await storage.sessions.purge(T0 + timedelta(days=1)) == 1
    assert await storage.sessions.find(t1.token_hash) is None
    assert await storage.sessions.find(t2.token_hash) is not None


# Throttle -----------------------------------------------------------------------------------------------

THROTTLE = ThrottlePolicy(3, timedelta(minutes=15), timedelta(minutes=1), timedelta(minutes=15))


async def test_throttle_records_failures_until_lock(storage: Storage) -> None:
    assert await storage.throttle.get("k") is None
    records = [await storage.throttle.record_failure("k", THROTTLE, T0) for _ in range(3)]
    assert [r.failures for r in records] == [1, 2, 0]
    assert records[-1].locked_until == T0 + timedelta(minutes=1)
    assert await storage.throttle.get("k") == records[-1]


async def test_throttle_clear_forgets_the_key(storage: Storage) -> None:
    await storage.throttle.record_failure("k", THROTTLE, T0)
    await storage.throttle.clear("k")
    assert await storage.throttle.get("k") is None


async def test_concurrent_failures_are_all_counted(storage: Storage) -> None:
    many = ThrottlePolicy(100, timedelta(minutes=15), timedelta(minutes=1), timedelta(minutes=15))
    await asyncio.gather(*(storage.throttle.record_failure("k", many, T0) for _ in range(10)))
    record = await storage.throttle.get("k")
    assert record is not None and record.failures == 10


# Verification and reset tickets -------------------------------------------------------------------------


async def test_latest_challenge_is_the_newest_of_user_and_channel(storage: Storage) -> None:
    u = await add(storage, 1)
    policy = VerificationPolicy()
    old = policy.new_challenge(IDS[10], u.user_id, ContactChannel.SMS, "+14155550100", "111111", T0)
    new = policy.new_challenge(IDS[11], u.user_id, ContactChannel.SMS, "+14155550100", "222222", T0 + timedelta(minutes=2))
    mail = policy.new_challenge(IDS[12], u.user_id, ContactChannel.EMAIL, "a@example.com", "333333", T0 + timedelta(minutes=3))
    for c in (old, new, mail):
        await storage.verifications.add(c)
    assert await storage.verifications.latest(u.user_id, ContactChannel.SMS) == new


async def test_save_attempt_is_compare_and_set(storage: Storage) -> None:
    u = await add(storage, 1)
    c = VerificationPolicy().new_challenge(IDS[10], u.user_id, ContactChannel.SMS, "+14155550100", "111111", T0)
    await storage.verifications.add(c)
    once = replace(c, attempts=1)
    assert await storage.verifications.save_attempt(c, once)
    assert not await storage.verifications.save_attempt(c, replace(c, consumed_at=T0))
    assert await storage.verifications.latest(u.user_id, ContactChannel.SMS) == once


async def test_sends_to_a_destination_survive_account_deletion(storage: Storage) -> None:
    u = await add(storage, 1)
    c = VerificationPolicy().new_challenge(IDS[10], u.user_id, ContactChannel.SMS, "+14155550100", "111111", T0)
    await storage.verifications.add(c)
    await storage.users.delete(u.user_id)
    assert await storage.verifications.sends_since("+14155550100", T0 - timedelta(days=1)) == [T0]
    assert await storage.verifications.sends_since("+14155550100", T0 + timedelta(seconds=1)) == []


async def test_reset_ticket_is_consumed_once(storage: Storage) -> None:
    u = await add(storage, 1)
    ticket = PasswordResetTicket(hash_token("t"), u.user_id, T0, T0 + timedelta(minutes=30))
    await storage.resets.add(ticket)
    assert await storage.resets.find(ticket.token_hash) == ticket
    assert await storage.resets.latest_for_user(u.user_id) == ticket
    assert await storage.resets.consume(ticket.token_hash, T0)
    assert not await storage.resets.consume(ticket.token_hash, T0)
    assert await storage.resets.find(ticket.token_hash) == replace(ticket, used_at=T0)


# Signing keys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(SigningAlgorithm))
async def test_signing_keys_round_trip_with_private_half(storage: Storage, algorithm: SigningAlgorithm) -> None:
    key = KeyPairFactory(algorithm).generate("kid-1", T0, T0 + timedelta(minutes=10))
    await storage.keys.add(key)
    [stored] = await storage.keys.list_keys()
    assert stored == key and stored.private_pem == key.private_pem and dict(stored.public_jwk) == dict(key.public_jwk)
    await storage.keys.delete(["kid-1"])
    assert await storage.keys.list_keys() == []


# Audit store --------------------------------------------------------------------------------------------


async def test_audit_chain_stays_valid_under_concurrent_appends(audit_store: MemoryAuditStore | PostgresAuditStore) -> None:
    log = AuditLog(audit_store, AuditSigner.generate(), FakeClock().now)
    await log.start()
    await log.start()
    await asyncio.gather(*(log.record("login.failed", actor=None, subject=None, details={"n": i}) for i in range(12)))
    report = await log.verify()
    assert report.ok and report.entries == 12 and report.head_seq == 12
