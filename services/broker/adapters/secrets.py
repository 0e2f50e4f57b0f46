"""Credential sealing with the platform's AES-256-GCM keyring (versioned keys, fresh nonce, user-bound)."""

from __future__ import annotations

from services.broker.domain.errors import CredentialUnreadable
from services.broker.domain.model import SealedSecret
from services.platform.crypto import SecretDecryptionError, SecretKeyring


class KeyringSecretBox:
    """SecretBox over ``services.platform.crypto.SecretKeyring``.

    Args:
        keyring: The keys; the current version seals, every version opens.
    """

    def __init__(self, keyring: SecretKeyring) -> None:
        self._keyring = keyring

    def seal(self, plaintext: bytes, associated_data: bytes) -> SealedSecret:
        """Encrypt under the current key with a fresh nonce, bound to ``associated_data``."""
        envelope = self._keyring.encrypt(plaintext, associated_data=associated_data)
        return SealedSecret(self._keyring.key_version(envelope), envelope)

    def open(self, sealed: SealedSecret, associated_data: bytes) -> bytes:
        """Decrypt and authenticate.

        Raises:
            CredentialUnreadable: tampered, bound to other associated data, or an unknown key version.
        """
        try:
            return self._keyring.decrypt(sealed.envelope, associated_data=associated_data)
        except SecretDecryptionError as exc:
            raise CredentialUnreadable(
                "the stored broker credential cannot be decrypted; link the account again",
                metadata={"key_version": str(sealed.key_version)},
            ) from exc
