"""Development secrets of the distributed launcher, generated once and kept in a 0600 file under the run dir.

Every service gets its own AES-256-GCM key ring (``<SVC>_SECRET_KEYS``) and Ed25519 audit seed
(``<SVC>_AUDIT_SIGNING_KEY``); all share one peer HMAC key ring (``PEER_AUTH_KEYS``). The file is reused across
runs so data sealed by an earlier run (broker refresh tokens, the user service's signing keys) still opens.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Iterable

from services.platform.audit import AuditSigner
from services.platform.crypto import generate_key
from services.platform.peer_auth import generate_secret

__all__ = ["DevSecrets", "load_or_create"]

_FORMAT = 1
PEER_KEY_ID = "dev1"


@dataclasses.dataclass(frozen=True)
class DevSecrets:
    """The secrets handed to the service processes.

    Attributes:
        secret_keys: ``<version>:<base64 key>`` per service name.
        audit_signing_keys: base64 Ed25519 seed per service name.
        peer_auth_keys: ``kid:base64 secret`` (``PEER_AUTH_KEYS``).
        peer_auth_key_id: The key id that signs (``PEER_AUTH_KEY_ID``).
    """

    secret_keys: dict[str, str]
    audit_signing_keys: dict[str, str]
    peer_auth_keys: str
    peer_auth_key_id: str

    def __repr__(self) -> str:
        return f"DevSecrets(services={sorted(self.secret_keys)}, peer_auth_key_id={self.peer_auth_key_id!r})"


def _write_private(path: pathlib.Path, text: str) -> None:
    # Created 0600 from the start (never world-readable, not even for a moment), then renamed into place.
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def load_or_create(path: pathlib.Path, services: Iterable[str]) -> DevSecrets:
    """Read the secrets at ``path``, generating (and saving) whatever is missing for ``services``.

    Raises:
        ValueError: The file exists but is not a secrets file of this format.
    """
    data: dict = {}
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a secrets file of format {_FORMAT}; move it away to regenerate")
    changed = not data
    secret_keys: dict[str, str] = dict(data.get("secret_keys", {}))
    audit: dict[str, str] = dict(data.get("audit_signing_keys", {}))
    for name in services:
        if name not in secret_keys:
            secret_keys[name] = f"1:{generate_key()}"
            changed = True
        if name not in audit:
            audit[name] = AuditSigner.generate().seed_b64()
            changed = True
    peer_keys = data.get("peer_auth_keys") or f"{PEER_KEY_ID}:{generate_secret()}"
    peer_key_id = data.get("peer_auth_key_id") or PEER_KEY_ID
    changed = changed or "peer_auth_keys" not in data
    secrets = DevSecrets(secret_keys, audit, peer_keys, peer_key_id)
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": _FORMAT,
            "secret_keys": secret_keys,
            "audit_signing_keys": audit,
            "peer_auth_keys": peer_keys,
            "peer_auth_key_id": peer_key_id,
        }
        _write_private(path, json.dumps(payload, indent=2, sort_keys=True))
    return secrets
