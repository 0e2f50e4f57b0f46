"""Unit tests of the shared AES-256-GCM keyring and the signed, hash-chained audit log (in memory)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os

import pytest

from services.platform.audit import AuditLog, AuditSigner, AuditVerifier, MemoryAuditStore, canonical_payload
from services.platform.clock import FakeClock
from services.platform.crypto import SecretDecryptionError, SecretKeyring, generate_key

USER_A = b"user:5b0c2d8e-7d6a-4f57-9c55-2a4f5f0e0a11"
USER_B = b"user:8f6f2b1e-3b9c-4d0a-8a1e-6a7c9d2e4b22"


@pytest.fixture
def keyring() -> SecretKeyring:
    return SecretKeyring.from_setting(f"1:{generate_key()}")


def test_aes_gcm_round_trips(keyring: SecretKeyring) -> None:
    sealed = keyring.encrypt(b"tastytrade refresh token", associated_data=USER_A)
    assert keyring.decrypt(sealed, associated_data=USER_A) == b"tastytrade refresh token"


def test_aes_gcm_uses_a_fresh_nonce_each_time(keyring: SecretKeyring) -> None:
    assert keyring.encrypt(b"same", associated_data=USER_A) != keyring.encrypt(b"same", associated_data=USER_A)


@pytest.mark.parametrize("position", [0, 3, 8, 20, -1])
def test_aes_gcm_flipped_bit_is_refused(keyring: SecretKeyring, position: int) -> None:
    sealed = bytearray(keyring.encrypt(b"secret", associated_data=USER_A))
    sealed[position] ^= 0x01
    with pytest.raises(SecretDecryptionError):
        keyring.decrypt(bytes(sealed), associated_data=USER_A)


def test_aes_gcm_swapped_associated_data_is_refused(keyring: SecretKeyring) -> None:
    sealed = keyring.encrypt(b"secret", associated_data=USER_A)
    with pytest.raises(SecretDecryptionError):
        keyring.decrypt(sealed, associated_data=USER_B)


def test_aes_gcm_truncated_ciphertext_is_refused(keyring: SecretKeyring) -> None:
    sealed = keyring.encrypt(b"secret", associated_data=USER_A)
    for cut in (1, 16, len(sealed) - 1):
        with pytest.raises(SecretDecryptionError):
            keyring.decrypt(sealed[:cut], associated_data=USER_A)


def test_key_rotation_decrypts_old_and_encrypts_with_new() -> None:
    old_key, new_key = generate_key(), generate_key()
    old = SecretKeyring.from_setting(f"1:{old_key}")
    sealed = old.encrypt(b"secret", associated_data=USER_A)
    rotated = SecretKeyring.from_setting(f"1:{old_key},2:{new_key}")
    assert rotated.needs_reencryption(sealed)
    resealed = rotated.reencrypt(sealed, associated_data=USER_A)
    assert rotated.key_version(resealed) == 2
    assert SecretKeyring.from_setting(f"2:{new_key}").decrypt(resealed, associated_data=USER_A) == b"secret"


def test_ciphertext_of_removed_key_version_is_refused(keyring: SecretKeyring) -> None:
    sealed = keyring.encrypt(b"secret", associated_data=USER_A)
    with pytest.raises(SecretDecryptionError, match="no key version"):
        SecretKeyring.from_setting(f"7:{generate_key()}").decrypt(sealed, associated_data=USER_A)


@pytest.mark.parametrize(
    "setting",
    ["", "abc", "1:short", "0:" + base64.b64encode(os.urandom(32)).decode(), "1:{k},1:{k}"],
)
def test_malformed_key_setting_is_refused_without_quoting_it(setting: str) -> None:
    text = setting.format(k=generate_key())
    with pytest.raises(ValueError) as caught:
        SecretKeyring.from_setting(text)
    assert not any(part and len(part) > 8 and part in str(caught.value) for part in text.replace(",", ":").split(":"))


def test_keyring_repr_shows_no_key_material() -> None:
    key = generate_key()
    assert key not in repr(SecretKeyring.from_setting(f"3:{key}"))
    assert repr(SecretKeyring.from_setting(f"3:{key}")) == "SecretKeyring(versions=[3], current=3)"


# Audit log ----------------------------------------------------------------------------------------------


@pytest.fixture
async def audit() -> tuple[AuditLog, MemoryAuditStore, AuditSigner]:
    store = MemoryAuditStore()
    signer = AuditSigner.generate()
    log = AuditLog(store, signer, FakeClock().now)
    await log.start()
    for i in range(5):
        await log.record("login.succeeded", actor=f"user-{i}", subject=f"user-{i}", details={"client_address": "192.0.2.1"})
    return log, store, signer


async def test_intact_audit_log_verifies(audit: tuple[AuditLog, MemoryAuditStore, AuditSigner]) -> None:
    log, _, _ = audit
    report = await log.verify()
    assert report.ok and report.entries == 5 and report.head_seq == 5


async def test_edited_audit_entry_is_detected(audit: tuple[AuditLog, MemoryAuditStore, AuditSigner]) -> None:
    log, store, _ = audit
    fields = json.loads(store.rows[2].payload)
    fields["actor"] = "someone-else"
    store.rows[2] = dataclasses.replace(store.rows[2], payload=json.dumps(fields, sort_keys=True, separators=(",", ":")))
    report = await log.verify()
    assert not report.ok and report.broken_seq == 3 and "edited" in report.problem


async def test_edit_with_recomputed_hash_is_detected_by_signature(
    audit: tuple[AuditLog, MemoryAuditStore, AuditSigner],
) -> None:
    log, store, _ = audit
    forger = AuditSigner.generate()
    row = store.rows[1]
    payload = canonical_payload(2, FakeClock().now(), "login.succeeded", "mallory", "mallory", None)
    forged = forger.entry(2, row.prev_hash, payload)
    store.rows[1] = dataclasses.replace(forged, key_id=row.key_id)
    report = await log.verify()
    assert not report.ok and report.broken_seq == 2


async def test_deleted_audit_entry_is_detected(audit: tuple[AuditLog, MemoryAuditStore, AuditSigner]) -> None:
    log, store, _ = audit
    del store.rows[1]
    report = await log.verify()
    assert not report.ok and report.broken_seq == 2 and "missing" in report.problem


async def test_truncated_audit_log_is_detected(audit: tuple[AuditLog, MemoryAuditStore, AuditSigner]) -> None:
    log, store, _ = audit
    del store.rows[3:]
    report = await log.verify()
    assert not report.ok and report.broken_seq == 4 and "truncated" in report.problem


async def test_deleting_everything_is_detected(audit: tuple[AuditLog, MemoryAuditStore, AuditSigner]) -> None:
    log, store, _ = audit
    store.rows.clear()
    store.head_row = None
    report = await log.verify()
    assert not report.ok and "head is missing" in report.problem


async def test_rollback_to_an_old_signed_state_is_caught_by_a_witness(
    audit: tuple[AuditLog, MemoryAuditStore, AuditSigner],
) -> None:
    log, store, signer = audit
    del store.rows[3:]
    store.head_row = signer.head(3, store.rows[-1].entry_hash)
    assert (await log.verify()).ok
    report = await log.verify(expect_min_seq=5)
    assert not report.ok and "rolled back" in report.problem


async def test_audit_log_signed_by_unknown_key_fails(audit: tuple[AuditLog, MemoryAuditStore, AuditSigner]) -> None:
    log, _, _ = audit
    report = await log.verify(AuditVerifier([AuditSigner.generate().public_key_b64()]))
    assert not report.ok and report.broken_seq == 1


def test_audit_signer_round_trips_its_seed() -> None:
    signer = AuditSigner.generate()
    assert AuditSigner.from_seed(signer.seed_b64()).public_key_b64() == signer.public_key_b64()
    assert signer.seed_b64() not in repr(signer)
