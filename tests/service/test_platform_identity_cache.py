"""JwtAuthenticator remembers verified tokens, but never past their expiry, their key, or its time-to-live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from services.platform.clock import FakeClock
from services.platform.identity import AuthenticationRequired, JwtAuthenticator
from tests.fakes.access_tokens import TokenIssuer

START = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


class CountingKeys:
    """A key source whose key set can change, counting fetches."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0

    async def fetch(self) -> list[dict[str, Any]]:
        self.fetches += 1
        return list(self.keys)


class CountingDecode:
    """Counts signature verifications (calls of jwt.decode)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = jwt.decode

        def decode(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(jwt, "decode", decode)


def _authenticator(issuer: TokenIssuer, clock: FakeClock, keys: CountingKeys, **kwargs: Any) -> JwtAuthenticator:
    return JwtAuthenticator(keys, issuer=issuer.issuer, audience=issuer.audience, clock=clock,
                            leeway=timedelta(seconds=0), refresh_interval=timedelta(seconds=0), **kwargs)


async def test_a_repeated_token_is_verified_once_within_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer, clock = TokenIssuer(), FakeClock(START)
    decode = CountingDecode(monkeypatch)
    auth = _authenticator(issuer, clock, CountingKeys(issuer.jwks))
    token = issuer.token("alice", now=START)
    first = await auth.authenticate(f"Bearer {token}")
    second = await auth.authenticate(f"bearer   {token}")
    assert first == second and first.user_id == "alice"
    assert decode.calls == 1
    clock.advance(61)
    await auth.authenticate(f"Bearer {token}")
    assert decode.calls == 2


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    issuer, clock = TokenIssuer(), FakeClock(START)
    auth = _authenticator(issuer, clock, CountingKeys(issuer.jwks), verified_ttl=timedelta(hours=1))
    token = issuer.token("alice", now=START, lifetime=timedelta(seconds=30))
    await auth.authenticate(f"Bearer {token}")
    clock.advance(31)
    with pytest.raises(AuthenticationRequired, match="expired"):
        await auth.authenticate(f"Bearer {token}")


async def test_a_token_whose_key_left_the_key_set_is_verified_again_and_refused() -> None:
    old, new, clock = TokenIssuer(), TokenIssuer(), FakeClock(START)
    keys = CountingKeys(old.jwks)
    auth = _authenticator(old, clock, keys, verified_ttl=timedelta(hours=1))
    old_token = old.token("alice", now=START)
    await auth.authenticate(f"Bearer {old_token}")
    keys.keys = new.jwks  # rotation withdrew the old key; a token of the new key makes the verifier refetch
    new_token = new.token("bob", now=START)
    assert (await auth.authenticate(f"Bearer {new_token}")).user_id == "bob"
    with pytest.raises(AuthenticationRequired, match="unknown key"):
        await auth.authenticate(f"Bearer {old_token}")


async def test_a_tampered_copy_of_a_remembered_token_is_still_refused() -> None:
    issuer, clock = TokenIssuer(), FakeClock(START)
    auth = _authenticator(issuer, clock, CountingKeys(issuer.jwks))
    token = issuer.token("alice", now=START)
    await auth.authenticate(f"Bearer {token}")
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(AuthenticationRequired):
        await auth.authenticate(f"Bearer {tampered}")


async def test_the_memory_is_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer, clock = TokenIssuer(), FakeClock(START)
    decode = CountingDecode(monkeypatch)
    auth = _authenticator(issuer, clock, CountingKeys(issuer.jwks), verified_capacity=2)
    tokens = [issuer.token(f"user-{i}", now=START) for i in range(3)]
    for token in tokens:
        await auth.authenticate(f"Bearer {token}")
    assert decode.calls == 3
    await auth.authenticate(f"Bearer {tokens[2]}")
    assert decode.calls == 3  # the newest is remembered
    await auth.authenticate(f"Bearer {tokens[0]}")
    assert decode.calls == 4  # the oldest was dropped
