"""Tampering with the SQLite file directly is detected, with a precise message.

Each test builds a real data directory (30 events in three batches, a signed checkpoint after
each), edits auditkeep.db with sqlite3 while nothing has it open, then runs
`auditkeep verify --data-dir` as a subprocess. The last scenario rebuilds the whole store
consistently, which `verify` cannot catch from the store alone; a witness that kept an older
checkpoint (and the pinned key) catches it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkeep.model import now_micros, prepare_event
from auditkeep.translog import stored_log_input, verify_store_log
from tests.conftest import AUDITKEEP, LiveServer, cli, event, free_port, make_core


def build_log(data_dir: Path, n: int = 30, batch: int = 10, **settings: Any) -> None:
    core = make_core(data_dir, checkpoint_interval=0, **settings)
    core.start()
    tenant = core.create_tenant("acme")
    for start in range(0, n, batch):
        prepared = [
            prepare_event(event(i, action=f"user.action{i}"), "acme", now_micros())
            for i in range(start + 1, start + batch + 1)
        ]
        core.writer.append_sync(tenant.tenant_id, prepared)
        core.tlog.sign(tenant)
    core.close()


def db(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "auditkeep.db", isolation_level=None)
    return conn


def verify(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("verify", *extra, data_dir=data_dir, check=False)


def problems(data_dir: Path, *extra: str) -> list[str]:
    out = verify(data_dir, "--json", *extra)
    assert out.returncode == 1, out.stdout + out.stderr
    (report,) = json.loads(out.stdout)
    assert not report["ok"]
    result: list[str] = report["problems"]
    return result


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    build_log(path)
    out = verify(path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tenant acme: 30 events OK" in out.stdout
    assert "3 compared with the recomputed tree" in out.stdout
    return path


def _leaf(conn: sqlite3.Connection, seq: int) -> bytes:
    row = conn.execute("SELECT leaf_data FROM events WHERE seq = ?", (seq,)).fetchone()
    return bytes(row[0])


def test_edit_a_field(data_dir: Path) -> None:
    conn = db(data_dir)
    data = _leaf(conn, 7).replace(b'"user.action7"', b'"user.action8"')
    conn.execute("UPDATE events SET leaf_data = ? WHERE seq = 7", (data,))
    conn.close()
    found = problems(data_dir)
    assert found[0].startswith("seq 7: leaf hash mismatch: stored ")
    assert "(the event was altered)" in found[0]
    # the indexed column still holds what the event said before
    assert found[1] == (
        "seq 7: the indexed action differs from the event's: the column holds 'user.action7', "
        "the event says 'user.action8' (searches by action miss it or find it wrongly)"
    )
    # the signed checkpoints that cover seq 7 no longer match: the first one in full
    assert found[2].startswith("checkpoint at size 10 (")
    assert "the Merkle root of events 1..10 recomputed from the store is " in found[2]
    assert found[3:] == [
        "… and 2 later checkpoint(s), sizes 20..30, do not match the recomputed tree either"
    ]


def test_edit_a_field_and_its_stored_hash(data_dir: Path) -> None:
    conn = db(data_dir)
    data = _leaf(conn, 12).replace(b'"outcome":"success"', b'"outcome":"failure"')
    conn.execute(
        "UPDATE events SET leaf_data = ?, leaf_hash = ?, outcome = 'failure' WHERE seq = 12",
        (data, __import__("hashlib").sha256(b"\x00" + data).digest()),
    )
    conn.close()
    found = problems(data_dir)
    assert found[0].startswith("seq 12: the event hashes to ")
    assert "but the Merkle tree committed" in found[0] and "at this seq" in found[0]


def test_delete_an_event(data_dir: Path) -> None:
    conn = db(data_dir)
    conn.execute("DELETE FROM events WHERE seq = 5")
    conn.execute("DELETE FROM event_targets WHERE seq = 5")
    conn.close()
    found = problems(data_dir)
    assert found == [
        "seq 5..5: missing (the log jumps from 4 to 6)",
        "3 signed checkpoint(s), sizes 10..30, could not be checked: seq 5 is missing, so the "
        "Merkle root cannot be recomputed past seq 4",
    ]


def test_insert_an_event(data_dir: Path) -> None:
    conn = db(data_dir)
    forged = prepare_event(event("forged", action="user.forged"), "acme", now_micros())
    # make room at seq 15: shift 15..30 up by one, then put the forged event at 15
    conn.execute("UPDATE events SET seq = -seq WHERE seq >= 15")
    conn.execute("UPDATE events SET seq = 1 - seq WHERE seq < 0")
    conn.execute("UPDATE event_targets SET seq = -seq WHERE seq >= 15")
    conn.execute("UPDATE event_targets SET seq = 1 - seq WHERE seq < 0")
    conn.execute(
        "INSERT INTO events (tenant_id, seq, id, action, category, outcome, actor_id,"
        " occurred_at, received_at, leaf_hash, leaf_data)"
        " SELECT tenant_id, 15, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM tenants WHERE slug = 'acme'",
        (
            forged.id,
            forged.action,
            forged.category,
            forged.outcome,
            forged.actor_id,
            forged.occurred_at,
            forged.received_at,
            forged.leaf_hash,
            forged.leaf_data,
        ),
    )
    conn.execute("UPDATE log_heads SET size = 31 WHERE size = 30")
    conn.close()
    found = problems(data_dir)
    assert found[0].startswith("seq 15: the event hashes to ")
    assert found[1] == (
        "seqs 16..30: hold the events committed to the Merkle tree as seqs 15..29 (events were "
        "inserted before them and the rest renumbered)"
    )
    assert "seq 31: the Merkle tree has no leaf for it (index 30)" in found
    (mismatch,) = [p for p in found if p.startswith("checkpoint at size")]
    assert mismatch.startswith("checkpoint at size 20 (")
    assert mismatch.endswith(
        "the checkpoint at size 10 still matches, so the change is in seqs 11..20"
    )


def test_append_an_event_beyond_the_head(data_dir: Path) -> None:
    conn = db(data_dir)
    conn.execute(
        "INSERT INTO events SELECT tenant_id, 31, 'extra', action, category, outcome, actor_id,"
        " occurred_at, received_at, leaf_hash, leaf_data FROM events WHERE seq = 3"
    )
    conn.close()
    found = problems(data_dir)
    assert "the log head says 30 events but the last stored seq is 31" in found
    assert any(p.startswith("seq 31..31: stored beyond the log head (size 30)") for p in found)


def test_swap_two_events(data_dir: Path) -> None:
    conn = db(data_dir)
    a = conn.execute("SELECT leaf_hash, leaf_data, id FROM events WHERE seq = 3").fetchone()
    b = conn.execute("SELECT leaf_hash, leaf_data, id FROM events WHERE seq = 8").fetchone()
    conn.execute("UPDATE events SET id = 'tmp' WHERE seq = 3")
    conn.execute("UPDATE events SET leaf_hash = ?, leaf_data = ?, id = ? WHERE seq = 8", a)
    conn.execute("UPDATE events SET leaf_hash = ?, leaf_data = ?, id = ? WHERE seq = 3", b)
    conn.close()
    found = problems(data_dir)
    assert found[:2] == [
        "seq 3: holds the event committed to the Merkle tree as seq 8 (events were moved, "
        "swapped or inserted)",
        "seq 8: holds the event committed to the Merkle tree as seq 3 (events were moved, "
        "swapped or inserted)",
    ]
    assert any(p.startswith("checkpoint at size 10 (") for p in found)


def _rewrite_tail(data_dir: Path, keep: int, new: int, *, fresh_key: bool = False) -> None:
    """Truncate to ``keep`` events, append ``new`` others, and rebuild the Merkle tree, the
    head and (with ``fresh_key``) the keys and checkpoints, as a careful attacker would."""
    conn = db(data_dir)
    conn.execute("DELETE FROM events WHERE seq > ?", (keep,))
    conn.execute("DELETE FROM event_targets WHERE seq > ?", (keep,))
    tid = conn.execute("SELECT tenant_id FROM tenants WHERE slug = 'acme'").fetchone()[0]
    for i in range(new):
        ev = prepare_event(event(f"x{i}", action="user.rewritten"), "acme", now_micros())
        conn.execute(
            "INSERT INTO events (tenant_id, seq, id, action, category, outcome, actor_id,"
            " occurred_at, received_at, leaf_hash, leaf_data) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                tid,
                keep + 1 + i,
                ev.id,
                ev.action,
                ev.category,
                ev.outcome,
                ev.actor_id,
                ev.occurred_at,
                ev.received_at,
                ev.leaf_hash,
                ev.leaf_data,
            ),
        )
        conn.executemany(
            "INSERT INTO event_targets VALUES (?, ?, ?, ?, ?)",
            [(tid, keep + 1 + i, t, target, ev.occurred_at) for t, target in set(ev.targets)],
        )
    # rebuild the tree from the events: auditkeep's own migration does it for a NULL frontier
    conn.execute("DELETE FROM merkle_tiles")
    conn.execute("UPDATE log_heads SET size = ?, frontier = NULL, root = NULL", (keep + new,))
    if fresh_key:
        conn.execute("DELETE FROM checkpoints")
        conn.execute("DELETE FROM signing_keys")
        shutil.rmtree(data_dir / "keys")
    conn.close()
    core = make_core(data_dir, checkpoint_interval=0)  # migrate() rebuilds the tree
    if fresh_key:
        tenant = core.store.get_tenant("acme")
        assert tenant is not None
        core.tlog.sign(tenant)  # a new key is made on first use
    core.close()


def test_truncate_the_tail_and_append_others(data_dir: Path) -> None:
    _rewrite_tail(data_dir, keep=20, new=15)
    found = problems(data_dir)
    (mismatch,) = found
    assert mismatch.startswith("checkpoint at size 30 (")
    assert "the Merkle root of events 1..30 recomputed from the store is " in mismatch
    assert mismatch.endswith(
        "(events 1..30 were altered, removed, inserted or reordered after it was signed); the "
        "checkpoint at size 20 still matches, so the change is in seqs 21..30"
    )


def test_truncate_without_appending(data_dir: Path) -> None:
    _rewrite_tail(data_dir, keep=25, new=0)
    (found,) = problems(data_dir)
    assert found.startswith("checkpoint at size 30 (")
    assert found.endswith(
        "the log holds only 25 events; events 26..30 were removed (the log was truncated or "
        "rolled back)"
    )


def test_tampered_tile_is_reported(data_dir: Path) -> None:
    """The leaf at index 12 (seq 13) zeroed inside the level-0 tile."""
    conn = db(data_dir)
    conn.execute(
        "UPDATE merkle_tiles SET hashes = CAST(substr(hashes, 1, 12 * 32) || zeroblob(32)"
        " || substr(hashes, 13 * 32 + 1) AS BLOB) WHERE level = 0 AND idx = 0"
    )
    conn.close()
    (found,) = problems(data_dir)
    assert found.startswith("seq 13: the event hashes to ")
    assert "but the Merkle tree committed 0000000000000000… at this seq" in found


# -- a consistent rebuild: only a witness holding an older checkpoint can tell ----------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    data_dir = tmp_path / "live"
    build_log(data_dir)
    out = cli(
        "keys", "create", "--tenant", "acme", "--scopes", "events:read", "--json",
        data_dir=data_dir,
    )  # fmt: skip
    server = LiveServer(
        data_dir=data_dir, port=free_port(), write_key=json.loads(out.stdout)["key"]
    )
    server.start()
    try:
        yield server, server.write_key
    finally:
        server.kill()


def witness(
    server: LiveServer, key: str, state: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUDITKEEP, "witness", "--server", server.url, "--key", key, "--state", str(state),
         "--once", *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("keep", "new", "fresh_key", "kind", "message"),
    [
        (20, 15, False, "fork", "is not an extension of the one at size 30"),
        (20, 15, True, "fork", "signed by no pinned key"),
        (20, 5, True, "rollback", "the tree shrank from size 30 to 25"),
    ],
)
def test_rebuilt_store_passes_verify_but_the_witness_alarms(
    tmp_path: Path,
    served: tuple[LiveServer, str],
    keep: int,
    new: int,
    fresh_key: bool,
    kind: str,
    message: str,
) -> None:
    server, key = served
    state = tmp_path / "witness"
    first = witness(server, key, state)
    assert first.returncode == 0, first.stderr
    vkey = httpx.get(server.url + "/v1/log/key").text.strip()
    server.stop()
    _rewrite_tail(server.data_dir, keep=keep, new=new, fresh_key=fresh_key)
    if fresh_key:
        # the rebuilt store is self-consistent: verify with the store's own keys passes ...
        out = verify(server.data_dir)
        assert out.returncode == 0, out.stdout
        assert f"tenant acme: {keep + new} events OK" in out.stdout
        # ... but not against the key published before the rebuild
        pinned = verify(server.data_dir, "--log-key", vkey)
        assert pinned.returncode == 1 and "no signature from a known key" in pinned.stdout
    server.start()
    alarm = witness(server, key, state)
    assert alarm.returncode == 2, alarm.stdout + alarm.stderr
    lines = [json.loads(line) for line in alarm.stderr.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] == "error"]
    assert errors and errors[0]["message"].startswith(f"ALARM {kind}: ")
    assert message in errors[0]["message"]
    evidence = list((state / "logs").glob(f"*/alarms/*-{kind}.json"))
    assert len(evidence) == 1
    saved = json.loads(evidence[0].read_text())
    assert saved["old_checkpoint"].split("\n")[1] == "30"


# -- the columns and rows beside the leaf data, on both stores ---------------------------------
#
# Searches, lookups by id and idempotency read these instead of the leaf data: an edit there
# changes answers while every hash still verifies. Each edit below leaves the leaf data, the
# hashes, the tree and the checkpoints alone; verify must still name the event.

_SQLITE_EDITS: dict[str, tuple[str, str]] = {
    # name: (SQL, the start of the problem verify must report)
    "actor_id": (
        "UPDATE events SET actor_id = 'user_2' WHERE seq = 7",
        "seq 7: the indexed actor_id differs from the event's: the column holds 'user_2', "
        "the event says 'user_1'",
    ),
    "action": (
        "UPDATE events SET action = 'user.logout' WHERE seq = 7",
        "seq 7: the indexed action differs from the event's: the column holds 'user.logout'",
    ),
    "outcome": (
        "UPDATE events SET outcome = 'failure' WHERE seq = 7",
        "seq 7: the indexed outcome differs from the event's: the column holds 'failure', "
        "the event says 'success'",
    ),
    "category": (
        "UPDATE events SET category = 'security' WHERE seq = 7",
        "seq 7: the indexed category differs from the event's: the column holds 'security'",
    ),
    "occurred_at": (
        "UPDATE events SET occurred_at = occurred_at + 86400000000 WHERE seq = 7",
        "seq 7: the indexed occurred_at differs from the event's: the column holds "
        "2026-11-24T10:00:00.000000Z, the event says 2026-11-23T10:00:00.000000Z",
    ),
    "received_at": (
        "UPDATE events SET received_at = received_at + 1 WHERE seq = 7",
        "seq 7: the indexed received_at differs from the event's",
    ),
    "id": (
        "UPDATE events SET id = 'evt-forged' WHERE seq = 7",
        "seq 7: the indexed id differs from the event's: the column holds 'evt-forged'",
    ),
    "actor_id as a blob": (  # the same characters, but a TEXT search term never matches a BLOB
        "UPDATE events SET actor_id = CAST('user_1' AS BLOB) WHERE seq = 7",
        "seq 7: the indexed actor_id differs from the event's",
    ),
    "target removed": (
        "DELETE FROM event_targets WHERE seq = 7",
        "seq 7: event_targets has no row for the event's target (type 'document', id 'doc_1')",
    ),
    "target added": (
        "INSERT INTO event_targets SELECT tenant_id, seq, 'document', 'doc_99', occurred_at "
        "FROM events WHERE seq = 7",
        "seq 7: event_targets has a row for target (type 'document', id 'doc_99'), which the "
        "event does not name",
    ),
    "target changed": (
        "UPDATE event_targets SET target_id = 'doc_2' WHERE seq = 7",
        "seq 7: event_targets has a row for target (type 'document', id 'doc_2')",
    ),
    "target time changed": (
        "UPDATE event_targets SET occurred_at = 0 WHERE seq = 7",
        "seq 7: the event_targets row for target (type 'document', id 'doc_1') has occurred_at "
        "1970-01-01T00:00:00.000000Z",
    ),
    "target row for no event": (
        "INSERT INTO event_targets SELECT tenant_id, 31, target_type, target_id, occurred_at "
        "FROM event_targets WHERE seq = 7",
        "seq 31: event_targets has 1 row(s) for it, but the log holds no event with this seq",
    ),
    "target row before the log": (
        "INSERT INTO event_targets SELECT tenant_id, 0, target_type, target_id, occurred_at "
        "FROM event_targets WHERE seq = 7",
        "seq 0: event_targets has 1 row(s) for it, but the log holds no event with this seq",
    ),
}

# PostgreSQL keeps actor and target ids as UTF-8 bytea, event_targets carries received_at, and
# idempotency and lookups by id go through event_ids
_PG_EDITS: dict[str, tuple[str, str]] = {
    **_SQLITE_EDITS,
    "actor_id": (
        "UPDATE events SET actor_id = convert_to('user_2', 'UTF8') WHERE seq = 7",
        _SQLITE_EDITS["actor_id"][1],
    ),
    "actor_id as a blob": (
        "UPDATE events SET actor_id = convert_to('user_1 ', 'UTF8') WHERE seq = 7",
        "seq 7: the indexed actor_id differs from the event's: the column holds 'user_1 '",
    ),
    "target added": (
        "INSERT INTO event_targets SELECT tenant_id, seq, 'document', convert_to('doc_99', "
        "'UTF8'), occurred_at, received_at FROM events WHERE seq = 7",
        _SQLITE_EDITS["target added"][1],
    ),
    "target changed": (
        "UPDATE event_targets SET target_id = convert_to('doc_2', 'UTF8') WHERE seq = 7",
        _SQLITE_EDITS["target changed"][1],
    ),
    "target row for no event": (
        "INSERT INTO event_targets SELECT tenant_id, 31, target_type, target_id, occurred_at, "
        "received_at FROM event_targets WHERE seq = 7",
        _SQLITE_EDITS["target row for no event"][1],
    ),
    "target row before the log": (
        "INSERT INTO event_targets SELECT tenant_id, 0, target_type, target_id, occurred_at, "
        "received_at FROM event_targets WHERE seq = 7",
        _SQLITE_EDITS["target row before the log"][1],
    ),
    "event_ids removed": (
        "DELETE FROM event_ids WHERE id = 'evt-7'",
        "seq 7: event_ids has no row for the event's id 'evt-7'",
    ),
    "event_ids seq": (
        "UPDATE event_ids SET seq = 8 WHERE id = 'evt-7'",
        "seq 7: event_ids maps the event's id 'evt-7' to seq 8",
    ),
    "event_ids content": (
        "UPDATE event_ids SET content_hash = sha256('x') WHERE id = 'evt-7'",
        "seq 7: event_ids holds another content hash for the event's id 'evt-7'",
    ),
    "event_ids alias": (
        "INSERT INTO event_ids SELECT tenant_id, 'evt-alias', seq, content_hash FROM event_ids "
        "WHERE id = 'evt-7'",
        "event_ids has a row for id 'evt-alias' pointing at seq 7, which holds another event",
    ),
}


def _execute(settings: dict[str, Any], data_dir: Path, statement: str) -> None:
    url = settings.get("database_url")
    if url is None:
        conn = db(data_dir)
        conn.execute(statement)
        conn.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(statement.encode())


def _verify_problems(settings: dict[str, Any], data_dir: Path) -> list[str]:
    env = {**os.environ}
    if "database_url" in settings:
        env["AUDITKEEP_DATABASE_URL"] = settings["database_url"]
    out = subprocess.run(
        [*AUDITKEEP, "verify", "--json", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    (report,) = json.loads(out.stdout)
    assert report["ok"] == (out.returncode == 0)
    result: list[str] = report["problems"]
    return result


@pytest.fixture
def built(tmp_path: Path, store_settings: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    data_dir = tmp_path / "data"
    build_log(data_dir, **store_settings)
    assert _verify_problems(store_settings, data_dir) == []
    return store_settings, data_dir


@pytest.mark.parametrize("edit", sorted(_PG_EDITS))
def test_an_edit_beside_the_leaf_data_is_named(
    built: tuple[dict[str, Any], Path], edit: str
) -> None:
    settings, data_dir = built
    edits = _PG_EDITS if "database_url" in settings else _SQLITE_EDITS
    if edit not in edits:
        pytest.skip("PostgreSQL only (SQLite keeps event ids in events, checked above)")
    statement, expected = edits[edit]
    _execute(settings, data_dir, statement)
    found = _verify_problems(settings, data_dir)
    assert found, f"verify passed after: {statement}"
    assert found[0].startswith(expected), found
    # nothing else is wrong: the leaf data, hashes, tree and checkpoints are intact
    assert not any("hash" in p and "content hash" not in p for p in found), found
    assert not any(p.startswith(("checkpoint", "Merkle")) for p in found), found


def test_an_edited_actor_id_moves_the_event_between_searches(
    built: tuple[dict[str, Any], Path],
) -> None:
    """What the edit does, and what verify now says about it."""
    settings, data_dir = built
    edits = _PG_EDITS if "database_url" in settings else _SQLITE_EDITS
    _execute(settings, data_dir, edits["actor_id"][0])
    core = make_core(data_dir, checkpoint_interval=0, **settings)
    try:
        acme = core.tenant("acme")
        found = core.query_events(acme.tenant_id, {"actor_id": "user_2"})["data"]
        assert [e["seq"] for e in found] == [7]  # the event of user_1 shows up under user_2
        assert found[0]["actor"]["id"] == "user_1"
    finally:
        core.close()
    (problem,) = _verify_problems(settings, data_dir)
    assert problem.startswith("seq 7: the indexed actor_id differs")


def test_events_appended_while_verify_runs_are_not_taken_for_edits(
    built: tuple[dict[str, Any], Path],
) -> None:
    """verify reads the log's size first, then checks in snapshots of their own, while a
    server may append: the rows of events beyond the size read are not orphans."""
    settings, data_dir = built
    core = make_core(data_dir, checkpoint_interval=0, **settings)
    try:
        acme = core.tenant("acme")
        verifiers = core.keys.verifiers()
        inp = stored_log_input(core.store, acme, core.tlog.origin("acme"), verifiers, pinned=False)
        more = [prepare_event(event(f"late{i}"), "acme", now_micros()) for i in range(5)]
        core.start()
        core.writer.append_sync(acme.tenant_id, more)
        report = verify_store_log(inp, jobs=1, chunk=8)  # the last chunk ends at seq 30
    finally:
        core.close()
    assert report.ok and report.checked == 30, report.problems
