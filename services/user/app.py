"""Use cases of the user service: sign-up, login, sessions, access-token verification, users, preferences."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NoReturn

from services.user.domain.access import (
    UserCursor,
    UserPageRequest,
    canonical_user_id,
    check_role_change,
    require_admin,
    target_user_id,
)
from services.user.domain.errors import (
    AuthenticationRequired,
    ContactAlreadyVerified,
    ContactMissing,
    EmailTaken,
    FieldInvalid,
    FieldRequired,
    InvalidCredentials,
    LoginThrottled,
    RefreshTokenInvalid,
    RefreshTokenReused,
    ResetThrottled,
    ResetTokenInvalid,
    UserError,
    UserNotFound,
    VerificationCodeInvalid,
    VerificationThrottled,
)
from services.user.domain.keys import KeyRing, KeyRotationPolicy, SigningKey
from services.user.domain.model import Identity, Role, User, normalize_email
from services.user.domain.passwords import PasswordPolicy, normalize_password
from services.user.domain.preferences import NotificationPreferences, PreferencesPatch
from services.user.domain.sessions import RefreshVerdict, RevokeReason, Session, SessionPolicy, hash_token, judge
from services.user.domain.throttle import ThrottlePolicy, account_key, address_key
from services.user.domain.tokens import AccessClaims
from services.user.domain.verification import (
    AttemptOutcome,
    ContactChannel,
    PasswordResetTicket,
    VerificationPolicy,
)
from services.user.ports import (
    AccessTokenCodec,
    AuditTrail,
    Clock,
    CodePurpose,
    CodeSender,
    KeyFactory,
    OutboundCode,
    PasswordHasher,
    ResetTicketRepository,
    SecretSource,
    SessionRepository,
    SigningKeyStore,
    ThrottleStore,
    UserEvents,
    UserRepository,
    VerificationRepository,
)

__all__ = ["SigningKeys", "TokenGrant", "UserApp", "UserPolicy", "UserView"]

log = logging.getLogger("tastyplat.user")

MAX_REQUEST_ID_LENGTH = 128
# Longest password a login even tries to verify; longer ones cannot exist (the policy caps new ones).
MAX_LOGIN_PASSWORD_LENGTH = 1024
MAX_OPAQUE_TOKEN_LENGTH = 512


@dataclass(frozen=True, slots=True)
class UserPolicy:
    """Everything tunable about the service's security behaviour.

    Attributes:
        issuer: ``iss`` of access tokens.
        audience: ``aud`` of access tokens.
        sessions: Token and session lifetimes.
        keys: Signing-key rotation schedule.
        passwords: Password policy.
        login_per_account: Throttle of failed logins per login e-mail.
        login_per_address: Throttle of failed logins per client address.
        reset_per_address: Throttle of password reset requests per client address.
        reset_ttl: Lifetime of a password reset token.
        reset_cooldown: Least time between two reset e-mails to one account.
        verification: Limits on verification codes.
        leeway: Clock skew allowed when checking access tokens.
        key_reload_interval: How often keys are re-read from the store (other replicas may rotate).
    """

    issuer: str = "https://user.tastyplat"
    audience: str = "tastyplat"
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    keys: KeyRotationPolicy = field(default_factory=KeyRotationPolicy)
    passwords: PasswordPolicy = field(default_factory=PasswordPolicy)
    login_per_account: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(5, timedelta(minutes=15), timedelta(minutes=1), timedelta(minutes=15))
    )
    login_per_address: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(20, timedelta(minutes=15), timedelta(minutes=5), timedelta(hours=1))
    )
    reset_per_address: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(10, timedelta(hours=1), timedelta(minutes=15), timedelta(hours=1))
    )
    reset_ttl: timedelta = timedelta(minutes=30)
    reset_cooldown: timedelta = timedelta(seconds=60)
    verification: VerificationPolicy = field(default_factory=VerificationPolicy)
    leeway: timedelta = timedelta(seconds=30)
    key_reload_interval: timedelta = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a login or refresh returns.

    Attributes:
        user_id: Whose tokens.
        access_token: The signed JWT.
        access_expires_at: Its ``exp``.
        refresh_token: The opaque refresh token (shown once, stored hashed).
        refresh_expires_at: When the refresh token stops working if unused.
    """

    user_id: str
    access_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_token: str = field(repr=False)
    refresh_expires_at: datetime


