"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies carried in C2SP ``signed-note`` envelopes.

A checkpoint states "the log called <origin> had <size> leaves with Merkle root <hash>"; the
log signs it with Ed25519 in the signed-note format used by Go's checksum database and by
transparency-log witnesses, so their tooling can read our checkpoints and vice versa.

Keys use the string encodings of ``golang.org/x/mod/sumdb/note``:

* verifier key: ``<name>+<8 hex digit key ID>+<base64(0x01 || 32-byte public key)>``
* signer key:   ``PRIVATE+KEY+<name>+<8 hex digit key ID>+<base64(0x01 || 32-byte seed)>``

where key ID = first 4 bytes, big-endian, of ``SHA-256(name || "\\n" || 0x01 || public key)``.
Specifications: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auditkeep.integrity.merkle import HASH_SIZE

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "InvalidSignatureError",
    "KeyFormatError",
    "MalformedNoteError",
    "NoKnownSignatureError",
    "NoteError",
    "Signer",
    "Verifier",
    "compute_key_id",
    "generate_signer",
    "open_note",
    "parse_signer",
    "parse_verifier",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
]

ALG_ED25519 = 0x01
"""Signature type byte of Ed25519 note signatures."""

MAX_SIGNATURES = 100
"""Notes with more signature lines than this are rejected as malformed (spec minimum: 16)."""

_SIG_PREFIX = "\u2014 "  # EM DASH, SPACE
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline
_SIZE_RE = re.compile("0|[1-9][0-9]*")
_KEY_ID_RE = re.compile("[0-9a-fA-F]{8}")
_MAX_TREE_SIZE = 2**64 - 1


class KeyFormatError(ValueError):
    """A signer or verifier key string (or a key name) is not valid."""


class NoteError(ValueError):
    """Base class for the ways a signed note can fail to open."""


class MalformedNoteError(NoteError):
    """The note is not syntactically a signed note, or note text cannot be signed as given."""


class InvalidSignatureError(NoteError):
    """A signature line names a known key (name and key ID) but the signature does not verify."""


class NoKnownSignatureError(NoteError):
    """The note is well formed but none of its signatures is by a known key.

    Signatures by unknown keys are ignored, as the signed-note spec requires; this error
    means *only* unknown keys signed. ``unknown_keys`` lists them as ``name+keyid`` strings.
    """

    def __init__(self, message: str, unknown_keys: list[str]) -> None:
        """Record the message and the ``name+keyid`` of every unknown signer."""
        super().__init__(message)
        self.unknown_keys = unknown_keys


class CheckpointError(ValueError):
    """Checkpoint text is malformed, or the checkpoint is not from the expected log."""


def _is_valid_key_name(name: str) -> bool:
    """Key names are non-empty, without Unicode spaces, "+" or control characters."""
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() for c in name)
        and _CONTROL.search(name) is None
    )


def _check_key_name(name: str) -> None:
    if not _is_valid_key_name(name):
        raise KeyFormatError(
            f"key name {name!r} is invalid: it must be non-empty and contain no whitespace, "
            "'+' or control characters"
        )


