"""Verification codes for contact points and one-time password reset tickets.

Theory of operation: a phone number or alert e-mail address receives nothing but a verification code until
its owner types that code back, so the platform cannot be made to message strangers. A challenge holds the
SHA-256 of a 6-digit code, expires after ``code_ttl`` and allows ``max_attempts`` guesses; sending is limited
per user and channel (``resend_cooldown``) and per destination (``max_sends_per_day``, whoever asks), which
bounds what an attacker can make the platform send to a victim's number (SMS pumping). Only the newest
challenge of a user and channel counts; a new destination makes older challenges irrelevant because the
destination is part of the challenge.

Transitions of a challenge (``attempt``)::

    state                                event        next / outcome
    -----------------------------------  -----------  -----------------------------------------
    open (unconsumed, unexpired, tries)  right code   consumed -> VERIFIED
    open                                 wrong code   attempts+1 -> WRONG (or EXHAUSTED at the max)
    consumed / expired / different dest  any code     unchanged -> INVALID
    attempts == max_attempts             any code     unchanged -> EXHAUSTED
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.user.domain.errors import VerificationThrottled

__all__ = [
    "AttemptOutcome",
    "ContactChannel",
    "PasswordResetTicket",
    "VerificationChallenge",
    "VerificationPolicy",
    "code_digest",
]


class ContactChannel(enum.Enum):
    """A contact point that must be verified before it receives alerts."""

    SMS = "sms"
    EMAIL = "email"


def code_digest(challenge_id: str, code: str) -> bytes:
    """Return the stored form of a code, bound to its challenge so equal codes hash differently."""
    return hashlib.sha256(f"{challenge_id}:{code}".encode()).digest()


class AttemptOutcome(enum.Enum):
    """Result of typing a code."""

    VERIFIED = "verified"
    WRONG = "wrong"
    EXHAUSTED = "exhausted"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class VerificationChallenge:
    """A code sent to one destination of one user.

    Attributes:
        challenge_id: UUID.
        user_id: The user who asked.
        channel: SMS or e-mail.
        destination: The phone number or address the code went to.
        code_hash: ``code_digest(challenge_id, code)``.
        created_at: When the code was sent.
        expires_at: When it stops working.
        attempts: Wrong guesses so far.
        consumed_at: When it was used successfully, or None.
    """

    challenge_id: str
    user_id: str
    channel: ContactChannel
    destination: str
    code_hash: bytes
    created_at: datetime
    expires_at: datetime
    attempts: int = 0
    consumed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """Limits on verification codes.

    Attributes:
        code_ttl: Lifetime of a code.
        max_attempts: Wrong guesses allowed per code.
        resend_cooldown: Least time between two codes for the same user and channel.
        max_sends_per_day: Most codes one destination receives in 24 hours, from any user.
        code_digits: Length of a code.
    """

    code_ttl: timedelta = timedelta(minutes=10)
    max_attempts: int = 5
    resend_cooldown: timedelta = timedelta(seconds=60)
    max_sends_per_day: int = 5
    code_digits: int = 6

    def check_send(
        self, last: VerificationChallenge | None, sends_to_destination: list[datetime], now: datetime
    ) -> None:
        """Raise if another code may not be sent now.

        Args:
            last: The newest challenge of this user and channel, if any.
            sends_to_destination: Send times to this destination in the last 24 hours.
            now: The current time.

        Raises:
            VerificationThrottled: within the cooldown, or the destination's daily budget is spent.
        """
        if last is not None and now < last.created_at + self.resend_cooldown:
            wait = (last.created_at + self.resend_cooldown - now).total_seconds()
            raise VerificationThrottled("a code was sent moments ago; wait before asking again", wait)
        recent = sorted(t for t in sends_to_destination if t > now - timedelta(days=1))
        if len(recent) >= self.max_sends_per_day:
            wait = (recent[-self.max_sends_per_day] + timedelta(days=1) - now).total_seconds()
            raise VerificationThrottled("too many codes sent to this contact today", wait)

    def new_challenge(
        self, challenge_id: str, user_id: str, channel: ContactChannel, destination: str, code: str, now: datetime
    ) -> VerificationChallenge:
        """Return the challenge for a freshly generated ``code``."""
        return VerificationChallenge(
            challenge_id=challenge_id,
            user_id=user_id,
            channel=channel,
            destination=destination,
            code_hash=code_digest(challenge_id, code),
            created_at=now,
            expires_at=now + self.code_ttl,
        )

    def attempt(
        self, challenge: VerificationChallenge, destination: str, code: str, now: datetime
    ) -> tuple[VerificationChallenge, AttemptOutcome]:
        """Apply one typed code to a challenge (see the module's table)."""
        if challenge.consumed_at is not None or now >= challenge.expires_at or challenge.destination != destination:
            return challenge, AttemptOutcome.INVALID
        if challenge.attempts >= self.max_attempts:
            return challenge, AttemptOutcome.EXHAUSTED
        if hmac.compare_digest(challenge.code_hash, code_digest(challenge.challenge_id, code.strip())):
            return replace(challenge, consumed_at=now), AttemptOutcome.VERIFIED
        attempts = challenge.attempts + 1
        outcome = AttemptOutcome.EXHAUSTED if attempts >= self.max_attempts else AttemptOutcome.WRONG
        return replace(challenge, attempts=attempts), outcome


@dataclass(frozen=True, slots=True)
class PasswordResetTicket:
    """A one-time password reset token, known by its SHA-256.

    Attributes:
        token_hash: SHA-256 of the opaque token e-mailed to the user.
        user_id: Whose password it resets.
        created_at: When it was issued.
        expires_at: When it stops working.
        used_at: When it was used, or None.
    """

    token_hash: bytes
    user_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    def is_usable(self, now: datetime) -> bool:
        """Whether the ticket can reset the password at ``now``."""
        return self.used_at is None and now < self.expires_at
