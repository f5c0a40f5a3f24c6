"""The SQLite outbox on its own: leases, settling, dead letters, caps, durability, fork."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

from auditkeep_client import AuditKeep, OutboxFull
from auditkeep_client.outbox import Outbox, make_owner


def _body(i: int) -> bytes:
    return json.dumps({"id": f"e{i}", "n": i}).encode()


def test_append_claim_settle(outbox_path: Path) -> None:
    ob = Outbox(outbox_path)
    seqs = [ob.append(f"e{i}", _body(i)) for i in range(10)]
    assert seqs == sorted(seqs) and ob.last_seq == seqs[-1]
    a = ob.claim("A", limit=4, max_bytes=1 << 20, lease_seconds=30)
    b = ob.claim("B", limit=100, max_bytes=1 << 20, lease_seconds=30)
    assert [r.id for r in a] == ["e0", "e1", "e2", "e3"]
    assert [r.id for r in b] == [f"e{i}" for i in range(4, 10)]
    assert ob.claim("C", limit=100, max_bytes=1 << 20, lease_seconds=30) == []
    assert ob.stats().leased == 10
    ob.settle([r.seq for r in a[:3]], [(a[3].seq, 200, {"title": "Conflict"})])
    st = ob.stats()
    assert (st.pending, st.dead) == (6, 1)
    assert ob.pending_through(a[3].seq) is False
    assert ob.pending_through(b[0].seq) is True
    dead = list(ob.dead_letters())
    assert dead[0].id == "e3" and dead[0].error == {"title": "Conflict"}
    assert dead[0].event() == {"id": "e3", "n": 3}
    ob.close()


def test_byte_limit_takes_at_least_one(outbox_path: Path) -> None:
    ob = Outbox(outbox_path)
    for i in range(5):
        ob.append(f"e{i}", b"x" * 1000)
    rows = ob.claim("A", limit=100, max_bytes=2500, lease_seconds=30)
    assert len(rows) == 2
    rows = ob.claim("A", limit=100, max_bytes=10, lease_seconds=30)
    assert len(rows) == 1  # a single oversized row still goes (the server judges it)
    ob.close()


def test_expired_lease_is_reclaimed_and_renew_reports_loss(outbox_path: Path) -> None:
    ob = Outbox(outbox_path)
    ob.append("e1", _body(1))
    a = ob.claim("A", limit=10, max_bytes=1 << 20, lease_seconds=0.05)
    assert len(a) == 1
    assert ob.claim("B", limit=10, max_bytes=1 << 20, lease_seconds=30) == []
    time.sleep(0.1)
    b = ob.claim("B", limit=10, max_bytes=1 << 20, lease_seconds=30)
    assert [r.id for r in b] == ["e1"] and b[0].attempts == 2
    assert ob.renew("A", [a[0].seq], 30) == []  # A lost it
    assert ob.renew("B", [b[0].seq], 30) == [b[0].seq]
    assert ob.release("B") == 1
    assert len(ob.claim("C", limit=10, max_bytes=1 << 20, lease_seconds=30)) == 1
    ob.close()


def test_leases_of_dead_local_processes_are_reclaimed(outbox_path: Path) -> None:
    ob = Outbox(outbox_path)
    ob.append("e1", _body(1))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    owner = f"{proc.pid}@{os.uname().nodename}/dead"
    ob.claim(owner, limit=10, max_bytes=1 << 20, lease_seconds=600)
    assert ob.claim("B", limit=10, max_bytes=1 << 20, lease_seconds=30) == []
    live = make_owner()  # this process: alive, never reclaimed
    assert ob.reclaim_orphans() == 1
    rows = ob.claim(live, limit=10, max_bytes=1 << 20, lease_seconds=600)
    assert len(rows) == 1 and ob.reclaim_orphans() == 0
    ob.close()


def test_dead_letter_retry_and_purge(outbox_path: Path) -> None:
    ob = Outbox(outbox_path)
    for i in range(3):
        ob.append(f"e{i}", _body(i))
    rows = ob.claim("A", limit=10, max_bytes=1 << 20, lease_seconds=30)
    ob.settle([], [(r.seq, 200, {"detail": f"bad {r.id}"}) for r in rows])
    assert ob.stats().dead == 3 and ob.stats().pending == 0
    assert ob.retry_dead(["e1"]) == 1
    assert [r[1] for r in ob.pending_events()] == ["e1"]
    assert ob.purge_dead(["e0"]) == 1
    assert [d.id for d in ob.dead_letters()] == ["e2"]
    assert ob.purge_dead() == 1 and ob.stats().dead == 0
    ob.close()


def test_synchronous_setting_is_applied(outbox_path: Path) -> None:
    for mode, expected in (("NORMAL", 1), ("FULL", 2), ("EXTRA", 3)):
        ob = Outbox(outbox_path, synchronous=mode)  # type: ignore[arg-type]
        ob.append("x", b"{}")
        assert ob._wconn is not None
        assert ob._wconn.execute("PRAGMA synchronous").fetchone()[0] == expected
        assert ob._wconn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        ob.close()
    with pytest.raises(ValueError):
        Outbox(outbox_path, synchronous="OFF")  # type: ignore[arg-type]


def test_file_is_private(outbox_path: Path) -> None:
    Outbox(outbox_path).close()
    assert oct(outbox_path.stat().st_mode & 0o777) == "0o600"


# -- full outbox -------------------------------------------------------------------------------


def test_pending_cap_raises(outbox_path: Path) -> None:
    ob = Outbox(outbox_path, max_pending_events=5)
    for i in range(5):
        ob.append(f"e{i}", _body(i))
    with pytest.raises(OutboxFull) as info:
        ob.append("e5", _body(5))
    assert info.value.pending_events == 5
    assert ob.stats().pending == 5
    ob.close()


def test_byte_cap_raises(outbox_path: Path) -> None:
    ob = Outbox(outbox_path, max_pending_bytes=3000)
    ob.append("a", b"x" * 2000)
    with pytest.raises(OutboxFull):
        ob.append("b", b"x" * 2000)
    ob.close()


def test_pending_cap_blocks_until_room(outbox_path: Path) -> None:
    ob = Outbox(outbox_path, max_pending_events=3)
    for i in range(3):
        ob.append(f"e{i}", _body(i))

    def drain() -> None:
        time.sleep(0.3)
        rows = ob.claim("A", limit=2, max_bytes=1 << 20, lease_seconds=30)
        ob.settle([r.seq for r in rows])

    t = threading.Thread(target=drain)
    t.start()
    start = time.monotonic()
    ob.append("e3", _body(3), block_timeout=5)
    waited = time.monotonic() - start
    t.join()
    assert 0.2 < waited < 4
    assert ob.stats().pending == 2
    with pytest.raises(OutboxFull):
        ob.append("e4", _body(4), block_timeout=0.01)  # 3 pending again... one more fits
        ob.append("e5", _body(5), block_timeout=0.2)
    ob.close()


def test_disk_full_raises_outbox_full(outbox_path: Path) -> None:
    """SQLite's 'database or disk is full' (made real here with max_page_count) is reported
    as OutboxFull, not swallowed; with on_full='block' after the timeout."""
    client = AuditKeep(
        "k",
        endpoints=["http://127.0.0.1:9"],
        outbox=outbox_path,
        start_sender=False,
        _max_page_count=12,
        flush_on_exit=0,
    )
    big = {"blob": "x" * 3000}
    stored = 0
    with pytest.raises(OutboxFull) as info:
        for i in range(100):
            client.log("file.upload", actor="u1", metadata={**big, "i": i})
            stored += 1
    assert "full" in str(info.value)
    assert 0 < stored < 100
    assert client.outbox_stats().pending == stored  # everything log() accepted is there
    client.on_full = "block"
    client.full_timeout = 0.3
    start = time.monotonic()
    with pytest.raises(OutboxFull):
        client.log("file.upload", actor="u1", metadata=big)
    assert time.monotonic() - start >= 0.25
    client.close(0)


# -- durability across a kill and across fork ------------------------------------------------------

KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from auditkeep_client import AuditKeep
    c = AuditKeep("k", endpoints=["http://127.0.0.1:9"], outbox=sys.argv[1], start_sender=False)
    ids = [c.log("user.login", actor={"id": f"u{i}"}) for i in range(50)]
    print(" ".join(ids), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_logged_events_survive_sigkill(outbox_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(outbox_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    ids = proc.stdout.split()
    assert len(ids) == 50
    ob = Outbox(outbox_path)
    assert [r[1] for r in ob.pending_events()] == ids
    ob.close()


def test_fork_child_and_parent_both_write(outbox_path: Path) -> None:
    ob = Outbox(outbox_path)
    ob.append("before", b"{}")
    with warnings.catch_warnings():  # 3.12+ warns about fork() in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: the inherited connections were closed before the fork
        code = 0
        try:
            for i in range(200):
                ob.append(f"child{i}", b"{}")
            ob.close()
        except BaseException:
            code = 1
        os._exit(code)
    for i in range(200):
        ob.append(f"parent{i}", b"{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    ids = [r[1] for r in ob.pending_events()]
    assert len(ids) == 401 and len(set(ids)) == 401
    assert ob._sender_conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ob.close()


def test_two_processes_claim_disjoint_rows(outbox_path: Path) -> None:
    ob = Outbox(outbox_path)
    for i in range(2000):
        ob.append(f"e{i}", _body(i))
    script = textwrap.dedent(
        """
        import sys, json
        from auditkeep_client.outbox import Outbox, make_owner
        ob = Outbox(sys.argv[1]); me = make_owner(); got = []
        while True:
            rows = ob.claim(me, limit=7, max_bytes=1 << 20, lease_seconds=60)
            if not rows:
                break
            got += [r.id for r in rows]
            ob.settle([r.seq for r in rows])
        print(json.dumps(got))
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(outbox_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    all_ids = [i for out in outs for i in out]
    assert len(all_ids) == 2000 and len(set(all_ids)) == 2000
    assert ob.stats().pending == 0
    ob.close()


def test_outbox_survives_sqlite_error_messages(outbox_path: Path) -> None:
    ob = Outbox(outbox_path)
    ob.close()
    with pytest.raises(RuntimeError):
        ob.append("x", b"{}")
    assert isinstance(sqlite3.sqlite_version, str)
