"""`auditkeep witness` against a real server: normal growth, key rotation, alarms."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AUDITKEEP, LiveServer, cli, event, free_port, start_live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    s = start_live_server(tmp_path)
    try:
        yield s
    finally:
        s.kill()


class Hook:
    """A webhook receiver on loopback that keeps the JSON bodies it was sent."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/alarm"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    try:
        yield h
    finally:
        h.close()


def ingest_and_sign(server: LiveServer, start: int, n: int) -> int:
    headers = {"Authorization": f"Bearer {server.write_key}"}
    events = {"events": [event(i) for i in range(start, start + n)]}
    assert httpx.post(server.url + "/v1/events", json=events, headers=headers).is_success
    signed = httpx.post(server.url + "/v1/log/checkpoints", headers=headers)
    assert signed.is_success, signed.text
    size: int = signed.json()["size"]
    return size


def witness(
    server: LiveServer, state: Path, *extra: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUDITKEEP, "witness", "--server", server.url, "--key", key or server.write_key,
         "--state", str(state), "--once", *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def log_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_growth_is_accepted_stored_and_published(server: LiveServer, tmp_path: Path) -> None:
    state, public = tmp_path / "state", tmp_path / "public"
    ingest_and_sign(server, 0, 5)
    first = witness(server, state, "--publish-dir", str(public))
    assert first.returncode == 0, first.stderr
    assert any("trusting auditkeep.local/acme's key(s) on first use" in line["message"]
               for line in log_lines(first))  # fmt: skip
    ingest_and_sign(server, 5, 20)
    grown = witness(server, state, "--publish-dir", str(public))
    assert grown.returncode == 0, grown.stderr
    assert any("grew from 5 to 25, consistent" in line["message"] for line in log_lines(grown))
    # quiet by default: the witness's own lines only, no line per HTTP request
    assert {line["logger"] for line in log_lines(grown)} == {"auditkeep.witness"}, grown.stderr
    assert "HTTP Request" not in grown.stderr
    again = witness(server, state, "--publish-dir", str(public))
    assert again.returncode == 0
    origin_dir = state / "logs" / "auditkeep.local%2Facme"
    history = [
        json.loads(line) for line in (origin_dir / "history.ndjson").read_text().splitlines()
    ]
    assert [h["size"] for h in history] == [5, 25]
    published = public / "auditkeep.local%2Facme"
    assert sorted(p.name for p in (published / "checkpoints").iterdir()) == ["25", "5"]
    assert (published / "checkpoint").read_bytes() == (origin_dir / "checkpoint").read_bytes()
    assert (published / "keys").read_text() == httpx.get(server.url + "/v1/log/key").text


def test_key_rotation_with_overlap_is_followed(server: LiveServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ingest_and_sign(server, 0, 3)
    old_key = httpx.get(server.url + "/v1/log/key").text.strip()
    assert witness(server, state, "--log-key", old_key).returncode == 0
    rotated = cli("log", "rotate-key", data_dir=server.data_dir)
    assert "new signing key: auditkeep.local+" in rotated.stdout
    overlap = witness(server, state)  # signed by both: the new key is learned
    assert overlap.returncode == 0, overlap.stderr
    assert any("pinned new key" in line["message"] for line in log_lines(overlap))
    assert "retired " + old_key in cli("log", "retire-key", data_dir=server.data_dir).stdout
    ingest_and_sign(server, 3, 4)
    after = witness(server, state)
    assert after.returncode == 0, after.stderr
    keys = (state / "logs" / "auditkeep.local%2Facme" / "keys").read_text().split()
    assert len(keys) == 2 and keys[0] == old_key


def test_unannounced_key_change_is_an_alarm(server: LiveServer, tmp_path: Path, hook: Hook) -> None:
    state = tmp_path / "state"
    ingest_and_sign(server, 0, 3)
    assert witness(server, state).returncode == 0
    server.stop()
    with sqlite3.connect(server.data_dir / "auditkeep.db") as conn:
        conn.execute("DELETE FROM signing_keys")
    shutil.rmtree(server.data_dir / "keys")
    server.start()  # a new key is made; the checkpoint is signed again with it
    alarm = witness(server, state, "--webhook", hook.url)
    assert alarm.returncode == 2, alarm.stderr
    (error,) = [line for line in log_lines(alarm) if line["level"] == "error"]
    assert error["message"].startswith(
        "ALARM key_changed: the checkpoint of auditkeep.local/acme is signed by no pinned key"
    )
    (sent,) = hook.received
    assert sent["alarm"] == "key_changed" and sent["origin"] == "auditkeep.local/acme"
    assert sent["old_checkpoint"] and sent["new_checkpoint"]
    # the alarm persists: the witness keeps the old checkpoint and key
    assert witness(server, state).returncode == 2


def test_rollback_reaches_the_webhook(server: LiveServer, tmp_path: Path, hook: Hook) -> None:
    state = tmp_path / "state"
    ingest_and_sign(server, 0, 10)
    assert witness(server, state).returncode == 0
    server.stop()
    with sqlite3.connect(server.data_dir / "auditkeep.db") as conn:  # restore an old backup
        conn.execute("DELETE FROM events WHERE seq > 4")
        conn.execute("DELETE FROM checkpoints WHERE size > 4")
        conn.execute("DELETE FROM merkle_tiles")
        conn.execute("UPDATE log_heads SET size = 4, frontier = NULL, root = NULL")
    server.start()
    httpx.post(
        server.url + "/v1/log/checkpoints",
        headers={"Authorization": f"Bearer {server.write_key}"},
    )
    alarm = witness(server, state, "--webhook", hook.url)
    assert alarm.returncode == 2
    (sent,) = hook.received
    assert sent["alarm"] == "rollback"
    assert sent["detail"].startswith(
        "auditkeep.local/acme: the tree shrank from size 10 to 4 (rollback)"
    )


def test_unreachable_server_is_not_an_alarm(tmp_path: Path) -> None:
    down = LiveServer(
        data_dir=tmp_path, port=free_port(), write_key="ak_" + "a" * 12 + "_" + "b" * 43
    )
    result = witness(down, tmp_path / "state")
    assert result.returncode == 1
    assert any("cannot reach" in line["message"] for line in log_lines(result))


def test_loop_mode_polls_until_an_alarm(server: LiveServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ingest_and_sign(server, 0, 6)
    assert witness(server, state).returncode == 0
    # the witness now remembers a larger tree than the server will show
    note = (state / "logs" / "auditkeep.local%2Facme" / "checkpoint").read_bytes()
    assert b"\n6\n" in note
    server.stop()
    with sqlite3.connect(server.data_dir / "auditkeep.db") as conn:
        conn.execute("DELETE FROM events WHERE seq > 2")
        conn.execute("DELETE FROM checkpoints")
        conn.execute("DELETE FROM merkle_tiles")
        conn.execute("UPDATE log_heads SET size = 2, frontier = NULL, root = NULL")
    server.start()
    looping = subprocess.run(
        [*AUDITKEEP, "witness", "--server", server.url, "--key", server.write_key,
         "--state", str(state), "--interval", "0.2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert looping.returncode == 2
    assert "ALARM rollback" in looping.stderr


def test_witnesses_sharing_a_publish_dir_detect_a_split_view(
    server: LiveServer, tmp_path: Path
) -> None:
    """Two clients are shown different logs under one origin: each witness alone is content,
    their shared publish directory is not."""
    public = tmp_path / "public"
    ingest_and_sign(server, 0, 5)
    assert witness(server, tmp_path / "a", "--publish-dir", str(public)).returncode == 0
    other = start_live_server(tmp_path)  # same origin (auditkeep.local/acme), other events
    try:
        ingest_and_sign(other, 100, 5)
        alarm = witness(other, tmp_path / "b", "--publish-dir", str(public))
        assert alarm.returncode == 2, alarm.stderr
        (error,) = [line for line in log_lines(alarm) if line["level"] == "error"]
        assert error["message"].startswith("ALARM fork: auditkeep.local/acme: ")
        assert "holds a different root for size 5" in error["message"]
        assert not (tmp_path / "b" / "logs" / "auditkeep.local%2Facme" / "checkpoint").exists()
    finally:
        other.kill()
