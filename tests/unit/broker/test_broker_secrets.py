"""Refresh tokens sealed with AES-256-GCM: fresh nonce, bound to the user, key versions."""

from __future__ import annotations

import base64
import os

import pytest

from services.broker.adapters.secrets import KeyringSecretBox
from services.broker.app import associated_data
from services.broker.domain.errors import CredentialUnreadable
from services.platform.crypto import SecretKeyring


def _box(*versions: int) -> KeyringSecretBox:
    return KeyringSecretBox(SecretKeyring({v: bytes([v]) * 32 for v in versions}))


def test_sealed_token_opens_for_its_user() -> None:
    box = _box(1)
    sealed = box.seal(b"refresh-alice", associated_data("alice"))
    assert box.open(sealed, associated_data("alice")) == b"refresh-alice"
    assert b"refresh-alice" not in sealed.envelope


def test_each_seal_uses_a_fresh_nonce() -> None:
    box = _box(1)
    assert box.seal(b"x", b"a").envelope != box.seal(b"x", b"a").envelope


def test_sealed_token_does_not_open_for_another_user() -> None:
    box = _box(1)
    sealed = box.seal(b"refresh-alice", associated_data("alice"))
    with pytest.raises(CredentialUnreadable):
        box.open(sealed, associated_data("mallory"))


def test_tampered_ciphertext_is_unreadable() -> None:
    box = _box(1)
    sealed = box.seal(b"refresh-alice", associated_data("alice"))
    flipped = bytearray(sealed.envelope)
    flipped[-1] ^= 1
    with pytest.raises(CredentialUnreadable):
        box.open(type(sealed)(sealed.key_version, bytes(flipped)), associated_data("alice"))


def test_old_key_versions_still_open_after_rotation() -> None:
    old = _box(1).seal(b"token", b"u")
    rotated = _box(1, 2)
    assert old.key_version == 1
    assert rotated.open(old, b"u") == b"token"
    assert rotated.seal(b"token", b"u").key_version == 2


def test_keyring_setting_parses() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    box = KeyringSecretBox(SecretKeyring.from_setting(f"3:{key}"))
    assert box.seal(b"t", b"u").key_version == 3