@dataclass(frozen=True, slots=True)
class UserView:
    """A user with their preferences (None where a listing does not load them)."""

    user: User
    preferences: NotificationPreferences | None


class SigningKeys:
    """The service's view of the signing-key ring: cached, re-read periodically, rotated on schedule."""

    def __init__(self, store: SigningKeyStore, factory: KeyFactory, secrets: SecretSource, clock: Clock,
                 policy: KeyRotationPolicy, reload_interval: timedelta) -> None:
        """Wire the key manager (call ``load`` before use)."""
        self._store = store
        self._factory = factory
        self._secrets = secrets
        self._clock = clock
        self._policy = policy
        self._reload_interval = reload_interval
        self._ring = KeyRing(())
        self._loaded_at: datetime | None = None

    @property
    def policy(self) -> KeyRotationPolicy:
        """The rotation schedule."""
        return self._policy

    async def load(self) -> KeyRing:
        """Re-read every key from the store."""
        self._ring = KeyRing.of(await self._store.list_keys())
        self._loaded_at = self._clock.now()
        return self._ring

    async def _fresh_ring(self) -> KeyRing:
        now = self._clock.now()
        if self._loaded_at is None or now - self._loaded_at >= self._reload_interval or now < self._loaded_at:
            await self.load()
        return self._ring

    async def ensure_current(self) -> None:
        """Create the first key (active at once) or rotate when the schedule says so; drop expired keys."""
        ring = await self.load()
        now = self._clock.now()
        if ring.signing_key(now) is None and not ring.keys:
            await self.rotate(immediate=True)
        elif ring.needs_rotation(now, self._policy):
            await self.rotate()
        expired = self._ring.expired(now, self._policy)
        if expired:
            await self._store.delete([k.kid for k in expired])
            await self.load()

    async def rotate(self, *, immediate: bool = False) -> SigningKey:
        """Add a new key; it signs after ``prepublish`` (at once when ``immediate``, e.g. the very first key).

        Returns:
            The new key.
        """
        now = self._clock.now()
        activates_at = now if immediate else now + self._policy.prepublish
        key = self._factory.generate(self._secrets.new_id(), now, activates_at)
        await self._store.add(key)
        await self.load()
        return key

    async def signing_key(self) -> SigningKey:
        """The key to sign with now.

        Raises:
            RuntimeError: the store has no active key (``ensure_current`` was not run).
        """
        now = self._clock.now()
        key = (await self._fresh_ring()).signing_key(now)
        if key is None:
            key = (await self.load()).signing_key(now)
        if key is None:
            raise RuntimeError("no active signing key; run ensure_current() at start-up")
        return key

    async def verification_key(self, kid: str) -> SigningKey | None:
        """The published key named ``kid``, re-reading the store once when it is unknown."""
        now = self._clock.now()
        key = (await self._fresh_ring()).verification_key(kid, now, self._policy)
        if key is None and self._loaded_at is not None and now - self._loaded_at >= timedelta(seconds=1):
            # Another replica may have rotated; look again, at most once a second so a flood of tokens with
            # made-up kids cannot turn into a flood of database reads.
            key = (await self.load()).verification_key(kid, now, self._policy)
        return key

    async def published(self) -> tuple[SigningKey, ...]:
        """The keys verifiers must trust now (the JWKS)."""
        return (await self._fresh_ring()).published(self._clock.now(), self._policy)