def _b64decode(text: str) -> bytes:
    """Strict standard base64 (RFC 4648 section 4, padded); ValueError otherwise."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as e:
        raise ValueError(str(e)) from None


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def compute_key_id(name: str, public_key: bytes) -> int:
    """Ed25519 key ID: ``SHA-256(name || 0x0A || 0x01 || public_key)[:4]`` as a big-endian int."""
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 public key with its key name, able to check note signatures."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the name and the 32-byte key and derive the key ID."""
        _check_key_name(self.name)
        if len(self.public_key) != 32:
            raise KeyFormatError(f"Ed25519 public key must be 32 bytes, got {len(self.public_key)}")
        object.__setattr__(self, "public_key", bytes(self.public_key))
        object.__setattr__(self, "key_id", compute_key_id(self.name, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @property
    def vkey(self) -> str:
        """Verifier key string ``<name>+<key ID hex>+<base64(0x01 || public key)>``."""
        encoded = _b64encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid Ed25519 signature of ``message`` by this key."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key with its key name, used by the log to sign checkpoints."""

    name: str
    seed: bytes = field(repr=False)
    verifier: Verifier = field(init=False, repr=False, compare=False)
    _key: Ed25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the name and the 32-byte seed and derive the public half."""
        _check_key_name(self.name)
        if len(self.seed) != 32:
            raise KeyFormatError(f"Ed25519 private key seed must be 32 bytes, got {len(self.seed)}")
        object.__setattr__(self, "seed", bytes(self.seed))
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "verifier", Verifier(self.name, public))

    @property
    def key_id(self) -> int:
        """Key ID of the corresponding public key."""
        return self.verifier.key_id

    @property
    def skey(self) -> str:
        """Signer key string ``PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || seed)>``.

        This is the secret; store it like a password.
        """
        encoded = _b64encode(bytes([ALG_ED25519]) + self.seed)
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``message``."""
        return self._key.sign(message)


def generate_signer(name: str) -> tuple[str, str]:
    """Create a fresh Ed25519 key named ``name``; return ``(signer key, verifier key)`` strings."""
    signer = Signer(name, os.urandom(32))
    return signer.skey, signer.verifier.vkey


def _split_key(key: str, parts: int, what: str, form: str) -> list[str]:
    """Split at the first ``parts - 1`` "+" (base64 key material may itself contain "+")."""
    fields = key.split("+", parts - 1)
    if len(fields) != parts:
        raise KeyFormatError(f"{what} must have the form {form}")
    return fields


def _decode_key_material(key_id_hex: str, material: str, what: str) -> tuple[int, bytes]:
    """Check the key ID field and decode ``base64(0x01 || 32 bytes)``; return both."""
    if not _KEY_ID_RE.fullmatch(key_id_hex):
        raise KeyFormatError(f"{what} key ID {key_id_hex!r} is not 8 hex digits")
    try:
        raw = _b64decode(material)
    except ValueError:
        raise KeyFormatError(f"{what} key material is not valid base64") from None
    if not raw:
        raise KeyFormatError(f"{what} key material is empty")
    if raw[0] != ALG_ED25519:
        raise KeyFormatError(
            f"{what} uses signature type 0x{raw[0]:02x}; only 0x01 (Ed25519) is supported"
        )
    if len(raw) != 33:
        raise KeyFormatError(f"{what} Ed25519 key is {len(raw) - 1} bytes, expected 32")
    return int(key_id_hex, 16), raw[1:]


def parse_verifier(vkey: str) -> Verifier:
    """Parse a verifier key string ``<name>+<key ID hex>+<base64(0x01 || public key)>``."""
    name, key_id_hex, material = _split_key(vkey, 3, "verifier key", "<name>+<key ID>+<base64 key>")
    declared, public_key = _decode_key_material(key_id_hex, material, "verifier key")
    verifier = Verifier(name, public_key)
    if verifier.key_id != declared:
        raise KeyFormatError(
            f"verifier key declares key ID {declared:08x} but the name and public key give "
            f"{verifier.key_id:08x}"
        )
    return verifier


def parse_signer(skey: str) -> Signer:
    """Parse a signer key string ``PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || seed)>``."""
    form = "PRIVATE+KEY+<name>+<key ID>+<base64 key>"
    private, key, name, key_id_hex, material = _split_key(skey, 5, "signer key", form)
    if private != "PRIVATE" or key != "KEY":
        raise KeyFormatError(f"signer key must start with 'PRIVATE+KEY+' (form {form})")
    declared, seed = _decode_key_material(key_id_hex, material, "signer key")
    signer = Signer(name, seed)
    if signer.key_id != declared:
        raise KeyFormatError(
            f"signer key declares key ID {declared:08x} but its public key gives "
            f"{signer.key_id:08x}"
        )
    return signer


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must be non-empty and end with a newline")
    control = _CONTROL.search(text)
    if control is not None:
        raise MalformedNoteError(
            f"note text contains control character U+{ord(control.group()):04X} "
            f"at offset {control.start()}"
        )


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """Encode ``text`` as a signed note with one signature line per signer, in order.

    ``text`` must end with a newline and contain no ASCII control character except newline.
    """
    if not signers:
        raise ValueError("a signed note needs at least one signer")
    seen: set[tuple[str, int]] = set()
    for signer in signers:
        if (signer.name, signer.key_id) in seen:
            raise ValueError(f"signer {signer.name}+{signer.key_id:08x} is listed twice")
        seen.add((signer.name, signer.key_id))
    _check_note_text(text)
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise MalformedNoteError(f"note text is not encodable as UTF-8: {e.reason}") from None
    lines = []
    for signer in signers:
        blob = signer.key_id.to_bytes(4, "big") + signer.sign(body)
        lines.append(f"{_SIG_PREFIX}{signer.name} {_b64encode(blob)}\n")
    return body + b"\n" + "".join(lines).encode("utf-8")


def _verifier_index(verifiers: Sequence[Verifier]) -> dict[tuple[str, int], Verifier]:
    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, v.key_id), v)
        if other != v:
            raise ValueError(
                f"verifiers {other.vkey} and {v.vkey} share key name and key ID; "
                "their signatures cannot be told apart"
            )
    return known


