"""In-memory storage with the full contract of the PostgreSQL adapter (embedded mode without a database, tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.user.domain.access import UserPageRequest
from services.user.domain.errors import EmailTaken
from services.user.domain.keys import SigningKey
from services.user.domain.model import User
from services.user.domain.preferences import NotificationPreferences
from services.user.domain.sessions import RefreshToken, RevokeReason, Session
from services.user.domain.throttle import FailureRecord, ThrottlePolicy
from services.user.domain.verification import ContactChannel, PasswordResetTicket, VerificationChallenge

__all__ = ["MemoryStorage"]


@dataclass
class _State:
    users: dict[str, User] = field(default_factory=dict)
    preferences: dict[str, NotificationPreferences] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    tokens: dict[bytes, RefreshToken] = field(default_factory=dict)
    challenges: list[VerificationChallenge] = field(default_factory=list)
    # Kept apart from challenges, like the code_sends table: deleting an account keeps the send history.
    sends: list[tuple[str, datetime]] = field(default_factory=list)
    tickets: dict[bytes, PasswordResetTicket] = field(default_factory=dict)
    throttle: dict[str, FailureRecord] = field(default_factory=dict)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def delete_user(self, user_id: str) -> bool:
        if self.users.pop(user_id, None) is None:
            return False
        self.preferences.pop(user_id, None)
        for session_id in [s.session_id for s in self.sessions.values() if s.user_id == user_id]:
            del self.sessions[session_id]
        self.tokens = {h: t for h, t in self.tokens.items() if t.user_id != user_id}
        self.challenges = [c for c in self.challenges if c.user_id != user_id]
        self.tickets = {h: t for h, t in self.tickets.items() if t.user_id != user_id}
        return True


class MemoryUserRepository:
    """``UserRepository`` in memory."""

    def __init__(self, state: _State) -> None:
        """Share ``state`` with the other memory repositories (deletes cascade across them)."""
        self._s = state

    async def add(self, user: User, preferences: NotificationPreferences) -> None:
        """Store a new user; ``EmailTaken`` if the address or idempotency key is in use."""
        async with self._s.lock:
            for other in self._s.users.values():
                if other.email == user.email or (
                    user.create_request_id is not None and other.create_request_id == user.create_request_id
                ):
                    raise EmailTaken()
            self._s.users[user.user_id] = user
            self._s.preferences[user.user_id] = preferences

    async def get(self, user_id: str) -> User | None:
        """The user, or None."""
        return self._s.users.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        """The user with this login address, or None."""
        return next((u for u in self._s.users.values() if u.email == email), None)

    async def get_by_request_id(self, request_id: str) -> User | None:
        """The user created with this idempotency key, or None."""
        return next((u for u in self._s.users.values() if u.create_request_id == request_id), None)

    async def update(self, user: User) -> bool:
        """Replace the mutable fields; False if the user is gone."""
        async with self._s.lock:
            current = self._s.users.get(user.user_id)
            if current is None:
                return False
            self._s.users[user.user_id] = replace(
                current,
                password_hash=user.password_hash,
                roles=user.roles,
                email_verified=user.email_verified,
                updated_at=user.updated_at,
            )
            return True

    async def delete(self, user_id: str) -> bool:
        """Delete the user and everything of theirs."""
        async with self._s.lock:
            return self._s.delete_user(user_id)

    async def list_page(self, page: UserPageRequest) -> list[User]:
        """Up to ``page_size + 1`` users after the cursor, in (created_at, user_id) order."""
        rows = sorted(self._s.users.values(), key=lambda u: (u.created_at, u.user_id))
        if page.email_prefix:
            rows = [u for u in rows if u.email.startswith(page.email_prefix)]
        if page.after is not None:
            cursor = (page.after.created_at, page.after.user_id)
            rows = [u for u in rows if (u.created_at, u.user_id) > cursor]
        return rows[: page.page_size + 1]

    async def get_preferences(self, user_id: str) -> NotificationPreferences | None:
        """The user's preferences, or None."""
        return self._s.preferences.get(user_id)

    async def save_preferences(self, user_id: str, preferences: NotificationPreferences) -> bool:
        """Replace the preferences; False if the user is gone."""
        async with self._s.lock:
            if user_id not in self._s.users:
                return False
            self._s.preferences[user_id] = preferences
            return True


class MemorySessionRepository:
    """``SessionRepository`` in memory."""

    def __init__(self, state: _State) -> None:
        """Share ``state``."""
        self._s = state

    async def open(self, session: Session, first: RefreshToken) -> None:
        """Store a session and its first token."""
        async with self._s.lock:
            if session.user_id not in self._s.users:
                raise LookupError(f"no user {session.user_id}")
            self._s.sessions[session.session_id] = session
            self._s.tokens[first.token_hash] = first

    async def find(self, token_hash: bytes) -> tuple[RefreshToken, Session] | None:
        """The token and its session, or None."""
        token = self._s.tokens.get(token_hash)
        if token is None:
            return None
        session = self._s.sessions.get(token.session_id)
        return None if session is None else (token, session)

    async def get_session(self, session_id: str) -> Session | None:
        """The session, or None."""
        return self._s.sessions.get(session_id)

    async def rotate(self, used: RefreshToken, successor: RefreshToken, at: datetime) -> bool:
        """Mark ``used`` used and add ``successor``, if ``used`` is still unused."""
        async with self._s.lock:
            current = self._s.tokens.get(used.token_hash)
            if current is None or current.used_at is not None:
                return False
            self._s.tokens[used.token_hash] = replace(current, used_at=at)
            self._s.tokens[successor.token_hash] = successor
            return True

    async def revoke(self, session_id: str, at: datetime, reason: RevokeReason) -> bool:
        """Revoke a session (keeps the first revocation)."""
        async with self._s.lock:
            session = self._s.sessions.get(session_id)
            if session is None:
                return False
            self._s.sessions[session_id] = session.revoked(at, reason)
            return True

    async def revoke_all(self, user_id: str, at: datetime, reason: RevokeReason) -> int:
        """Revoke every active session of a user."""
        async with self._s.lock:
            count = 0
            for session in list(self._s.sessions.values()):
                if session.user_id == user_id and session.revoked_at is None and at < session.expires_at:
                    self._s.sessions[session.session_id] = session.revoked(at, reason)
                    count += 1
            return count

    async def purge(self, before: datetime) -> int:
        """Delete sessions that ended before ``before``."""
        async with self._s.lock:
            ended = [
                s.session_id
                for s in self._s.sessions.values()
                if s.expires_at < before or (s.revoked_at is not None and s.revoked_at < before)
            ]
            for session_id in ended:
                del self._s.sessions[session_id]
            gone = set(ended)
            self._s.tokens = {h: t for h, t in self._s.tokens.items() if t.session_id not in gone}
            return len(ended)