class UserApp:
    """The user service's use cases; every method takes plain values and raises ``UserError`` leaves."""

    def __init__(
        self,
        *,
        users: UserRepository,
        sessions: SessionRepository,
        throttle: ThrottleStore,
        verifications: VerificationRepository,
        resets: ResetTicketRepository,
        keys: SigningKeys,
        codec: AccessTokenCodec,
        hasher: PasswordHasher,
        secrets: SecretSource,
        clock: Clock,
        codes: CodeSender,
        events: UserEvents,
        audit: AuditTrail,
        policy: UserPolicy,
    ) -> None:
        """Wire the use cases to their ports (the composition root does this)."""
        self._users = users
        self._sessions = sessions
        self._throttle = throttle
        self._verifications = verifications
        self._resets = resets
        self._keys = keys
        self._codec = codec
        self._hasher = hasher
        self._secrets = secrets
        self._clock = clock
        self._codes = codes
        self._events = events
        self._audit = audit
        self.policy = policy
        self._dummy_hash: str | None = None

    @property
    def keys(self) -> SigningKeys:
        """The signing-key ring manager."""
        return self._keys

    async def start(self) -> None:
        """Load (or create) the signing keys and prepare the decoy hash for unknown accounts."""
        await self._keys.ensure_current()
        self._dummy_hash = await self._hasher.hash(self._secrets.token())

    async def maintain(self) -> None:
        """Periodic upkeep: rotate keys on schedule, drop expired keys, purge long-ended sessions."""
        await self._keys.ensure_current()
        await self._sessions.purge(self._clock.now() - timedelta(days=1))

    # Sign-up and login -------------------------------------------------------------------------------

    async def create_user(self, *, email: str, password: str, request_id: str = "") -> UserView:
        """Sign up a trader.

        Raises:
            FieldRequired, EmailInvalid, PasswordTooWeak, FieldInvalid: bad input.
            EmailTaken: the address is in use (and this is not a retry of the same sign-up).
        """
        canonical = normalize_email(email)
        if not password:
            raise FieldRequired("password")
        password = normalize_password(password)
        request_id = request_id.strip()
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            raise FieldInvalid("request_id", f"must have at most {MAX_REQUEST_ID_LENGTH} characters")
        if request_id:
            retried = await self._retried_sign_up(request_id, canonical, password)
            if retried is not None:
                return retried
        self.policy.passwords.check(password, email=canonical)
        if await self._users.get_by_email(canonical) is not None:
            raise EmailTaken()
        now = self._clock.now()
        user = User(
            user_id=self._secrets.new_id(),
            email=canonical,
            password_hash=await self._hasher.hash(password),
            roles=frozenset({Role.TRADER}),
            email_verified=False,
            created_at=now,
            updated_at=now,
            create_request_id=request_id or None,
        )
        preferences = NotificationPreferences.default_for(canonical)
        try:
            await self._users.add(user, preferences)
        except EmailTaken:
            if request_id:
                retried = await self._retried_sign_up(request_id, canonical, password)
                if retried is not None:
                    return retried
            raise
        await self._audit.record("user.created", actor=user.user_id, subject=user.user_id,
                                 details={"roles": "trader"})
        return UserView(user, preferences)

    async def _retried_sign_up(self, request_id: str, email: str, password: str) -> UserView | None:
        existing = await self._users.get_by_request_id(request_id)
        if existing is None:
            return None
        # The retry must be the same sign-up (same address and password), else the key proves nothing.
        if existing.email != email or not await self._hasher.verify(existing.password_hash, password):
            raise FieldInvalid("request_id", "was already used for another sign-up")
        return UserView(existing, await self._users.get_preferences(existing.user_id))

    async def login(self, *, email: str, password: str, client_address: str) -> TokenGrant:
        """Exchange credentials for tokens, throttling failures per account and per client address.

        Raises:
            FieldRequired: ``email`` or ``password`` is empty.
            LoginThrottled: too many recent failures for the account or the address.
            InvalidCredentials: unknown e-mail or wrong password (indistinguishable, also in timing).
        """
        if not email.strip():
            raise FieldRequired("email")
        if not password:
            raise FieldRequired("password")
        canonical = email.strip().lower()[:320]
        keys = (account_key(canonical), address_key(client_address))
        policies = (self.policy.login_per_account, self.policy.login_per_address)
        now = self._clock.now()
        waits = [p.retry_after(await self._throttle.get(k), now) for k, p in zip(keys, policies, strict=True)]
        blocked = [w for w in waits if w is not None]
        if blocked:
            await self._audit.record("login.throttled", actor=None, subject=None,
                                     details={"email": canonical, "client_address": client_address})
            raise LoginThrottled(max(blocked))
        password = normalize_password(password)
        user = await self._users.get_by_email(canonical)
        ok = False
        if len(password) <= MAX_LOGIN_PASSWORD_LENGTH:
            if user is None:
                # Same work as for a real account, so the answer time does not reveal whether it exists.
                await self._hasher.verify(self._dummy_hash or "", password)
            else:
                ok = await self._hasher.verify(user.password_hash, password)
        if user is None or not ok:
            now = self._clock.now()
            for key, policy in zip(keys, policies, strict=True):
                await self._throttle.record_failure(key, policy, now)
            await self._audit.record(
                "login.failed",
                actor=None,
                subject=user.user_id if user else None,
                details={
                    "email": canonical,
                    "client_address": client_address,
                    "cause": "wrong_password" if user else "unknown_account",
                },
            )
            raise InvalidCredentials()
        await self._throttle.clear(keys[0])
        if self._hasher.needs_rehash(user.password_hash):
            user = user.with_password_hash(await self._hasher.hash(password), self._clock.now())
            await self._users.update(user)
        now = self._clock.now()
        session = self.policy.sessions.open_session(self._secrets.new_id(), user.user_id, now)
        refresh = self._secrets.token()
        first = self.policy.sessions.issue(session, hash_token(refresh), now)
        await self._sessions.open(session, first)
        grant = await self._grant(user, session.session_id, refresh, first.expires_at, now)
        await self._audit.record("login.succeeded", actor=user.user_id, subject=user.user_id,
                                 details={"client_address": client_address, "session_id": session.session_id})
        return grant

    async def _grant(self, user: User, session_id: str, refresh: str, refresh_expires_at: datetime,
                     now: datetime) -> TokenGrant:
        issued_at = now.replace(microsecond=0)
        claims = AccessClaims(
            issuer=self.policy.issuer,
            audience=self.policy.audience,
            subject=user.user_id,
            issued_at=issued_at,
            expires_at=issued_at + self.policy.sessions.access_token_ttl,
            token_id=self._secrets.new_id(),
            roles=user.roles,
            session_id=session_id,
        )
        key = await self._keys.signing_key()
        token = self._codec.encode(claims.to_payload(), key)
        return TokenGrant(user.user_id, token, claims.expires_at, refresh, refresh_expires_at)

    async def refresh(self, *, refresh_token: str) -> TokenGrant:
        """Rotate a refresh token: mark it used and return a successor with a new access token.

        Raises:
            FieldRequired: ``refresh_token`` is empty.
            RefreshTokenInvalid: unknown, expired or revoked.
            RefreshTokenReused: already used; the whole session is now revoked.
        """
        if not refresh_token:
            raise FieldRequired("refresh_token")
        if len(refresh_token) > MAX_OPAQUE_TOKEN_LENGTH:
            raise RefreshTokenInvalid()
        found = await self._sessions.find(hash_token(refresh_token))
        if found is None:
            raise RefreshTokenInvalid()
        token, session = found
        now = self._clock.now()
        verdict = judge(token, session, now)
        if verdict is RefreshVerdict.REUSED:
            await self._reuse_detected(session, now)
        if verdict is not RefreshVerdict.ROTATE:
            raise RefreshTokenInvalid()
        user = await self._users.get(session.user_id)
        if user is None:
            raise RefreshTokenInvalid()
        successor_token = self._secrets.token()
        successor = self.policy.sessions.issue(session, hash_token(successor_token), now)
        if not await self._sessions.rotate(token, successor, now):
            # Someone used this very token a moment ago: the same situation as a late reuse.
            await self._reuse_detected(session, now)
        return await self._grant(user, session.session_id, successor_token, successor.expires_at, now)

    async def _reuse_detected(self, session: Session, now: datetime) -> NoReturn:
        await self._sessions.revoke(session.session_id, now, RevokeReason.REUSE_DETECTED)
        await self._audit.record("refresh_token.reused", actor=None, subject=session.user_id,
                                 details={"session_id": session.session_id})
        raise RefreshTokenReused()

    async def logout(self, *, refresh_token: str, all_sessions: bool, identity: Identity | None) -> None:
        """Revoke a session (by one of its refresh tokens) or all of the caller's sessions.

        Raises:
            FieldRequired: no refresh token and not ``all_sessions``.
            AuthenticationRequired: ``all_sessions`` without a verified identity.
            RefreshTokenInvalid: the refresh token is unknown or its session expired.
        """
        now = self._clock.now()
        if all_sessions:
            if identity is None:
                raise AuthenticationRequired()
            count = await self._sessions.revoke_all(identity.user_id, now, RevokeReason.LOGOUT_ALL)
            await self._audit.record("logout.all", actor=identity.user_id, subject=identity.user_id,
                                     details={"sessions": count})
            return
        if not refresh_token:
            raise FieldRequired("refresh_token", "is required unless all_sessions is set")
        found = await self._sessions.find(hash_token(refresh_token[:MAX_OPAQUE_TOKEN_LENGTH]))
        if found is None or len(refresh_token) > MAX_OPAQUE_TOKEN_LENGTH:
            raise RefreshTokenInvalid()
        token, session = found
        if session.revoked_at is not None:
            return
        if now >= session.expires_at or (token.used_at is None and now >= token.expires_at):
            raise RefreshTokenInvalid()
        await self._sessions.revoke(session.session_id, now, RevokeReason.LOGOUT)
        await self._audit.record("logout", actor=session.user_id, subject=session.user_id,
                                 details={"session_id": session.session_id})

    # Identity ----------------------------------------------------------------------------------------

    async def authenticate(self, access_token: str) -> Identity:
        """Verify an access token against this service's own keys and its session.

        Beyond what any verifier checks (signature with the kid's own algorithm, ``typ``, ``iss``, ``aud``,
        times), the user service also requires the token's session to be live, so a logout or a detected
        refresh-token reuse takes effect here at once rather than when the token expires.

        Raises:
            AuthenticationRequired: missing, malformed, forged, expired or revoked.
        """
        if not access_token:
            raise AuthenticationRequired()
        kid = self._codec.key_id(access_token)
        key = await self._keys.verification_key(kid)
        if key is None:
            raise AuthenticationRequired("access token signed by an unknown key")
        payload = self._codec.decode(access_token, key, issuer=self.policy.issuer, audience=self.policy.audience)
        now = self._clock.now()
        claims = AccessClaims.parse(payload, now=now, leeway=self.policy.leeway)
        if canonical_user_id(claims.subject) != claims.subject:
            raise AuthenticationRequired("access token subject is malformed")
        session = await self._sessions.get_session(claims.session_id)
        if session is None or session.user_id != claims.subject or not session.is_active(now):
            raise AuthenticationRequired("the session of this access token has ended")
        return claims.identity()

    async def _actor(self, identity: Identity) -> Identity:
        # Roles are re-read from the database: a demotion takes effect here at once, not at token expiry.
        user = await self._users.get(identity.user_id)
        if user is None:
            raise AuthenticationRequired("the user of this access token no longer exists")
        return replace(identity, roles=user.roles)

    # Users -------------------------------------------------------------------------------------------

    async def get_user(self, identity: Identity, user_id: str) -> UserView:
        """Return a user with their preferences (the caller, or anyone for an admin).

        Raises:
            UserNotFound: no such user, or another user's id from a non-admin.
        """
        actor = await self._actor(identity)
        target = target_user_id(actor, user_id)
        user = await self._users.get(target)
        preferences = await self._users.get_preferences(target)
        if user is None or preferences is None:
            raise UserNotFound(target)
        return UserView(user, preferences)

    async def list_users(
        self, identity: Identity, *, page_size: int, page_token: str, email_prefix: str
    ) -> tuple[list[UserView], str]:
        """Return one page of users (admin only) and the next page token ("" at the end).

        Raises:
            RoleRequired: the caller is not an admin.
            FieldInvalid, PageTokenInvalid: bad paging input.
        """
        actor = await self._actor(identity)
        require_admin(actor)
        page = UserPageRequest.parse(page_size, page_token, email_prefix)
        rows = await self._users.list_page(page)
        more = len(rows) > page.page_size
        rows = rows[: page.page_size]
        token = page.next_token(UserCursor(rows[-1].created_at, rows[-1].user_id)) if more and rows else ""
        return [UserView(u, None) for u in rows], token

    async def delete_user(self, identity: Identity, user_id: str) -> None:
        """Delete a user and everything of theirs (self, or anyone for an admin).

        Raises:
            UserNotFound: no such user, or another user's id from a non-admin.
        """
        actor = await self._actor(identity)
        target = target_user_id(actor, user_id)
        now = self._clock.now()
        await self._sessions.revoke_all(target, now, RevokeReason.USER_DELETED)
        if not await self._users.delete(target):
            raise UserNotFound(target)
        await self._audit.record("user.deleted", actor=actor.user_id, subject=target, details=None)
        await self._events.user_deleted(target, now)

    async def update_roles(self, identity: Identity, user_id: str, roles: Sequence[Role]) -> UserView:
        """Replace a user's roles (admin only).

        Raises:
            RoleRequired: the caller is not an admin.
            FieldRequired: ``roles`` is empty.
            LastAdmin: the admin would drop their own admin role.
            UserNotFound: no such user.
        """
        actor = await self._actor(identity)
        require_admin(actor)
        target = target_user_id(actor, user_id)
        new_roles = check_role_change(actor, target, roles)
        user = await self._users.get(target)
        if user is None:
            raise UserNotFound(target)
        before = user.roles
        if new_roles != before:
            user = user.with_roles(new_roles, self._clock.now())
            if not await self._users.update(user):
                raise UserNotFound(target)
            await self._audit.record(
                "role.changed",
                actor=actor.user_id,
                subject=target,
                details={"before": ",".join(sorted(r.value for r in before)),
                         "after": ",".join(sorted(r.value for r in new_roles))},
            )
        return UserView(user, await self._users.get_preferences(target))

    async def ensure_admin(self, *, email: str, password: str) -> User:
        """Create the bootstrap admin, or grant the admin role to the existing user with this address.

        Raises:
            EmailInvalid, PasswordTooWeak: bad bootstrap settings.
        """
        canonical = normalize_email(email)
        existing = await self._users.get_by_email(canonical)
        if existing is not None:
            if not existing.is_admin:
                existing = existing.with_roles(existing.roles | {Role.ADMIN}, self._clock.now())
                await self._users.update(existing)
                await self._audit.record("role.changed", actor=None, subject=existing.user_id,
                                         details={"after": ",".join(sorted(r.value for r in existing.roles)),
                                                  "cause": "bootstrap"})
            return existing
        view = await self.create_user(email=canonical, password=password)
        return (await self.update_roles_unchecked(view.user, frozenset({Role.ADMIN, Role.TRADER}))).user

    async def update_roles_unchecked(self, user: User, roles: frozenset[Role]) -> UserView:
        """Set roles without an acting admin (bootstrap and administration commands only)."""
        updated = user.with_roles(roles, self._clock.now())
        if not await self._users.update(updated):
            raise UserNotFound(user.user_id)
        await self._audit.record("role.changed", actor=None, subject=user.user_id,
                                 details={"after": ",".join(sorted(r.value for r in roles)), "cause": "bootstrap"})
        return UserView(updated, await self._users.get_preferences(user.user_id))

    # Notification preferences and contacts -----------------------------------------------------------

    async def update_preferences(self, identity: Identity, user_id: str, patch: PreferencesPatch
                                 ) -> NotificationPreferences:
        """Change some preferences; a new phone number or e-mail address gets a verification code at once.

        Raises:
            UserNotFound: no such user, or another user's id from a non-admin.
            UpdateMaskInvalid, PhoneNumberInvalid, EmailInvalid, TimeZoneInvalid, FieldInvalid: bad input.
        """
        actor = await self._actor(identity)
        target = target_user_id(actor, user_id)
        user = await self._users.get(target)
        current = await self._users.get_preferences(target)
        if user is None or current is None:
            raise UserNotFound(target)
        now = self._clock.now()
        updated, changed = current.apply(
            patch, now, verified_login_email=user.email if user.email_verified else None
        )
        if not await self._users.save_preferences(target, updated):
            raise UserNotFound(target)
        await self._audit.record(
            "preferences.updated",
            actor=actor.user_id,
            subject=target,
            details={
                "paths": ",".join(sorted(patch.paths)),
                "contacts_changed": ",".join(sorted(c.value for c in changed)),
            },
        )
        for channel in sorted(changed, key=lambda c: c.value):
            contact = updated.contact(channel)
            if contact is None:
                continue
            try:
                await self._send_code(target, channel, contact.address)
            except VerificationThrottled as exc:
                # The change itself stands; the user can ask for the code again once the limit allows.
                log.info("verification code not sent: %s", exc.message, extra={"user_id": target})
        return updated

    async def send_verification_code(self, identity: Identity, user_id: str, channel: ContactChannel) -> datetime:
        """(Re)send a verification code to the user's phone number or alert e-mail address.

        Returns:
            When the code expires.

        Raises:
            UserNotFound: no such user, or another user's id from a non-admin.
            ContactMissing: nothing set for the channel.
            ContactAlreadyVerified: it is verified already.
            VerificationThrottled: sent too recently, or the destination's daily budget is spent.
        """
        actor = await self._actor(identity)
        target = target_user_id(actor, user_id)
        preferences = await self._users.get_preferences(target)
        if preferences is None:
            raise UserNotFound(target)
        contact = preferences.contact(channel)
        if contact is None:
            raise ContactMissing(channel.value)
        if contact.verified:
            raise ContactAlreadyVerified(channel.value)
        return await self._send_code(target, channel, contact.address)

    async def _send_code(self, user_id: str, channel: ContactChannel, destination: str) -> datetime:
        now = self._clock.now()
        policy = self.policy.verification
        last = await self._verifications.latest(user_id, channel)
        sends = await self._verifications.sends_since(destination, now - timedelta(days=1))
        policy.check_send(last, sends, now)
        challenge_id = self._secrets.new_id()
        code = self._secrets.numeric_code(policy.code_digits)
        challenge = policy.new_challenge(challenge_id, user_id, channel, destination, code, now)
        await self._verifications.add(challenge)
        await self._codes.send(OutboundCode(channel, destination, CodePurpose.CONTACT_VERIFICATION, code,
                                            challenge.expires_at, user_id))
        await self._audit.record("verification.sent", actor=user_id, subject=user_id,
                                 details={"channel": channel.value})
        return challenge.expires_at

    async def verify_contact(self, identity: Identity, user_id: str, channel: ContactChannel, code: str
                             ) -> NotificationPreferences:
        """Confirm a contact with the code sent to it (already verified: nothing to do).

        Raises:
            FieldRequired: ``code`` is empty.
            UserNotFound: no such user, or another user's id from a non-admin.
            VerificationCodeInvalid: wrong, expired, superseded or never sent.
            VerificationThrottled: too many wrong codes for this challenge.
        """
        actor = await self._actor(identity)
        target = target_user_id(actor, user_id)
        if not code.strip():
            raise FieldRequired("code")
        user = await self._users.get(target)
        preferences = await self._users.get_preferences(target)
        if user is None or preferences is None:
            raise UserNotFound(target)
        contact = preferences.contact(channel)
        if contact is not None and contact.verified:
            return preferences
        challenge = await self._verifications.latest(target, channel)
        if contact is None or challenge is None:
            raise VerificationCodeInvalid()
        now = self._clock.now()
        policy = self.policy.verification
        after, outcome = policy.attempt(challenge, contact.address, code[:32], now)
        if after != challenge and not await self._verifications.save_attempt(challenge, after):
            raise VerificationCodeInvalid()
        if outcome is AttemptOutcome.EXHAUSTED:
            wait = max(0.0, (challenge.created_at + policy.resend_cooldown - now).total_seconds())
            raise VerificationThrottled("too many wrong codes; ask for a new code", wait)
        if outcome is not AttemptOutcome.VERIFIED:
            raise VerificationCodeInvalid()
        updated = preferences.with_contact_verified(channel, contact.address, now)
        await self._users.save_preferences(target, updated)
        if channel is ContactChannel.EMAIL and contact.address == user.email and not user.email_verified:
            await self._users.update(user.with_email_verified(now))
        await self._audit.record("contact.verified", actor=actor.user_id, subject=target,
                                 details={"channel": channel.value})
        return updated

    # Password reset ----------------------------------------------------------------------------------

    async def request_password_reset(self, *, email: str, client_address: str) -> None:
        """E-mail a one-time reset token if an account has this address; silent either way.

        Raises:
            FieldRequired: ``email`` is empty.
            ResetThrottled: too many requests from this client address.
        """
        if not email.strip():
            raise FieldRequired("email")
        now = self._clock.now()
        key = "reset-" + address_key(client_address)
        policy = self.policy.reset_per_address
        wait = policy.retry_after(await self._throttle.get(key), now)
        if wait is not None:
            raise ResetThrottled(wait)
        await self._throttle.record_failure(key, policy, now)
        try:
            canonical = normalize_email(email)
        except UserError:
            return
        user = await self._users.get_by_email(canonical)
        if user is None:
            await self._audit.record("password_reset.unknown_account", actor=None, subject=None,
                                     details={"email": canonical, "client_address": client_address})
            return
        latest = await self._resets.latest_for_user(user.user_id)
        if latest is not None and now < latest.created_at + self.policy.reset_cooldown:
            return
        token = self._secrets.token()
        ticket = PasswordResetTicket(hash_token(token), user.user_id, now, now + self.policy.reset_ttl)
        await self._resets.add(ticket)
        await self._codes.send(OutboundCode(ContactChannel.EMAIL, user.email, CodePurpose.PASSWORD_RESET, token,
                                            ticket.expires_at, user.user_id))
        await self._audit.record("password_reset.requested", actor=None, subject=user.user_id,
                                 details={"client_address": client_address})

    async def reset_password(self, *, reset_token: str, new_password: str) -> None:
        """Set a new password with a reset token; revoke every session of the user.

        Raises:
            FieldRequired: a field is empty.
            PasswordTooWeak: the new password breaks the policy (the token stays usable).
            ResetTokenInvalid: unknown, used or expired token.
        """
        if not reset_token:
            raise FieldRequired("reset_token")
        if not new_password:
            raise FieldRequired("new_password")
        if len(reset_token) > MAX_OPAQUE_TOKEN_LENGTH:
            raise ResetTokenInvalid()
        token_hash = hash_token(reset_token)
        ticket = await self._resets.find(token_hash)
        now = self._clock.now()
        if ticket is None or not ticket.is_usable(now):
            raise ResetTokenInvalid()
        user = await self._users.get(ticket.user_id)
        if user is None:
            raise ResetTokenInvalid()
        password = normalize_password(new_password)
        self.policy.passwords.check(password, email=user.email, field="new_password")
        if not await self._resets.consume(token_hash, now):
            raise ResetTokenInvalid()
        # Reading the reset e-mail proves the owner reads mail at the login address.
        user = user.with_password_hash(await self._hasher.hash(password), now).with_email_verified(now)
        await self._users.update(user)
        preferences = await self._users.get_preferences(user.user_id)
        if preferences is not None and preferences.email is not None and preferences.email.address == user.email:
            await self._users.save_preferences(
                user.user_id, preferences.with_contact_verified(ContactChannel.EMAIL, user.email, now)
            )
        revoked = await self._sessions.revoke_all(user.user_id, now, RevokeReason.PASSWORD_RESET)
        await self._throttle.clear(account_key(user.email))
        await self._audit.record("password.reset", actor=user.user_id, subject=user.user_id,
                                 details={"sessions_revoked": revoked})

    # Keys --------------------------------------------------------------------------------------------

    async def jwks(self) -> list[Mapping[str, str]]:
        """The public keys verifiers must trust now, as JWKs."""
        return [dict(k.public_jwk) for k in await self._keys.published()]

    async def rotate_signing_key(self) -> SigningKey:
        """Add a new signing key now (it signs after the prepublish delay); old tokens stay valid."""
        key = await self._keys.rotate()
        await self._audit.record("signing_key.rotated", actor=None, subject=None, details={"kid": key.kid})
        return key
