"""The parallel bundle verifier gives the sequential verdict wherever a tamper lands relative
to the byte ranges the workers split the bundle into."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkeep.cli.backends import LocalBundleSource
from auditkeep.model import now_micros, prepare_event
from auditkeep.translog import BundleReport, export_bundle, verify_bundle
from auditkeep.translog.verify import hash_leaves
from tests.conftest import event, make_core

N = 150


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("parallel")
    core = make_core(root / "data", checkpoint_interval=0)
    core.start()
    try:
        tenant = core.create_tenant("acme")
        prepared = [prepare_event(event(i), "acme", now_micros()) for i in range(N)]
        core.writer.append_sync(tenant.tenant_id, prepared)
        core.tlog.sign(tenant)
        with open(root / "b.ndjson", "wb") as out:
            export_bundle(LocalBundleSource(core, tenant), "auditkeep.local/acme", "acme", out)
    finally:
        core.close()
    yield root / "b.ndjson"


def _relisted(line: bytes, leaf: bytes) -> bytes:
    """An event line with a new leaf and the matching leaf hash."""
    seq = orjson.loads(line)["seq"]
    return b'{"seq":%d,"hash":"%s","leaf":%s}\n' % (
        seq,
        hash_leaves([leaf])[0].hex().encode(),
        leaf,
    )


def _leaf(line: bytes) -> bytes:
    return line[line.index(b'"leaf":') + 7 : -2]


def _swap(lines: list[bytes], i: int) -> list[bytes]:
    """Event lines i and i + 1 trade places."""
    return [*lines[:i], lines[i + 1], lines[i], *lines[i + 2 :]]


Edit = Callable[[list[bytes], int], list[bytes]]

TAMPERS: dict[str, Edit] = {
    "altered leaf": lambda ls, i: [*ls[:i], ls[i].replace(b'"Ada"', b'"Eve"'), *ls[i + 1 :]],
    "altered leaf and hash": lambda ls, i: [
        *ls[:i],
        _relisted(ls[i], _leaf(ls[i]).replace(b'"Ada"', b'"Eve"')),
        *ls[i + 1 :],
    ],
    "not canonical, hash relisted": lambda ls, i: [
        *ls[:i],
        _relisted(ls[i], _leaf(ls[i]).replace(b'"action":', b'"action": ')),
        *ls[i + 1 :],
    ],
    "other tenant, hash relisted": lambda ls, i: [
        *ls[:i],
        _relisted(ls[i], _leaf(ls[i]).replace(b'"tenant":"acme"', b'"tenant":"acmf"')),
        *ls[i + 1 :],
    ],
    "float, hash relisted": lambda ls, i: [
        *ls[:i],
        _relisted(ls[i], _leaf(ls[i]).replace(b'"attempt":1', b'"attempt":1.0')),
        *ls[i + 1 :],
    ],
    "removed": lambda ls, i: [*ls[:i], *ls[i + 1 :]],
    "duplicated": lambda ls, i: [*ls[: i + 1], ls[i], *ls[i + 1 :]],
    "swapped": lambda ls, i: _swap(ls, i if i + 1 < len(ls) else i - 1),
    "garbage": lambda ls, i: [*ls[:i], b"garbage\n", *ls[i + 1 :]],
    "cut short": lambda ls, i: [*ls[:i], ls[i][:-2] + b"\n", *ls[i + 1 :]],
    "upper-case hash": lambda ls, i: [
        *ls[:i],
        ls[i][:17] + ls[i][17:81].upper() + ls[i][81:],
        *ls[i + 1 :],
    ],
    "truncated file": lambda ls, i: ls[:i],
    "no final newline": lambda ls, i: [*ls[:-1], ls[-1][:-1]],
}


def _verdict(report: BundleReport) -> tuple[bool, int, list[str], list[str]]:
    # a malformed line is named by its byte offset; "(after seq N)" is context only the
    # worker that also read the line before it has
    problems = [re.sub(r" \(after seq \d+\)", "", p) for p in report.problems]
    return report.ok, report.checked, problems, report.notes


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(sorted(TAMPERS)),
    line=st.integers(min_value=1, max_value=N),
    shift=st.integers(min_value=-3, max_value=3),
    min_range=st.sampled_from([200, 701, 1500, 4096, 20000]),
)
def test_parallel_verdicts_equal_sequential(
    bundle: Path, tmp_path: Path, kind: str, line: int, shift: int, min_range: int
) -> None:
    lines = bundle.read_bytes().splitlines(keepends=True)
    path = tmp_path / f"{kind.replace(' ', '-')}-{line}-{shift}-{min_range}.ndjson"
    index = min(max(1, line + shift), N)  # lines[0] is the header
    path.write_bytes(b"".join(TAMPERS[kind](lines, index)))
    one = verify_bundle(path, jobs=1)
    many = verify_bundle(path, jobs=2, min_range=min_range)
    assert _verdict(many) == _verdict(one)
    if kind in ("no final newline",):
        assert one.ok
    else:
        assert not one.ok, kind


@pytest.mark.parametrize("min_range", [1, 90, 601, 1234])
def test_tamper_on_every_line_near_the_range_edges(
    bundle: Path, tmp_path: Path, min_range: int
) -> None:
    """An altered leaf on each line in turn, with ranges so small that lines straddle them."""
    lines = bundle.read_bytes().splitlines(keepends=True)
    path = tmp_path / "b.ndjson"
    for index in range(1, N + 1, 7):
        path.write_bytes(b"".join(TAMPERS["altered leaf"](lines, index)))
        one = verify_bundle(path, jobs=1)
        many = verify_bundle(path, jobs=1, min_range=min_range)
        assert _verdict(many) == _verdict(one)
        (problem,) = one.problems
        assert problem.startswith(f"seq {index}: the event does not hash to its leaf hash")
