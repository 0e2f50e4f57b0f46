"""Claims of JWT access tokens (RFC 9068 profile): what is signed and what a verifier accepts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.user.domain.errors import AuthenticationRequired
from services.user.domain.model import Identity, Role

__all__ = ["ACCESS_TOKEN_TYPE", "REQUIRED_CLAIMS", "AccessClaims"]

# The JOSE `typ` of access tokens (RFC 9068), so an ID token or another JWT signed by the same key cannot
# be passed off as one.
ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti", "roles", "sid")
# Longest lifetime a verifier accepts, whatever `exp` says: a token minted with a huge `exp` by a leaked
# key in the future still dies.
MAX_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The claims of one access token.

    Attributes:
        issuer: ``iss``.
        audience: ``aud``.
        subject: ``sub``, the user id.
        issued_at: ``iat`` (whole seconds).
        expires_at: ``exp`` (whole seconds).
        token_id: ``jti``.
        roles: ``roles``.
        session_id: ``sid``, the refresh-token family.
    """

    issuer: str
    audience: str
    subject: str
    issued_at: datetime
    expires_at: datetime
    token_id: str
    roles: frozenset[Role]
    session_id: str

    def to_payload(self) -> dict[str, object]:
        """The JWT payload: NumericDate times, roles as sorted role names."""
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "iat": int(self.issued_at.timestamp()),
            "exp": int(self.expires_at.timestamp()),
            "jti": self.token_id,
            "roles": sorted(r.value for r in self.roles),
            "sid": self.session_id,
        }

    def identity(self) -> Identity:
        """The verified caller these claims describe."""
        return Identity(self.subject, self.roles, self.session_id, self.token_id, self.expires_at)

    @classmethod
    def parse(cls, payload: Mapping[str, object], *, now: datetime, leeway: timedelta) -> AccessClaims:
        """Check a signature-verified payload's types and times and return its claims.

        Args:
            payload: The decoded JWT payload (its signature, ``iss`` and ``aud`` already checked).
            now: The current time.
            leeway: Clock skew allowed.

        Raises:
            AuthenticationRequired: a claim is missing or mistyped, the token is expired, issued in the
                future, or lives longer than any token this service issues.
        """
        for name in REQUIRED_CLAIMS:
            if name not in payload:
                raise AuthenticationRequired(f"access token lacks the {name!r} claim")
        exp, iat = payload["exp"], payload["iat"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat)):
            raise AuthenticationRequired("access token times must be integers")
        assert isinstance(exp, int) and isinstance(iat, int)
        try:
            expires_at = datetime.fromtimestamp(exp, UTC)
            issued_at = datetime.fromtimestamp(iat, UTC)
        except (OverflowError, OSError, ValueError):
            raise AuthenticationRequired("access token times are out of range") from None
        if now >= expires_at + leeway:
            raise AuthenticationRequired("access token expired")
        if issued_at > now + leeway:
            raise AuthenticationRequired("access token issued in the future")
        if expires_at - issued_at > MAX_LIFETIME:
            raise AuthenticationRequired("access token lifetime too long")
        strings = {name: payload[name] for name in ("iss", "aud", "sub", "jti", "sid")}
        if not all(isinstance(v, str) and v for v in strings.values()):
            raise AuthenticationRequired("access token claims are malformed")
        raw_roles = payload["roles"]
        if not isinstance(raw_roles, list) or not raw_roles:
            raise AuthenticationRequired("access token roles are malformed")
        try:
            roles = frozenset(Role(r) for r in raw_roles)
        except ValueError:
            raise AuthenticationRequired("access token names an unknown role") from None
        return cls(
            issuer=str(strings["iss"]),
            audience=str(strings["aud"]),
            subject=str(strings["sub"]),
            issued_at=issued_at,
            expires_at=expires_at,
            token_id=str(strings["jti"]),
            roles=roles,
            session_id=str(strings["sid"]),
        )
