"""The checkpoint signing keys of a data directory.

:class:`KeyRing`: the private keys are files ``<data_dir>/keys/<key id>.key`` (mode 0600)
holding the C2SP signer key string; the public halves and their history are rows of
``signing_keys``. One key signs (``active``); after a rotation the previous key keeps
co-signing (``retiring``) until it is retired, so that verifiers pinned to it see the new key
vouched for by the old one.

Formats: docs/verification.md.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from auditkeep.errors import ConfigError
from auditkeep.integrity.checkpoint import (
    KeyFormatError,
    Signer,
    Verifier,
    parse_signer,
    parse_verifier,
)
from auditkeep.model import now_micros
from auditkeep.store.base import SigningKeyRecord

if TYPE_CHECKING:
    from auditkeep.store import AnyStore

log = logging.getLogger("auditkeep.tlog")  # the name operators' log filters already know

KEYS_DIR = "keys"


def check_key_name(name: str) -> str:
    """``log_origin`` doubles as the signing key name: no whitespace, '+' or control chars."""
    try:
        Signer(name, bytes(32))
    except KeyFormatError:
        raise ConfigError(
            f"log_origin {name!r} is not usable as a checkpoint key name: use a non-empty "
            "name without spaces or '+', such as audit.example.com"
        ) from None
    return name


def key_id_hex(key_id: int) -> str:
    return f"{key_id:08x}"


class KeyRing:
    """The checkpoint signing keys of a data directory (see the module docstring)."""

    def __init__(self, store: AnyStore, data_dir: Path, key_name: str) -> None:
        self._store = store
        self.dir = Path(data_dir) / KEYS_DIR
        self.configured_name = key_name
        self._loaded: dict[str, Signer] = {}
        self._lock = threading.Lock()

    @property
    def key_name(self) -> str:
        """The log's identity: the name of the newest key, or the configured ``log_origin``
        before the first key exists. It never changes once a key was made (rotation keeps it):
        changing it would make every witness see a different log."""
        records = self.records()
        signing = [r for r in records if r.state != "retired"] or records
        return signing[0].name if signing else self.configured_name

    def records(self) -> list[SigningKeyRecord]:
        """Every key, signing ones first: active, retiring, then retired (newest first)."""
        return self._store.signing_keys()

    def _write_key_file(self, signer: Signer) -> Path:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        path = self.dir / f"{key_id_hex(signer.key_id)}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (signer.skey + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def _new_key(self, *, rotate: bool) -> SigningKeyRecord | None:
        while True:
            signer = Signer(self.key_name, os.urandom(32))
            key_id = key_id_hex(signer.key_id)
            if not (self.dir / f"{key_id}.key").exists() and not any(
                r.key_id == key_id for r in self.records()
            ):
                break
        path = self._write_key_file(signer)
        record = SigningKeyRecord(
            key_id=key_id,
            name=signer.name,
            vkey=signer.verifier.vkey,
            state="active",
            created_at=now_micros(),
            retired_at=None,
        )
        try:
            added = self._store.add_signing_key(record, rotate=rotate)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if not added:  # another process made the first key meanwhile
            path.unlink(missing_ok=True)
            return None
        with self._lock:
            self._loaded[key_id] = signer
        log.info("created checkpoint signing key %s (%s)", key_id, record.vkey)
        return record

    def ensure_key(self) -> SigningKeyRecord | None:
        """Create the first signing key if there is none; return it if one was made."""
        if any(r.state == "active" for r in self.records()):
            return None
        return self._new_key(rotate=False)

    def rotate(self) -> SigningKeyRecord:
        """Make a new active key; the previous active key becomes ``retiring`` (co-signs)."""
        record = self._new_key(rotate=True)
        assert record is not None
        return record

    def retire(self) -> list[SigningKeyRecord]:
        """Retire every ``retiring`` key: it stops signing and its private key file is deleted."""
        retired = self._store.retire_signing_keys(now_micros())
        for record in retired:
            (self.dir / f"{record.key_id}.key").unlink(missing_ok=True)
            with self._lock:
                self._loaded.pop(record.key_id, None)
            log.info("retired checkpoint signing key %s", record.key_id)
        return retired

    def _load(self, record: SigningKeyRecord) -> Signer:
        with self._lock:
            cached = self._loaded.get(record.key_id)
        if cached is not None:
            return cached
        path = self.dir / f"{record.key_id}.key"
        try:
            mode = path.stat().st_mode
            text = path.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read checkpoint signing key {record.key_id} from {path}: {exc}. Restore "
                "the file from a backup, or make a new key with `auditkeep log rotate-key`"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("signing key file %s is accessible by other users; chmod 600 it", path)
        try:
            signer = parse_signer(text)
        except KeyFormatError as exc:
            raise ConfigError(f"{path} does not hold a valid signer key: {exc}") from None
        if signer.verifier.vkey != record.vkey:
            raise ConfigError(
                f"{path} holds key {signer.verifier.vkey}, but the store lists {record.vkey}"
            )
        with self._lock:
            self._loaded[record.key_id] = signer
        return signer

    def signers(self) -> list[Signer]:
        """The keys that sign checkpoints now (active first), creating the first if needed."""
        records = [r for r in self.records() if r.state in ("active", "retiring")]
        if not any(r.state == "active" for r in records):
            self.ensure_key()
            records = [r for r in self.records() if r.state in ("active", "retiring")]
        return [self._load(r) for r in records]

    def verifiers(self, *, include_retired: bool = True) -> list[Verifier]:
        """Public keys from the store (by default also retired ones, for old checkpoints)."""
        return [
            parse_verifier(r.vkey)
            for r in self.records()
            if include_retired or r.state != "retired"
        ]
