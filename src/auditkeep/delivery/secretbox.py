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
            if not self.path.exists():
                self._create()
            raw = self.path.read_bytes()
            if len(raw) != 32:
                raise ConfigError(
                    f"{self.path} is not a delivery key (expected 32 bytes, found {len(raw)}); "
                    "restore it from a backup: without it, destination secrets cannot be read"
                )
            self._aead = AESGCM(raw)
        return self._aead

    def ensure(self) -> None:
        """Make the key now if there is none (the server does this at start, so the keys/
        directory an operator copies to other API nodes already holds it)."""
        self._key()

    def _create(self) -> None:
        """Write a new key to a temporary file, then link it into place: another process sees
        no key or a whole one, never a half-written file; if two race, one key wins."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{KEY_FILE}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, AESGCM.generate_key(bit_length=256))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()

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
