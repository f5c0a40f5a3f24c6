"""The witness: polls a log's checkpoints and proves each one extends the last it accepted.

It keeps, per log origin, the last checkpoint it verified and the log's pinned verifier
keys. For every new checkpoint it checks the signature with the pinned keys and a
consistency proof from the kept checkpoint; a smaller tree (rollback), a different root for
the same size or a proof that fails (fork), an unannounced key change, or a bad signature is
an alarm: an error log line, evidence saved in the state directory, an optional webhook POST,
and exit code 2. See docs/witness.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from auditkeep.integrity.checkpoint import (
    Checkpoint,
    CheckpointError,
    InvalidSignatureError,
    KeyFormatError,
    NoKnownSignatureError,
    NoteError,
    Verifier,
    open_note,
    parse_verifier,
    verify_checkpoint,
)
from auditkeep.integrity.merkle import ProofError, parse_hash_hex, verify_consistency
from auditkeep.model import format_timestamp, now_micros

log = logging.getLogger("auditkeep.witness")

Status = Literal["first", "ok", "unchanged", "waiting", "error", "alarm"]

EXIT_OK, EXIT_ERROR, EXIT_ALARM = 0, 1, 2


@dataclass
class PollResult:
    status: Status
    message: str
    origin: str | None = None
    size: int | None = None

    @property
    def exit_code(self) -> int:
        if self.status == "alarm":
            return EXIT_ALARM
        return EXIT_ERROR if self.status == "error" else EXIT_OK


class _Alarm(Exception):
    def __init__(self, kind: str, detail: str, **evidence: Any) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.evidence = evidence


class _Transient(Exception):
    """The server could not be asked (network, 5xx, auth): not evidence of anything."""


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _note_text(note: bytes) -> str:
    text = note.decode("utf-8", errors="replace")
    return text[: text.rfind("\n\n") + 1]


class Witness:
    """One witness over one log (a server and an API key with events:read)."""

    def __init__(
        self,
        server: str,
        api_key: str,
        state_dir: Path,
        *,
        log_keys: Sequence[Verifier] = (),
        webhook: str | None = None,
        publish_dir: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.server = server.rstrip("/")
        self.state_dir = Path(state_dir)
        self.log_keys = list(log_keys)
        self.webhook = webhook
        self.publish_dir = publish_dir
        self.client = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )
        self.source = f"{self.server} {api_key.split('_')[1] if api_key.count('_') >= 2 else '?'}"

    def close(self) -> None:
        self.client.close()

    # -- state ------------------------------------------------------------------------------

    def _dir(self, origin: str) -> Path:
        return self.state_dir / "logs" / quote(origin, safe="")

    def _sources(self) -> dict[str, str]:
        path = self.state_dir / "sources.json"
        if not path.exists():
            return {}
        data: dict[str, str] = orjson.loads(path.read_bytes())
        return data

    def _stored_keys(self, origin: str) -> list[Verifier]:
        path = self._dir(origin) / "keys"
        if not path.exists():
            return []
        return [
            parse_verifier(line.strip())
            for line in path.read_text("utf-8").splitlines()
            if line.strip()
        ]

    def _pinned(self, origin: str) -> list[Verifier]:
        """The keys kept in the state directory plus those given with --log-key (kept too)."""
        stored = self._stored_keys(origin)
        keys = stored + [k for k in self.log_keys if k not in stored]
        if keys != stored:
            self._save_keys(origin, keys)
        return keys

    def _save_keys(self, origin: str, keys: list[Verifier]) -> None:
        _write_atomic(self._dir(origin) / "keys", "".join(k.vkey + "\n" for k in keys).encode())

    # -- HTTP -------------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise _Transient(f"cannot reach {self.server}: {exc}") from None
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            raise _Transient(
                f"{path}: the server answered {response.status_code}: {_detail(response)}"
            )
        return response

    def _published_keys(self) -> list[Verifier]:
        response = self._get("/v1/log/key", format="json")
        if response.status_code != 200:
            raise _Transient(f"/v1/log/key: the server answered {response.status_code}")
        keys = []
        for entry in response.json().get("keys", []):
            if entry.get("state") != "retired":
                try:
                    keys.append(parse_verifier(entry["vkey"]))
                except (KeyFormatError, KeyError):
                    continue
        return keys

    # -- one poll ---------------------------------------------------------------------------

    def poll(self) -> PollResult:
        """Fetch and check the latest checkpoint; never raises for server behaviour."""
        try:
            return self._poll()
        except _Transient as exc:
            log.warning("witness poll failed: %s", exc)
            return PollResult("error", str(exc))
        except _Alarm as alarm:
            return self._raise_alarm(alarm)

    def _poll(self) -> PollResult:
        response = self._get("/v1/log/checkpoint", format="note")
        if response.status_code == 404:
            return PollResult("waiting", f"no checkpoint yet: {_detail(response)}")
        if response.status_code != 200:
            raise _Transient(f"/v1/log/checkpoint: the server answered {response.status_code}")
        note = response.content
        try:
            claimed = Checkpoint.from_text(_note_text(note))
        except CheckpointError as exc:
            raise _Alarm(
                "bad_checkpoint", f"the server's checkpoint is malformed: {exc}", new=note
            ) from None
        origin = claimed.origin
        sources = self._sources()
        bound = sources.get(self.source)
        if bound is not None and bound != origin:
            raise _Alarm(
                "origin_changed",
                f"this server and key served checkpoints of {bound!r} before, now of {origin!r}",
                new=note,
            )
        pinned = self._pinned(origin)
        if not pinned:
            pinned = self._published_keys()
            if not pinned:
                raise _Transient("the server publishes no verifier key")
            log.warning(
                "trusting %s's key(s) on first use: %s (pin them with --log-key instead)",
                origin,
                ", ".join(k.vkey for k in pinned),
            )
            self._save_keys(origin, pinned)
        old_note = self._latest(origin)
        try:
            cp = verify_checkpoint(note, pinned, origin)
        except NoKnownSignatureError as exc:
            unknown = (
                f"signed by no pinned key (pinned: {', '.join(k.vkey for k in pinned)}; "
                f"{exc}); a key rotation must be announced by checkpoints signed by both the "
                "old and the new key"
            )
            if old_note is not None:  # is it also a rollback or a fork? say so first
                self._check_extends(origin, old_note, note, claimed, f", in a checkpoint {unknown}")
            raise _Alarm(
                "key_changed",
                f"the checkpoint of {origin} is {unknown}",
                old=old_note,
                new=note,
            ) from None
        except InvalidSignatureError as exc:
            raise _Alarm("bad_signature", f"{origin}: {exc}", old=old_note, new=note) from None
        except (NoteError, CheckpointError) as exc:
            raise _Alarm("bad_checkpoint", f"{origin}: {exc}", old=old_note, new=note) from None
        self._learn_keys(origin, note, pinned, cp.size)
        if bound is None:
            sources[self.source] = origin
            _write_atomic(self.state_dir / "sources.json", orjson.dumps(sources))
        if old_note is None:
            self._accept(origin, note, cp)
            log.info("witness: first checkpoint of %s, size %d", origin, cp.size)
            return PollResult(
                "first", f"accepted the first checkpoint, size {cp.size}", origin, cp.size
            )
        old = self._check_extends(origin, old_note, note, cp, "")
        if note != old_note:
            self._accept(origin, note, cp)
        if cp.size == old.size:
            return PollResult("unchanged", f"size {cp.size}, unchanged", origin, cp.size)
        log.info("witness: %s grew from %d to %d, consistent", origin, old.size, cp.size)
        return PollResult("ok", f"size {old.size} -> {cp.size}, consistent", origin, cp.size)

    def _check_extends(
        self, origin: str, old_note: bytes, note: bytes, cp: Checkpoint, suffix: str
    ) -> Checkpoint:
        """Raise a rollback or fork alarm unless ``cp`` extends the kept checkpoint."""
        old = Checkpoint.from_text(_note_text(old_note))  # verified when it was kept
        if cp.size < old.size:
            raise _Alarm(
                "rollback",
                f"{origin}: the tree shrank from size {old.size} to {cp.size} (rollback): the "
                f"log no longer contains events it had committed to{suffix}",
                old=old_note,
                new=note,
            )
        if cp.size == old.size:
            if cp.root_hash != old.root_hash:
                raise _Alarm(
                    "fork",
                    f"{origin}: two different roots for tree size {cp.size}: kept "
                    f"{old.root_hash.hex()}, now {cp.root_hash.hex()} (fork){suffix}",
                    old=old_note,
                    new=note,
                )
            return old
        proof = self._consistency(origin, old.size, cp.size, old_note, note)
        try:
            verify_consistency(old.size, cp.size, old.root_hash, cp.root_hash, proof)
        except ProofError as exc:
            raise _Alarm(
                "fork",
                f"{origin}: the checkpoint at size {cp.size} is not an extension of the one at "
                f"size {old.size} the witness kept (fork): {exc}{suffix}",
                old=old_note,
                new=note,
                proof=[h.hex() for h in proof],
            ) from None
        return old

    def _consistency(
        self, origin: str, first: int, second: int, old_note: bytes, note: bytes
    ) -> list[bytes]:
        response = self._get("/v1/log/proof/consistency", first=first, second=second)
        if response.status_code != 200:
            raise _Alarm(
                "fork",
                f"{origin}: the server refuses a consistency proof from size {first} to "
                f"{second} ({response.status_code}: {_detail(response)})",
                old=old_note,
                new=note,
            )
        try:
            return [parse_hash_hex(h) for h in response.json()["hashes"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise _Alarm(
                "fork", f"{origin}: malformed consistency proof: {exc}", old=old_note, new=note
            ) from None

    def _learn_keys(self, origin: str, note: bytes, pinned: list[Verifier], size: int) -> None:
        """Pin keys that co-signed this checkpoint with a pinned key (rotation overlap)."""
        try:
            open_note(note, pinned)
        except NoteError:
            return
        signed_by_unknown = len(_signature_lines(note)) > sum(
            1 for k in pinned if _signed_by(note, k)
        )
        if not signed_by_unknown:
            return
        try:
            candidates = self._published_keys()
        except _Transient:
            return
        learned = [k for k in candidates if k not in pinned and _signed_by(note, k)]
        if learned:
            for k in learned:
                log.info(
                    "witness: pinned new key %s of %s: it co-signed checkpoint size %d with "
                    "a pinned key",
                    k.vkey,
                    origin,
                    size,
                )
            self._save_keys(origin, pinned + learned)

    def _latest(self, origin: str) -> bytes | None:
        path = self._dir(origin) / "checkpoint"
        return path.read_bytes() if path.exists() else None

    def _accept(self, origin: str, note: bytes, cp: Checkpoint) -> None:
        if self.publish_dir is not None:
            self._check_published(origin, note, cp)  # before the state moves on
        directory = self._dir(origin)
        _write_atomic(directory / "checkpoint", note)
        line = {
            "received_at": format_timestamp(now_micros()),
            "size": cp.size,
            "root": cp.root_hash.hex(),
            "note": note.decode("utf-8"),
        }
        with open(directory / "history.ndjson", "ab") as f:
            f.write(orjson.dumps(line) + b"\n")
        if self.publish_dir is not None:
            self._publish(origin, note, cp)

    def _published(self, origin: str, size: int) -> Path:
        assert self.publish_dir is not None
        return self.publish_dir / quote(origin, safe="") / "checkpoints" / str(size)

    def _check_published(self, origin: str, note: bytes, cp: Checkpoint) -> None:
        """A different root already published for this size (e.g. by another witness that was
        shown another log) is a fork."""
        by_size = self._published(origin, cp.size)
        if not by_size.exists():
            return
        existing = by_size.read_bytes()
        try:
            other = Checkpoint.from_text(_note_text(existing))
        except CheckpointError:
            return
        if other.root_hash != cp.root_hash:
            raise _Alarm(
                "fork",
                f"{origin}: {by_size} holds a different root for size {cp.size} "
                f"({other.root_hash.hex()}) than the server now serves ({cp.root_hash.hex()}) "
                "(fork)",
                old=existing,
                new=note,
            )

    def _publish(self, origin: str, note: bytes, cp: Checkpoint) -> None:
        """Write the checkpoint where others can see it (a size is written once)."""
        assert self.publish_dir is not None
        by_size = self._published(origin, cp.size)
        if not by_size.exists():
            _write_atomic(by_size, note)
        directory = by_size.parent.parent
        _write_atomic(directory / "checkpoint", note)
        _write_atomic(
            directory / "keys", "".join(k.vkey + "\n" for k in self._pinned(origin)).encode()
        )

    # -- alarms -----------------------------------------------------------------------------

    def _raise_alarm(self, alarm: _Alarm) -> PollResult:
        now = format_timestamp(now_micros())
        body: dict[str, Any] = {
            "alarm": alarm.kind,
            "detail": alarm.detail,
            "server": self.server,
            "time": now,
        }
        for name, value in alarm.evidence.items():
            if isinstance(value, bytes):
                body[f"{name}_checkpoint"] = value.decode("utf-8", errors="replace")
            elif value is not None:
                body[name] = value
        origin = None
        new = alarm.evidence.get("new")
        if isinstance(new, bytes):
            try:
                origin = Checkpoint.from_text(_note_text(new)).origin
            except CheckpointError:
                origin = None
        body["origin"] = origin
        log.error("ALARM %s: %s", alarm.kind, alarm.detail, extra={"alarm": alarm.kind})
        evidence_dir = self._dir(origin) if origin else self.state_dir
        stamp = now.replace(":", "").replace("-", "")
        _write_atomic(
            evidence_dir / "alarms" / f"{stamp}-{alarm.kind}.json",
            orjson.dumps(body, option=orjson.OPT_INDENT_2),
        )
        if self.webhook:
            try:
                httpx.post(self.webhook, json=body, timeout=10.0).raise_for_status()
            except httpx.HTTPError as exc:
                log.error("the alarm webhook %s failed: %s", self.webhook, exc)
        return PollResult("alarm", f"{alarm.kind}: {alarm.detail}", origin)

    def run(self, interval: float, once: bool) -> int:
        """Poll until an alarm (exit code 2); with ``once``, poll one time."""
        while True:
            result = self.poll()
            if once or result.status == "alarm":
                return result.exit_code
            time.sleep(interval)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:300]
    except ValueError:
        return response.text[:300]


def _signature_lines(note: bytes) -> list[str]:
    text = note.decode("utf-8", errors="replace")
    return [line for line in text[text.rfind("\n\n") + 2 :].splitlines() if line]


def _signed_by(note: bytes, key: Verifier) -> bool:
    try:
        open_note(note, [key])
    except NoteError:
        return False
    return True
