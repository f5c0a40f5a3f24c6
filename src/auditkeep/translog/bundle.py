"""Export bundles: a range of a tenant's events that can be checked offline against a signed
checkpoint, without the server and without the rest of the log.

A bundle is NDJSON (docs/verification.md, "Export bundles"). Line 1 is the header: format,
origin, tenant, the seq range ``from_seq..to_seq``, the signed checkpoint note (size
``N >= to_seq``), the verifier key(s), ``prefix`` (the compact range of the tree of
``from_seq - 1`` leaves: its perfect-subtree roots) and ``consistency`` (the RFC 9162
consistency proof from ``to_seq`` to ``N``). Then one line per event, in seq order::

    {"seq":12,"hash":"<hex leaf hash>","leaf":<the leaf data, verbatim>}

Checking: the listed leaf hashes, appended to the prefix, give the root of the tree of
``to_seq`` leaves; the consistency proof ties that root to the checkpoint's root, whose
signature is checked. That authenticates every listed hash at its seq; then each event's
leaf data must hash to its listed hash, which pinpoints an altered event by seq.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

from auditkeep import __version__
from auditkeep.integrity.checkpoint import KeyFormatError, Verifier, parse_verifier
from auditkeep.integrity.merkle import ProofError, verify_consistency
from auditkeep.model import format_timestamp, now_micros
from auditkeep.translog.verify import (
    MAX_REPEATS,
    CheckedCheckpoint,
    Frontier,
    Subtree,
    check_leaves,
    decompose,
    hash_leaves,
    open_checkpoint,
    run_chunks,
    subtree_levels,
)

FORMAT = "auditkeep-bundle/v1"
_LINE = re.compile(rb'\{"seq":(0|[1-9][0-9]{0,19}),"hash":"([0-9a-f]{64})","leaf":')
_MIN_RANGE = 8 << 20  # bytes of event lines per work unit (about 13,000 events)


class BundleError(ValueError):
    """The bundle cannot be made or cannot be read at all (the message says why)."""


class BundleSource(Protocol):
    """What an export needs from a log (a data directory or a server)."""

    def checkpoint(self, covering: int) -> bytes:
        """The latest signed checkpoint note; one of size >= ``covering`` if possible."""

    def verifier_keys(self) -> list[str]: ...

    def frontier(self, size: int) -> list[bytes]: ...

    def consistency(self, first: int, second: int) -> list[bytes]: ...

    def events(self, from_seq: int, to_seq: int) -> Iterator[tuple[int, bytes, bytes]]:
        """``(seq, leaf hash, leaf data)`` in seq order."""


def export_bundle(
    source: BundleSource,
    origin: str,
    tenant: str,
    out: BinaryIO,
    from_seq: int = 1,
    to_seq: int | None = None,
) -> dict[str, Any]:
    """Write a bundle of events ``from_seq..to_seq`` (default: up to the latest checkpoint)
    to ``out``; return its header."""
    if from_seq < 1:
        raise BundleError(f"--from-seq must be at least 1, got {from_seq}")
    note = source.checkpoint(to_seq or 0)
    size = _note_size(note)
    if to_seq is None:
        to_seq = size
    if to_seq > size:
        raise BundleError(
            f"seq {to_seq} is not covered by a signed checkpoint: the latest covers seqs "
            f"1..{size}. If the log has more events, wait for the next checkpoint or sign one "
            "(POST /v1/log/checkpoints, or `auditkeep log checkpoint`)"
        )
    if to_seq < from_seq:
        raise BundleError(
            f"the range {from_seq}..{to_seq} is empty (the latest checkpoint covers seqs 1..{size})"
        )
    header = {
        "format": FORMAT,
        "origin": origin,
        "tenant": tenant,
        "from_seq": from_seq,
        "to_seq": to_seq,
        "checkpoint": note.decode("utf-8"),
        "verifier_keys": source.verifier_keys(),
        "prefix": [h.hex() for h in source.frontier(from_seq - 1)],
        "consistency": [h.hex() for h in source.consistency(to_seq, size)],
        "exported_at": format_timestamp(now_micros()),
        "exported_by": f"auditkeep {__version__}",
    }
    out.write(orjson.dumps(header) + b"\n")
    expected = from_seq
    for seq, leaf, data in source.events(from_seq, to_seq):
        if seq != expected:
            raise BundleError(f"seq {expected} is missing from the log; run `auditkeep verify`")
        if b"\n" in data:
            raise BundleError(f"seq {seq}: leaf data contains a newline; run `auditkeep verify`")
        out.write(b'{"seq":%d,"hash":"%s","leaf":%s}\n' % (seq, leaf.hex().encode(), data))
        expected += 1
    if expected != to_seq + 1:
        raise BundleError(f"the log ends at seq {expected - 1}, before {to_seq}")
    return header


def _note_size(note: bytes) -> int:
    lines = note.decode("utf-8").split("\n")
    try:
        return int(lines[1])
    except (IndexError, ValueError):
        raise BundleError("the server's checkpoint is not a valid checkpoint note") from None


# -- verification -------------------------------------------------------------------------------


@dataclass
class BundleReport:
    path: str
    tenant: str = ""
    from_seq: int = 0
    to_seq: int = 0
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _BundleTask:
    path: str
    start: int  # byte range of event lines (adjusted to line starts by the worker)
    end: int
    events_start: int
    file_size: int
    tenant: str
    content: bool


@dataclass
class _BundleChunk:
    first: int | None = None
    first_offset: int = 0  # byte offset of the first event line
    last: int | None = None
    count: int = 0
    broken: bool = False  # the seqs are not consecutive: no tree from this chunk
    lead: int = 0  # problems (malformed lines) before the first event line
    problems: list[tuple[str, str]] = field(default_factory=list)
    subtrees: list[Subtree] = field(default_factory=list)


def _read_range(task: _BundleTask) -> tuple[int, bytes]:
    """The whole lines whose first byte lies in ``[task.start, task.end)``, and their offset."""
    with open(task.path, "rb") as f:
        start, end = task.start, task.end
        if start > task.events_start:
            f.seek(start - 1)
            f.readline()
            start = f.tell()
        if end < task.file_size:
            f.seek(end - 1)
            f.readline()
            end = f.tell()
        if end <= start:
            return start, b""
        f.seek(start)
        return start, f.read(end - start)


def _order_problem(previous: int, seq: int, offset: int) -> str:
    if seq > previous + 1:
        missing = f"{previous + 1}" if seq == previous + 2 else f"{previous + 1}..{seq - 1}"
        return (
            f"seq {missing}: missing (seq {seq} follows seq {previous}, at byte {offset}): "
            "event lines were removed or reordered"
        )
    return (
        f"seq {seq}: found at byte {offset} after seq {previous}: event lines were reordered "
        "or duplicated"
    )


_HEAD = b'{"seq":%d,"hash":"%s","leaf":'
_HEAD_FIXED = len(_HEAD) - 4  # the bytes of a line head besides the seq's digits and the hash


def _check_bundle_chunk(task: _BundleTask) -> _BundleChunk:
    """Check the event lines in one byte range of a bundle (runs in a worker process).

    Fast path (:func:`_exact_lines`): when every line is exactly the event line of the next
    seq with the hash of its own leaf, a few whole-list operations prove it; when anything
    differs, the line-by-line path finds and names it.
    """
    offset, data = _read_range(task)
    if not data:
        return _BundleChunk()
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    exact = _exact_lines(lines)
    if exact is None:
        return _check_lines(task, offset, lines)
    first, leaves, hashes = exact
    out = _BundleChunk(first=first, first_offset=offset, last=first + len(leaves) - 1)
    out.count = len(leaves)
    if task.content:
        _content(out, task.tenant, range(first, first + len(leaves)), leaves)
    levels = subtree_levels(first - 1, hashes)
    out.subtrees = decompose(levels, first - 1, first - 1 + len(hashes))
    return out


def _exact_lines(lines: list[bytes]) -> tuple[int, list[bytes], list[bytes]] | None:
    """``(first seq, leaves, leaf hashes)`` when ``lines`` are exactly the event lines of
    consecutive seqs, each listing the hash of its own leaf; otherwise None.

    Each line is split at the length its head must have (the seq's digits are known once
    the first seq is), the leaves are hashed, and the heads rebuilt from the seqs and the
    recomputed hashes must equal the heads found, byte for byte: then each line matches
    :data:`_LINE` with exactly that seq and hash, and its leaf is what that match gives.
    """
    if not lines:
        return None
    m = _LINE.match(lines[0])
    if m is None:
        return None
    first = int(m.group(1))
    leaves: list[bytes] = []
    hashes: list[bytes] = []
    start = 0
    while start < len(lines):  # runs of seqs with the same number of digits
        seq = first + start
        digits = len(str(seq))
        stop = min(len(lines), start + 10**digits - seq)
        run = lines[start:stop]
        cut = _HEAD_FIXED + digits + 64
        run_leaves = [line[cut:-1] for line in run]
        run_hashes = hash_leaves(run_leaves)
        heads = [
            _HEAD % pair
            for pair in zip(range(seq, seq + len(run)), _hexes(run_hashes), strict=True)
        ]
        if [line[:cut] for line in run] != heads or b"".join(
            [line[-1:] for line in run]
        ) != b"}" * len(run):
            return None
        leaves += run_leaves
        hashes += run_hashes
        start = stop
    return first, leaves, hashes


def _hexes(hashes: list[bytes]) -> list[bytes]:
    blob = b"".join(hashes).hex().encode("ascii")
    return [blob[i : i + 64] for i in range(0, len(blob), 64)]


def _hash_problem(seq: int, want: bytes, got: bytes) -> str:
    return (
        f"seq {seq}: the event does not hash to its leaf hash (recomputed {got.hex()[:16]}…, "
        f"listed {want.hex()[:16]}…): the event was altered"
    )


def _content(out: _BundleChunk, tenant: str, seqs: Iterable[int], leaves: list[bytes]) -> None:
    out.problems += [("content", p) for p in check_leaves(tenant, seqs, leaves)]


def _check_lines(task: _BundleTask, offset: int, lines: list[bytes]) -> _BundleChunk:
    """The line-by-line check, which names every malformed, missing or misplaced line."""
    out = _BundleChunk()
    if lines and lines[-1] == b"":
        lines.pop()
    seqs: list[int] = []
    listed: list[bytes] = []
    leaves: list[bytes] = []
    for line in lines:
        m = _LINE.match(line)
        if m is None or not line.endswith(b"}"):
            after = f" (after seq {out.last})" if out.last is not None else ""
            out.problems.append(
                (
                    "line",
                    f"line at byte {offset}{after}: not an event line of the form "
                    '{"seq":N,"hash":"<64 hex digits>","leaf":{...}}',
                )
            )
            out.broken = True
        else:
            seq = int(m.group(1))
            if out.last is None:
                out.first, out.first_offset, out.lead = seq, offset, len(out.problems)
            elif seq != out.last + 1:
                out.problems.append(("order", _order_problem(out.last, seq, offset)))
                out.broken = True
            out.last = seq
            seqs.append(seq)
            listed.append(bytes.fromhex(m.group(2).decode("ascii")))
            leaves.append(line[m.end() : -1])
        offset += len(line) + 1
    out.count = len(seqs)
    for seq, want, got in zip(seqs, listed, hash_leaves(leaves), strict=True):
        if want != got:
            out.problems.append(("hash", _hash_problem(seq, want, got)))
    if task.content:
        _content(out, task.tenant, seqs, leaves)
    if not out.broken and out.first is not None:
        start = out.first - 1
        levels = subtree_levels(start, listed)
        out.subtrees = decompose(levels, start, start + len(listed))
    return out


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The bundle's header and the byte offset of its first event line."""
    with open(path, "rb") as f:
        first = f.readline(1 << 24)
    if not first.endswith(b"\n"):
        raise BundleError(f"{path}: not an auditkeep bundle (no header line)")
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        raise BundleError(f"{path}: line 1 is not a JSON bundle header") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise BundleError(f"{path}: bundle format {found!r} is not supported (expected {FORMAT})")
    for name, kind in (
        ("origin", str),
        ("tenant", str),
        ("from_seq", int),
        ("to_seq", int),
        ("checkpoint", str),
        ("verifier_keys", list),
        ("prefix", list),
        ("consistency", list),
    ):
        if not isinstance(header.get(name), kind) or isinstance(header.get(name), bool):
            raise BundleError(f"{path}: header field {name!r} is missing or not a {kind.__name__}")
    return header, len(first)


