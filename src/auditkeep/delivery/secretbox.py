"""Destination secrets, sealed at rest.

Webhook signing secrets, Splunk HEC tokens and S3 secret keys must be used by the server to
sign or authenticate, so they cannot be hashed; they are encrypted with AES-256-GCM under a
key kept in the data directory (``keys/delivery.key``, mode 0600, made on first use) — never in
the database, so a copy of the database alone reveals no secret. The associated data binds each
sealed value to its tenant and destination, so a sealed secret moved to another row does not
open. The sealed form is ``b"v1" || nonce (12 bytes) || ciphertext+tag``; the plaintext is JSON
``{"current": str | null, "previous": [str, ...]}``.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditkeep import keyfile
from auditkeep.delivery.base import Secrets
from auditkeep.errors import ConfigError

_VERSION = b"v1"
KEY_FILE = "delivery.key"


class SecretBox:
    """Seals and opens destination secrets with the data directory's delivery key."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = Path(keys_dir) / KEY_FILE
        self._aead: AESGCM | None = None

    def _key(self) -> AESGCM:
        if self._aead is None:
            raw = keyfile.read_or_create(
                self.path,
                32,
                "delivery key (without it, destination secrets cannot be read)",
            )
            self._aead = AESGCM(raw)
        return self._aead

    def ensure(self) -> None:
        """Make the key now if there is none (the server does this at start, so the keys/
        directory an operator copies to other API nodes already holds it)."""
        self._key()

    @staticmethod
    def _aad(tenant_id: int, dest_id: str) -> bytes:
        return f"auditkeep destination {tenant_id}/{dest_id}".encode()

    def seal(self, tenant_id: int, dest_id: str, secrets: Secrets) -> bytes | None:
        if secrets.current is None and not secrets.previous:
            return None
        plain = orjson.dumps({"current": secrets.current, "previous": list(secrets.previous)})
        nonce = os.urandom(12)
        sealed = self._key().encrypt(nonce, plain, self._aad(tenant_id, dest_id))
        return _VERSION + nonce + sealed

    def open(self, tenant_id: int, dest_id: str, sealed: bytes | None) -> Secrets:
        if sealed is None:
            return Secrets()
        if not sealed.startswith(_VERSION) or len(sealed) < 2 + 12 + 16:
            raise ConfigError(f"destination {dest_id}: the stored secret is not in a known form")
        nonce, body = sealed[2:14], sealed[14:]
        try:
            plain = self._key().decrypt(nonce, body, self._aad(tenant_id, dest_id))
        except InvalidTag:
            raise ConfigError(
                f"destination {dest_id}: its secret does not open with {self.path} (the key "
                "file was replaced, or the row was moved); set the secret again"
            ) from None
        data = orjson.loads(plain)
        return Secrets(data["current"], tuple(data["previous"]))