def open_note(note: bytes, verifiers: Sequence[Verifier]) -> tuple[str, list[str]]:
    """Parse a signed note and check its signatures against the trusted ``verifiers``.

    Returns the note text (including its final newline) and the key names of the verifiers
    whose signature verified, in signature-line order, each key once. Signatures from keys
    not in ``verifiers`` (matching on both name and key ID) are ignored, which is what allows
    key rotation and witness cosignatures. Raises:

    * :class:`MalformedNoteError` if the bytes are not a well-formed signed note;
    * :class:`InvalidSignatureError` if a signature by a known key does not verify;
    * :class:`NoKnownSignatureError` if no signature is by a known key.
    """
    known = _verifier_index(verifiers)
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedNoteError(
            f"note is not valid UTF-8 (bad byte at offset {e.start})"
        ) from None
    control = _CONTROL.search(decoded)
    if control is not None:
        raise MalformedNoteError(
            f"note contains control character U+{ord(control.group()):04X} "
            f"at character offset {control.start()}"
        )
    split = decoded.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line separating the text from the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block:
        raise MalformedNoteError("note has no signature lines after the blank line")
    if not block.endswith("\n"):
        raise MalformedNoteError("note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(
            f"note has {len(lines)} signature lines, more than the limit of {MAX_SIGNATURES}"
        )
    message = text.encode("utf-8")
    verified: list[str] = []
    verified_keys: set[tuple[str, int]] = set()
    unknown: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(
                f"signature line {number} does not start with an em dash (U+2014) and a space: "
                f"{line[:40]!r}"
            )
        name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not _is_valid_key_name(name):
            raise MalformedNoteError(f"signature line {number} has an invalid key name {name!r}")
        try:
            blob = _b64decode(encoded)
        except ValueError:
            raise MalformedNoteError(
                f"signature line {number} ({name}): signature is not valid base64"
            ) from None
        if len(blob) < 5:
            raise MalformedNoteError(
                f"signature line {number} ({name}): signature decodes to {len(blob)} bytes, "
                "expected a 4-byte key ID followed by the signature"
            )
        key = (name, int.from_bytes(blob[:4], "big"))
        label = f"{name}+{key[1]:08x}"
        verifier = known.get(key)
        if verifier is None:
            unknown.append(label)
            continue
        if not verifier.verify(message, blob[4:]):
            raise InvalidSignatureError(
                f"invalid signature for key {label} (signature line {number})"
            )
        if key not in verified_keys:
            verified_keys.add(key)
            verified.append(name)
    if not verified:
        known_labels = ", ".join(f"{n}+{i:08x}" for n, i in known) or "none"
        raise NoKnownSignatureError(
            f"note has no signature from a known key: it is signed by "
            f"{', '.join(unknown)}; known keys: {known_labels}",
            unknown,
        )
    return text, verified


