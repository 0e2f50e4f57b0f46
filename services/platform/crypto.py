"""AES-256-GCM for secrets at rest: versioned keys, a fresh nonce per encryption, caller-bound associated data.

An encrypted value is an *envelope*::

    byte 0      format (1)
    bytes 1-4   key version, big-endian
    bytes 5-16  96-bit random nonce
    bytes 17-   ciphertext and 128-bit GCM tag

The format byte and key version are authenticated too (they are part of the associated data), so a value
cannot be moved to another key version, and the caller's associated data (a user id for a broker refresh
token, a key id for a signing key) binds the value to its owner: a ciphertext copied to another user's row
does not decrypt. Random 96-bit nonces are safe for far more encryptions per key than a secret store makes
(NIST SP 800-38D's 2**32 bound); rotate by adding a new version and re-encrypting with ``reencrypt``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from collections.abc import Mapping
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SecretDecryptionError", "SecretKeyring", "generate_key"]

_FORMAT = 1
_HEADER = struct.Struct(">BI")
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_BYTES = 32
_ENTRY = re.compile(r"^\s*([0-9]{1,9})\s*:\s*([A-Za-z0-9+/=_-]+)\s*$")


class SecretDecryptionError(Exception):
    """A ciphertext did not decrypt: tampered, truncated, bound to other associated data, or unknown key."""


def generate_key() -> str:
    """Return a new random 256-bit key, base64 (for a ``<version>:<key>`` setting)."""
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode()


def _decode_key(text: str, version: int) -> bytes:
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                               validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"key version {version} is not valid base64") from None
    if len(raw) != _KEY_BYTES:
        raise ValueError(f"key version {version} must be {_KEY_BYTES} bytes, got {len(raw)}")
    return raw


class SecretKeyring:
    """The AES-256-GCM keys of one secret store: every version decrypts, the current one encrypts."""

    __slots__ = ("_ciphers", "_current")

    def __init__(self, keys: Mapping[int, bytes], current: int | None = None) -> None:
        """Create the keyring.

        Args:
            keys: 32-byte keys by version (1..999999999).
            current: The version that encrypts; the highest when None.

        Raises:
            ValueError: no keys, a key of the wrong size, a bad version, or ``current`` not among them.
        """
        if not keys:
            raise ValueError("a keyring needs at least one key")
        for version, key in keys.items():
            if not 0 < version < 10**9:
                raise ValueError(f"key version must be within 1..999999999, got {version}")
            if len(key) != _KEY_BYTES:
                raise ValueError(f"key version {version} must be {_KEY_BYTES} bytes, got {len(key)}")
        self._current = max(keys) if current is None else current
        if self._current not in keys:
            raise ValueError(f"current key version {self._current} is not in the keyring")
        self._ciphers = {version: AESGCM(bytes(key)) for version, key in keys.items()}

    @classmethod
    def from_setting(cls, text: str) -> SecretKeyring:
        """Parse ``"<version>:<base64 key>[,<version>:<base64 key>...]"``; the highest version encrypts.

        Raises:
            ValueError: malformed text (the message never quotes key material).
        """
        keys: dict[int, bytes] = {}
        for part in (p for p in text.split(",") if p.strip()):
            match = _ENTRY.match(part)
            if match is None:
                raise ValueError("each key must be written <version>:<base64 32-byte key>")
            version = int(match.group(1))
            if version in keys:
                raise ValueError(f"key version {version} appears twice")
            keys[version] = _decode_key(match.group(2), version)
        return cls(keys)

    @property
    def current_version(self) -> int:
        """The version new values are encrypted with."""
        return self._current

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version that can decrypt."""
        return tuple(sorted(self._ciphers))

    def __repr__(self) -> str:
        return f"SecretKeyring(versions={list(self.versions)}, current={self._current})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretKeyring is not picklable")

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        """Encrypt ``plaintext`` with the current key and a fresh random nonce.

        Args:
            plaintext: The secret.
            associated_data: What the value belongs to (e.g. the user id); needed again to decrypt.

        Returns:
            The envelope.
        """
        header = _HEADER.pack(_FORMAT, self._current)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, plaintext, header + associated_data)
        return header + nonce + sealed

    def key_version(self, envelope: bytes) -> int:
        """The key version an envelope was encrypted with.

        Raises:
            SecretDecryptionError: not an envelope of this format.
        """
        if len(envelope) < _HEADER.size + _NONCE_BYTES + _TAG_BYTES:
            raise SecretDecryptionError("ciphertext is too short")
        fmt, version = _HEADER.unpack_from(envelope)
        if fmt != _FORMAT:
            raise SecretDecryptionError(f"unknown ciphertext format {fmt}")
        return int(version)

    def decrypt(self, envelope: bytes, *, associated_data: bytes) -> bytes:
        """Decrypt and authenticate an envelope.

        Raises:
            SecretDecryptionError: tampered (any flipped bit), truncated, other associated data, or a key
                version this keyring does not hold.
        """
        version = self.key_version(envelope)
        cipher = self._ciphers.get(version)
        if cipher is None:
            raise SecretDecryptionError(f"no key version {version} in the keyring")
        header = envelope[: _HEADER.size]
        nonce = envelope[_HEADER.size : _HEADER.size + _NONCE_BYTES]
        try:
            return cipher.decrypt(nonce, envelope[_HEADER.size + _NONCE_BYTES :], header + associated_data)
        except InvalidTag:
            raise SecretDecryptionError("ciphertext failed authentication") from None

    def needs_reencryption(self, envelope: bytes) -> bool:
        """Whether an envelope was encrypted with an older key version."""
        return self.key_version(envelope) != self._current

    def reencrypt(self, envelope: bytes, *, associated_data: bytes) -> bytes:
        """Decrypt with whatever version it has and encrypt again with the current one."""
        return self.encrypt(self.decrypt(envelope, associated_data=associated_data), associated_data=associated_data)
