"""Secret key files in the data directory's ``keys/``, made atomically on first use.

The delivery key (``delivery.key``) and the viewer-token key (``viewer.key``) are random bytes
kept in files of mode 0600, never in the database. Every process of a data directory, and
every API node sharing a copy of ``keys/``, must use the same bytes, so a key is written to a
temporary file and then linked into place: another process sees no key or a whole one, never
a half-written file; if two race, one key wins and both use it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from auditkeep.errors import ConfigError


def read_or_create(path: Path, size: int, what: str) -> bytes:
    """The ``size`` random bytes in ``path``, made now if the file does not exist. ``what``
    names the key and what is lost without it, for the error when the file is damaged."""
    if not path.exists():
        _create(path, size)
    raw = path.read_bytes()
    if len(raw) != size:
        raise ConfigError(
            f"{path} is not a {what} (expected {size} bytes, found {len(raw)}); "
            "restore it from a backup"
        )
    return raw


def _create(path: Path, size: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process made it first: use theirs
    finally:
        tmp.unlink()
