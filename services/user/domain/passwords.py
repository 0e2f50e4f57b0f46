"""Password policy (NIST SP 800-63B style: length and a breached list, no composition rules)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from services.user.domain.errors import FieldRequired, PasswordTooWeak

__all__ = ["PasswordPolicy", "normalize_password"]

# The most common passwords of 12+ characters from public breach corpora (lower-cased); the list is short
# on purpose: it stops the guesses an online attacker tries first, the throttle stops the rest.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789123",
        "111111111111",
        "000000000000",
        "123123123123",
        "123412341234",
        "password1234",
        "password12345",
        "password123456",
        "password!234",
        "passwordpassword",
        "qwertyuiopas",
        "qwertyuiop123",
        "qwerty123456",
        "qwertyqwerty",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "asdfghjkl123",
        "zxcvbnm12345",
        "abcdefghijkl",
        "abc123abc123",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "welcome123456",
        "changeme1234",
        "administrator",
        "administrator1",
        "trustno1trustno1",
        "football1234",
        "baseball1234",
        "sunshine1234",
        "princess1234",
        "monkey123456",
        "dragon123456",
        "superman1234",
        "starwars1234",
        "correcthorsebatterystaple",
        "correct horse battery staple",
        "tastytrade123",
        "tastytrade1234",
    }
)


def normalize_password(password: str) -> str:
    """Return ``password`` in Unicode NFKC form, so the same password typed on two keyboards hashes alike."""
    return unicodedata.normalize("NFKC", password)


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """What a new password must satisfy.

    Attributes:
        min_length: Fewest characters (code points after NFKC).
        max_length: Most characters; bounds the work one login can cost.
    """

    min_length: int = 12
    max_length: int = 256

    def check(self, password: str, *, email: str, field: str = "password") -> None:
        """Raise if ``password`` may not be set for the account with login ``email``.

        Args:
            password: The NFKC-normalized new password.
            email: The account's canonical login address.
            field: The request field, for the error.

        Raises:
            FieldRequired: ``password`` is empty.
            PasswordTooWeak: too short, too long, a single repeated character, on the common list, or
                containing the e-mail address or its local part.
        """
        if not password:
            raise FieldRequired(field)
        if len(password) < self.min_length:
            raise PasswordTooWeak(field, f"must have at least {self.min_length} characters")
        if len(password) > self.max_length:
            raise PasswordTooWeak(field, f"must have at most {self.max_length} characters")
        lowered = password.lower()
        if len(set(lowered)) <= 2:
            raise PasswordTooWeak(field, "must not repeat one or two characters")
        if lowered in COMMON_PASSWORDS:
            raise PasswordTooWeak(field, "is on the list of breached passwords")
        local_part = email.split("@", 1)[0]
        if email in lowered or (len(local_part) >= 4 and local_part in lowered):
            raise PasswordTooWeak(field, "must not contain the e-mail address")
