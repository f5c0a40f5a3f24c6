"""Export bundles are checked offline, and say which seq and which check failed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from auditkeep.cli.backends import LocalBundleSource
from auditkeep.core import Core
from auditkeep.integrity.checkpoint import generate_signer, parse_verifier
from auditkeep.model import now_micros, prepare_event
from auditkeep.translog import (
    BundleError,
    export_bundle,
    stored_log_input,
    verify_bundle,
    verify_store_log,
)
from auditkeep.translog.verify import CHUNK, Frontier, decompose, hash_leaves, subtree_levels
from tests.conftest import cli, event, make_core

N = 57


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    c = make_core(tmp_path / "data", checkpoint_interval=0)
    c.start()
    tenant = c.create_tenant("acme")
    for start in range(0, N, 19):
        prepared = [prepare_event(event(i), "acme", now_micros()) for i in range(start, start + 19)]
        c.writer.append_sync(tenant.tenant_id, prepared)
        c.tlog.sign(tenant)
    yield c
    c.close()  # its writer and key-revocation threads end with it


def _export(core: Core, path: Path, from_seq: int = 1, to_seq: int | None = None) -> Path:
    tenant = core.tenant("acme")
    with open(path, "wb") as out:
        export_bundle(
            LocalBundleSource(core, tenant), "auditkeep.local/acme", "acme", out, from_seq, to_seq
        )
    return path


def _vkey(core: Core) -> str:
    return core.keys.verifiers()[0].vkey


@pytest.mark.parametrize(("first", "last"), [(1, N), (1, 1), (5, 40), (20, 38), (N, N)])
def test_any_range_verifies(core: Core, tmp_path: Path, first: int, last: int) -> None:
    path = _export(core, tmp_path / "b.ndjson", first, last)
    report = verify_bundle(path, [parse_verifier(_vkey(core))])
    assert report.ok, report.problems
    assert report.checked == last - first + 1
    assert report.checkpoint is not None and report.checkpoint["size"] == N
    assert "signature checked with the given --log-key" in report.notes[0]


def test_parallel_and_sequential_agree(core: Core, tmp_path: Path) -> None:
    path = _export(core, tmp_path / "b.ndjson", 3, 50)
    one = verify_bundle(path, jobs=1)
    many = verify_bundle(path, jobs=2, min_range=1000)  # several byte ranges, two processes
    assert one.ok and many.ok and one.checked == many.checked == 48
    assert "key(s) in the bundle" in one.notes[0]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _rewrite(path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> Path:
    path.write_bytes(b"".join(edit(_lines(path))))
    return path


def _problems(path: Path, **kwargs: object) -> list[str]:
    report = verify_bundle(path, **kwargs)  # type: ignore[arg-type]
    assert not report.ok
    return report.problems


def test_an_altered_event_is_named_by_seq(core: Core, tmp_path: Path) -> None:
    path = _export(core, tmp_path / "b.ndjson", 10, 30)

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[4] = lines[4].replace(b'"user.login"', b'"user.logout"')  # seq 13
        return lines

    problems = _problems(_rewrite(path, edit))
    assert len(problems) == 1
    assert problems[0].startswith("seq 13: the event does not hash to its leaf hash")
    assert problems[0].endswith("the event was altered")


def test_an_altered_event_and_hash_break_the_root(core: Core, tmp_path: Path) -> None:
    path = _export(core, tmp_path / "b.ndjson", 10, 30)

    def edit(lines: list[bytes]) -> list[bytes]:
        line = json.loads(lines[4])
        line["leaf"]["outcome"] = "failure"
        leaf = orjson.dumps(line["leaf"], option=orjson.OPT_SORT_KEYS)
        digest = hash_leaves([leaf])[0].hex()
        lines[4] = b'{"seq":13,"hash":"%s","leaf":%s}\n' % (digest.encode(), leaf)
        return lines

    (problem,) = _problems(_rewrite(path, edit))
    assert problem.startswith("Merkle root: the prefix and the listed leaf hashes of seqs 10..30")
    assert "does not connect to the checkpoint at size 57" in problem


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda ls: ls[:5] + ls[6:], "seq 14: missing (seq 15 follows seq 13, at byte "),
        (lambda ls: ls[:5] + ls[8:], "seq 14..16: missing (seq 17 follows seq 13, at byte "),
        (lambda ls: [*ls[:5], ls[6], ls[5], *ls[7:]], "seq 14: found at byte"),
        (lambda ls: [*ls[:5], ls[5], *ls[5:]], "seq 14: found at byte"),
        (lambda ls: [ls[0], *ls[2:]], "seq 11: the first event line; the header says from_seq"),
        (lambda ls: ls[:-3], "the bundle's events end at seq 27, but its header says to_seq 30"),
        (lambda ls: [*ls[:5], b"garbage\n", *ls[6:]], "line at byte"),
    ],
)
def test_removed_reordered_duplicated_truncated_lines(
    core: Core,
    tmp_path: Path,
    edit: Callable[[list[bytes]], list[bytes]],
    expected: str,
) -> None:
    path = _rewrite(_export(core, tmp_path / "b.ndjson", 10, 30), edit)
    problems = _problems(path)
    assert any(p.startswith(expected) for p in problems), problems


def test_problems_found_in_parallel(core: Core, tmp_path: Path) -> None:
    path = _export(core, tmp_path / "b.ndjson")
    _rewrite(path, lambda ls: ls[:40] + ls[41:])  # seq 40 goes
    one = _problems(path, jobs=1)
    many = _problems(path, jobs=2, min_range=500)
    assert one[0].startswith("seq 40: missing (seq 41 follows seq 39, at byte ")
    assert [p.split(", at byte")[0] for p in many] == [p.split(", at byte")[0] for p in one]


def test_checkpoint_and_keys(core: Core, tmp_path: Path) -> None:
    path = _export(core, tmp_path / "b.ndjson")
    _, other = generate_signer("auditkeep.local")
    (problem,) = _problems(path, pinned=[parse_verifier(other)])
    assert problem.startswith("checkpoint: note has no signature from a known key")

    def forge(lines: list[bytes]) -> list[bytes]:
        header = json.loads(lines[0])
        header["checkpoint"] = header["checkpoint"].replace("\n57\n", "\n58\n")
        lines[0] = orjson.dumps(header) + b"\n"
        return lines

    (problem,) = _problems(_rewrite(path, forge))
    assert problem.startswith("checkpoint: invalid signature for key auditkeep.local+")


def test_header_problems(core: Core, tmp_path: Path) -> None:
    path = _export(core, tmp_path / "b.ndjson", 5, 9)

    def prefix(lines: list[bytes]) -> list[bytes]:
        header = json.loads(lines[0])
        header["prefix"] = header["prefix"][:-1]
        lines[0] = orjson.dumps(header) + b"\n"
        return lines

    (problem,) = _problems(_rewrite(path, prefix))
    assert problem == "header: prefix: a tree of size 4 has 1 frontier hashes, got 0"
    (tmp_path / "x").write_text('{"format":"something-else"}\n')
    (problem,) = _problems(tmp_path / "x")
    assert "bundle format 'something-else' is not supported" in problem


def test_export_needs_a_checkpoint_covering_the_range(core: Core, tmp_path: Path) -> None:
    tenant = core.tenant("acme")
    core.writer.append_sync(tenant.tenant_id, [prepare_event(event("late"), "acme", 1)])
    # a data directory export signs what it needs
    path = _export(core, tmp_path / "b.ndjson", 50, N + 1)
    assert verify_bundle(path).ok
    with pytest.raises(BundleError, match=r"the range 30\.\.20 is empty"):
        _export(core, tmp_path / "c.ndjson", 30, 20)
    with pytest.raises(
        BundleError, match=r"seq 60 is not covered .* the latest covers seqs 1\.\.58"
    ):
        _export(core, tmp_path / "c.ndjson", 1, 60)


def test_cli_export_and_verify(core: Core, tmp_path: Path) -> None:
    vkey = _vkey(core)
    core.close()
    data = tmp_path / "data"
    out = tmp_path / "cli.ndjson"
    made = cli(
        "export-bundle", "--tenant", "acme", "--from-seq", "7", "-o", str(out), data_dir=data
    )
    assert f"wrote {out}: 51 events of auditkeep.local/acme (seqs 7..57)" in made.stdout
    ok = cli("verify", str(out), "--log-key", vkey)
    assert "seqs 7..57: 51 events OK" in ok.stdout
    _rewrite(out, lambda ls: [*ls[:3], ls[3].replace(b'"Ada"', b'"Eve"'), *ls[4:]])
    bad = cli("verify", str(out), "--json", check=False)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["problems"][0].startswith("seq 9: the event does not hash to its leaf hash")


# -- the chunked Merkle recomputation ----------------------------------------------------------


@pytest.mark.parametrize("start", [0, 1, 5, 8, 13])
def test_subtree_levels_and_decompose_match_a_compact_range(start: int) -> None:
    leaves = hash_leaves([str(i).encode() for i in range(start, start + 29)])
    prefix = hash_leaves([str(i).encode() for i in range(start)])
    reference = Frontier()
    for h in prefix + leaves:
        reference.append(0, h)
    levels = subtree_levels(start, leaves)
    for end in range(start, start + 30):
        frontier = Frontier()
        for h in prefix:
            frontier.append(0, h)
        frontier.extend(decompose(levels, start, end))
        expected = Frontier()
        for h in (prefix + leaves)[:end]:
            expected.append(0, h)
        assert frontier.root() == expected.root() and frontier.size == end
    assert reference.size == start + 29


@pytest.mark.parametrize(("jobs", "chunk"), [(1, CHUNK), (1, 4), (1, 7), (2, 8)])
def test_store_verify_in_chunks(core: Core, jobs: int, chunk: int) -> None:
    tenant = core.tenant("acme")
    inp = stored_log_input(
        core.store, tenant, "auditkeep.local/acme", core.keys.verifiers(), pinned=False
    )
    report = verify_store_log(inp, jobs=jobs, chunk=chunk)
    assert report.ok, report.problems
    assert report.checked == N and report.checkpoints_checked == 3
    assert report.root == core.store.log(tenant.tenant_id).head().root