def _check_text_line(what: str, value: str) -> None:
    if not value:
        raise CheckpointError(f"{what} is empty")
    if "\n" in value:
        raise CheckpointError(f"{what} contains a newline")
    control = _CONTROL.search(value)
    if control is not None:
        raise CheckpointError(
            f"{what} contains control character U+{ord(control.group()):04X} "
            f"at offset {control.start()}"
        )


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed statement of its tree size and root hash (C2SP tlog-checkpoint body).

    ``extensions`` are the optional extra lines after the root hash, kept verbatim (e.g.
    ``["timestamp 2024-05-01T12:00:00Z"]``).
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Validate every field so that :meth:`to_text` always produces a parseable body."""
        object.__setattr__(self, "extensions", list(self.extensions))
        self._validate()

    def _validate(self) -> None:
        _check_text_line("checkpoint origin", self.origin)
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise CheckpointError(f"tree size must be between 0 and 2**64-1, got {self.size}")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"root hash is {len(self.root_hash)} bytes, expected {HASH_SIZE}")
        for i, line in enumerate(self.extensions):
            _check_text_line(f"extension line {i}", line)

    def to_text(self) -> str:
        """The note text: origin, size, base64 root hash, extension lines; each ends in "\\n"."""
        self._validate()  # the extensions list is mutable
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly; :class:`CheckpointError` says what is wrong.

        Rejects: a missing final newline, fewer than three lines, an empty origin, a size
        that is not canonical decimal (digits only, no leading zeros) or exceeds 2**64-1, a
        root hash that is not canonical padded base64 of exactly 32 bytes, empty extension
        lines, and control characters.
        """
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                f"checkpoint text has {len(lines)} lines, expected at least 3 "
                "(origin, tree size, root hash)"
            )
        origin, size_text, root_text, *extensions = lines
        _check_text_line("checkpoint origin (line 1)", origin)
        if not _SIZE_RE.fullmatch(size_text):
            raise CheckpointError(
                f"tree size (line 2) {size_text!r} is not a decimal number without leading zeros"
            )
        size = int(size_text)
        if size > _MAX_TREE_SIZE:
            raise CheckpointError(f"tree size (line 2) {size} exceeds 2**64-1")
        try:
            root = _b64decode(root_text)
        except ValueError:
            raise CheckpointError(f"root hash (line 3) {root_text!r} is not valid base64") from None
        if len(root) != HASH_SIZE:
            raise CheckpointError(
                f"root hash (line 3) decodes to {len(root)} bytes, expected {HASH_SIZE}"
            )
        if _b64encode(root) != root_text:
            raise CheckpointError(f"root hash (line 3) {root_text!r} is not canonical base64")
        for number, line in enumerate(extensions, 4):
            _check_text_line(f"extension line (line {number})", line)
        return cls(origin, size, root, extensions)


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer | Sequence[Signer]) -> bytes:
    """Signed note of the checkpoint, signed by one signer or several (e.g. during rotation)."""
    signers = [signer] if isinstance(signer, Signer) else list(signer)
    return sign_note(checkpoint.to_text(), signers)


def verify_checkpoint(
    note: bytes,
    verifier: Verifier | Sequence[Verifier],
    expected_origin: str | None = None,
) -> Checkpoint:
    """Open a signed checkpoint note and parse its body.

    ``verifier`` is the log's trusted key, or several (e.g. old and new key while rotating);
    at least one must have signed. Raises the :func:`open_note` errors for signature
    problems and :class:`CheckpointError` for a malformed body or, when ``expected_origin``
    is given, a checkpoint from a different log.
    """
    verifiers = [verifier] if isinstance(verifier, Verifier) else list(verifier)
    text, _ = open_note(note, verifiers)
    checkpoint = Checkpoint.from_text(text)
    if expected_origin is not None and checkpoint.origin != expected_origin:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} does not match the expected origin "
            f"{expected_origin!r}"
        )
    return checkpoint
