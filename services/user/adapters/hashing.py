"""argon2id password hashing (argon2-cffi), off the event loop, with bounded concurrency."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["OWASP_MINIMUM", "Argon2Hasher", "Argon2Parameters"]


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    """argon2id cost parameters.

    Attributes:
        memory_kib: Memory per hash in KiB.
        time_cost: Passes over the memory.
        parallelism: Lanes.
    """

    memory_kib: int
    time_cost: int
    parallelism: int


# OWASP Password Storage Cheat Sheet: argon2id with m=19 MiB, t=2, p=1 at least.
OWASP_MINIMUM = Argon2Parameters(memory_kib=19 * 1024, time_cost=2, parallelism=1)


class Argon2Hasher:
    """``PasswordHasher`` with argon2id; refuses parameters below the OWASP minimum."""

    def __init__(self, parameters: Argon2Parameters = OWASP_MINIMUM, *, max_concurrent: int = 4) -> None:
        """Create the hasher.

        Args:
            parameters: Cost parameters (at least ``OWASP_MINIMUM`` in each).
            max_concurrent: Hashes computed at once; each takes ``memory_kib`` of RAM, so a login storm must
                queue rather than exhaust memory.

        Raises:
            ValueError: a parameter is below the OWASP minimum.
        """
        for name in ("memory_kib", "time_cost", "parallelism"):
            if getattr(parameters, name) < getattr(OWASP_MINIMUM, name):
                raise ValueError(f"argon2 {name} below the OWASP minimum ({getattr(OWASP_MINIMUM, name)})")
        self.parameters = parameters
        self._hasher = argon2.PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
            type=argon2.Type.ID,
        )
        self._slots = asyncio.Semaphore(max_concurrent)

    async def hash(self, password: str) -> str:
        """Hash in a worker thread (argon2-cffi releases the GIL)."""
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Verify in a worker thread; a malformed hash is a mismatch."""
        async with self._slots:
            try:
                return await asyncio.to_thread(self._hasher.verify, password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash used other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