def _hashes(header: dict[str, Any], name: str) -> list[bytes]:
    values = header[name]
    try:
        out = [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise BundleError(f"header field {name!r} must hold hex hashes") from None
    if any(len(h) != 32 for h in out):
        raise BundleError(f"header field {name!r} must hold 32-byte hashes")
    return out


def verify_bundle(
    path: Path,
    pinned: Sequence[Verifier] = (),
    *,
    jobs: int = 1,
    content: bool = True,
    min_range: int = _MIN_RANGE,
) -> BundleReport:
    """Check a bundle offline; the report lists every problem, by seq and check."""
    report = BundleReport(str(path))
    try:
        header, events_start = read_header(path)
        prefix_hashes = _hashes(header, "prefix")
        proof = _hashes(header, "consistency")
    except BundleError as exc:
        report.problems.append(str(exc))
        return report
    tenant, origin = header["tenant"], header["origin"]
    from_seq, to_seq = header["from_seq"], header["to_seq"]
    report.tenant, report.from_seq, report.to_seq = tenant, from_seq, to_seq
    if from_seq < 1 or to_seq < from_seq:
        report.problems.append(f"header: the range {from_seq}..{to_seq} is not valid")
        return report
    verifiers, key_source = list(pinned), "the given --log-key"
    if not verifiers:
        key_source = "the key(s) in the bundle (pass --log-key to pin the log's published key)"
        try:
            verifiers = [parse_verifier(k) for k in header["verifier_keys"]]
        except (KeyFormatError, TypeError) as exc:
            report.problems.append(f"header: verifier key is invalid: {exc}")
            return report
    names = sorted({v.name for v in verifiers})
    if origin not in {f"{name}/{tenant}" for name in names}:
        report.problems.append(
            f"header: origin {origin!r} is not the log of tenant {tenant!r} under the key name "
            f"{' or '.join(repr(n) for n in names)}"
        )
    note = header["checkpoint"].encode("utf-8")
    cp, problem = open_checkpoint(note, verifiers, origin, "checkpoint")
    if cp is None:
        report.problems.append(problem or "checkpoint: does not verify")
    else:
        report.checkpoint = {"size": cp.size, "root": cp.root.hex(), "timestamp": cp.timestamp}
        if cp.size < to_seq:
            report.problems.append(
                f"{cp.label}: does not cover the bundle's events up to seq {to_seq}"
            )
            cp = None
    try:
        frontier = Frontier(from_seq - 1, prefix_hashes)
    except ValueError as exc:
        report.problems.append(f"header: prefix: {exc}")
        return report
    size = path.stat().st_size
    span = size - events_start
    parts = max(1, span // min_range)  # bounded memory per unit, whatever the job count
    bounds = [events_start + span * i // parts for i in range(parts + 1)]
    tasks = [
        _BundleTask(str(path), a, b, events_start, size, tenant, content)
        for a, b in itertools.pairwise(bounds)
    ]
    counts: dict[str, int] = {}
    broken = False
    expected = from_seq
    for chunk in run_chunks(_check_bundle_chunk, tasks, jobs):
        report.checked += chunk.count
        # where this range's first event line follows the previous range's last, named in
        # file order: after the malformed lines before it, before the range's own problems
        boundary: str | None = None
        out_of_place = chunk.first is not None and chunk.first != expected
        if chunk.first is not None and out_of_place:
            if expected == from_seq:
                boundary = (
                    f"seq {chunk.first}: the first event line; the header says from_seq {from_seq}"
                )
            else:
                boundary = _order_problem(expected - 1, chunk.first, chunk.first_offset)
        for i, (kind, message) in enumerate(chunk.problems):
            if i == chunk.lead and boundary is not None:
                report.problems.append(boundary)
                boundary = None
            counts[kind] = counts.get(kind, 0) + 1
            if counts[kind] <= MAX_REPEATS:
                report.problems.append(message)
        if boundary is not None:
            report.problems.append(boundary)
        broken = broken or chunk.broken or out_of_place
        if chunk.first is None:
            continue
        if not broken:
            for level, h in chunk.subtrees:
                frontier.append(level, h)
        assert chunk.last is not None
        expected = chunk.last + 1
    for kind, n in counts.items():
        if n > MAX_REPEATS:
            report.problems.append(f"… and {n - MAX_REPEATS} more problems like the above ({kind})")
    if not broken and expected != to_seq + 1:
        report.problems.append(
            f"the bundle's events end at seq {expected - 1}, but its header says to_seq {to_seq}"
        )
        broken = True
    if broken:
        report.notes.append(
            "the Merkle root was not recomputed: the event lines are not seqs "
            f"{from_seq}..{to_seq} in order"
        )
    elif cp is not None:
        _check_root(report, cp, frontier, proof, key_source)
    return report


def _check_root(
    report: BundleReport,
    cp: CheckedCheckpoint,
    frontier: Frontier,
    proof: list[bytes],
    key_source: str,
) -> None:
    root = frontier.root()
    try:
        verify_consistency(frontier.size, cp.size, root, cp.root, proof)
    except ProofError as exc:
        report.problems.append(
            f"Merkle root: the prefix and the listed leaf hashes of seqs {report.from_seq}.."
            f"{report.to_seq} give root {root.hex()[:16]}… for the tree of {frontier.size} "
            f"events, which the consistency proof does not connect to the {cp.label} ({exc}). "
            "A listed leaf hash, the prefix or the proof was altered, or event lines were "
            "moved together with their hashes"
        )
        return
    report.notes.append(
        f"the events' leaf hashes give Merkle root {root.hex()[:16]}… at size {frontier.size}, "
        f"consistent with the {cp.label}; signature checked with {key_source}"
    )


__all__ = [
    "FORMAT",
    "BundleError",
    "BundleReport",
    "BundleSource",
    "export_bundle",
    "read_header",
    "verify_bundle",
]