class MemoryThrottleStore:
    """``ThrottleStore`` in memory."""

    def __init__(self, state: _State) -> None:
        """Share ``state``."""
        self._s = state

    async def get(self, key: str) -> FailureRecord | None:
        """The record, or None."""
        return self._s.throttle.get(key)

    async def record_failure(self, key: str, policy: ThrottlePolicy, now: datetime) -> FailureRecord:
        """Apply one failure atomically."""
        async with self._s.lock:
            record = policy.after_failure(self._s.throttle.get(key), now)
            self._s.throttle[key] = record
            return record

    async def clear(self, key: str) -> None:
        """Forget the key."""
        async with self._s.lock:
            self._s.throttle.pop(key, None)


class MemoryVerificationRepository:
    """``VerificationRepository`` in memory."""

    def __init__(self, state: _State) -> None:
        """Share ``state``."""
        self._s = state

    async def add(self, challenge: VerificationChallenge) -> None:
        """Store a challenge."""
        async with self._s.lock:
            if challenge.user_id not in self._s.users:
                raise LookupError(f"no user {challenge.user_id}")
            self._s.challenges.append(challenge)
            self._s.sends.append((challenge.destination, challenge.created_at))

    async def latest(self, user_id: str, channel: ContactChannel) -> VerificationChallenge | None:
        """The newest challenge of the user and channel."""
        mine = [c for c in self._s.challenges if c.user_id == user_id and c.channel is channel]
        return max(mine, key=lambda c: (c.created_at, c.challenge_id), default=None)

    async def save_attempt(self, before: VerificationChallenge, after: VerificationChallenge) -> bool:
        """Compare-and-set on attempts and consumption."""
        async with self._s.lock:
            for i, current in enumerate(self._s.challenges):
                if current.challenge_id == before.challenge_id:
                    if current.attempts != before.attempts or current.consumed_at != before.consumed_at:
                        return False
                    self._s.challenges[i] = replace(current, attempts=after.attempts, consumed_at=after.consumed_at)
                    return True
            return False

    async def sends_since(self, destination: str, since: datetime) -> list[datetime]:
        """Send times to ``destination`` since ``since``."""
        return sorted(at for to, at in self._s.sends if to == destination and at >= since)


class MemoryResetTicketRepository:
    """``ResetTicketRepository`` in memory."""

    def __init__(self, state: _State) -> None:
        """Share ``state``."""
        self._s = state

    async def add(self, ticket: PasswordResetTicket) -> None:
        """Store a ticket."""
        async with self._s.lock:
            if ticket.user_id not in self._s.users:
                raise LookupError(f"no user {ticket.user_id}")
            self._s.tickets[ticket.token_hash] = ticket

    async def find(self, token_hash: bytes) -> PasswordResetTicket | None:
        """The ticket, or None."""
        return self._s.tickets.get(token_hash)

    async def latest_for_user(self, user_id: str) -> PasswordResetTicket | None:
        """The user's newest ticket."""
        mine = [t for t in self._s.tickets.values() if t.user_id == user_id]
        return max(mine, key=lambda t: t.created_at, default=None)

    async def consume(self, token_hash: bytes, at: datetime) -> bool:
        """Mark used if unused."""
        async with self._s.lock:
            ticket = self._s.tickets.get(token_hash)
            if ticket is None or ticket.used_at is not None:
                return False
            self._s.tickets[token_hash] = replace(ticket, used_at=at)
            return True


class MemorySigningKeyStore:
    """``SigningKeyStore`` in memory (keys live as long as the process)."""

    def __init__(self, state: _State) -> None:
        """Share ``state``."""
        self._s = state

    async def list_keys(self) -> list[SigningKey]:
        """Every key."""
        return list(self._s.keys.values())

    async def add(self, key: SigningKey) -> None:
        """Store a key."""
        async with self._s.lock:
            if key.kid in self._s.keys:
                raise ValueError(f"key {key.kid} exists")
            self._s.keys[key.kid] = key

    async def delete(self, kids: Sequence[str]) -> None:
        """Delete keys."""
        async with self._s.lock:
            for kid in kids:
                self._s.keys.pop(kid, None)


class MemoryStorage:
    """All in-memory repositories over one shared state."""

    def __init__(self) -> None:
        """Create empty storage."""
        state = _State()
        self.users = MemoryUserRepository(state)
        self.sessions = MemorySessionRepository(state)
        self.throttle = MemoryThrottleStore(state)
        self.verifications = MemoryVerificationRepository(state)
        self.resets = MemoryResetTicketRepository(state)
        self.keys = MemorySigningKeyStore(state)
