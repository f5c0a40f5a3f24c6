"""The auditkeep CLI, run as a user runs it: on a data directory and against a real server."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.conftest import AUDITKEEP, LiveServer, cli, event, free_port

pg_database_url = pg.pg_database_url  # the harness's fixture, bound by name

pg_database_url = pg.pg_database_url  # the harness's fixture, bound by name


def test_tenants_and_keys_on_a_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert "created tenant acme" in cli("tenants", "create", "acme", data_dir=data).stdout
    out = cli(
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "events:write,events:read",
        "--json",
        data_dir=data,
    )
    created = json.loads(out.stdout)
    assert re.fullmatch(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}", created["key"])
    assert created["scopes"] == ["events:read", "events:write"]
    listing = cli("keys", "list", "--tenant", "acme", data_dir=data).stdout
    assert created["key_id"] in listing and "active" in listing and created["key"] not in listing
    revoked = cli("keys", "revoke", created["key_id"], "--tenant", "acme", data_dir=data).stdout
    assert f"revoked {created['key_id']}" in revoked
    assert "revoked" in cli("keys", "list", "--tenant", "acme", data_dir=data).stdout
    tenants = json.loads(cli("tenants", "list", "--json", data_dir=data).stdout)
    assert [t["slug"] for t in tenants] == ["acme"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tenants", "create", "Bad Name"], "not a valid tenant name"),
        (
            ["keys", "create", "--tenant", "nope", "--scopes", "events:read"],
            "no tenant named 'nope'",
        ),
        (["keys", "create", "--tenant", "acme", "--scopes", "events:delete"], "unknown scope"),
        (["keys", "revoke", "ak_xxxxxxxxxxxx", "--tenant", "acme"], "has no key"),
        (["events", "search"], "--tenant is required"),
        (["events", "search", "--tenant", "acme", "--since", "yesterday"], "RFC 3339"),
        (
            ["keys", "create", "--tenant", "acme", "--scopes", "events:read", "--expires", "x"],
            "expires_at: 'x' is not an RFC 3339 timestamp",
        ),
        (
            [
                *["keys", "create", "--tenant", "acme", "--scopes", "events:read"],
                *["--expires", "9999-12-31T23:59:59-01:00"],
            ],
            "outside the supported range",
        ),
        (
            ["events", "search", "--tenant", "acme", "--until", "9999-12-31T23:59:59-01:00"],
            "outside the supported range",
        ),
    ],
)
def test_bad_cli_input_gives_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    data = tmp_path / "data"
    cli("tenants", "create", "acme", data_dir=data)
    result = cli(*args, data_dir=data, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    result = cli(
        "tenants", "list", "--server", f"http://127.0.0.1:{free_port()}", "--key", "k", check=False
    )
    assert result.returncode == 1 and "cannot reach" in result.stderr


_KEY = re.compile(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


def test_first_start_without_a_terminal_keeps_the_operator_key_out_of_the_log(
    tmp_path: Path,
) -> None:
    """The attack: stderr goes to a log collector (here a file), which keeps whatever the
    first start prints. The key must be in a 0600 file in the data directory, not the log."""
    server = LiveServer(data_dir=tmp_path / "fresh", port=free_port())
    server.start()
    try:
        log = server.log()
        assert f"listening on http://127.0.0.1:{server.port}" in log
        key_file = server.data_dir / "keys" / "operator-key.txt"
        assert str(key_file) in log  # the log says where it is
        key = key_file.read_text().strip()
        assert _KEY.fullmatch(key)
        assert not _KEY.search(log) and key.split("_")[-1] not in log
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert not list(key_file.parent.glob(".operator-key.txt.*"))  # no temporary left
        # the CLI works over HTTP with the operator key
        url = ["--server", server.url, "--key", key]
        assert "created tenant acme" in cli("tenants", "create", "acme", *url).stdout
        created = json.loads(
            cli(
                "keys",
                "create",
                "--tenant",
                "acme",
                "--scopes",
                "events:write,events:read",
                "--json",
                *url,
            ).stdout
        )
        r = httpx.post(
            server.url + "/v1/events",
            json={"events": [event(i) for i in range(3)]},
            headers={"Authorization": f"Bearer {created['key']}"},
        )
        assert r.json()["accepted"] == 3
        reader = ["--server", server.url, "--key", created["key"]]
        table = cli("events", "search", *reader).stdout
        assert "user.login" in table and "user:user_1" in table and "SEQ" in table
        ndjson = cli("events", "search", "--json", "--action", "user.*", *reader).stdout
        assert len(ndjson.splitlines()) == 3
        tail = cli("events", "tail", "-n", "2", *reader).stdout.splitlines()
        assert [line.split()[0] for line in tail] == ["2", "3"]
        verified = cli("verify", *reader)
        assert "3 events OK" in verified.stdout
        # a second start of the same data directory creates no new operator key
        server.stop()
        key_file.unlink()  # as the banner asks, once the key is in a secret store
        server.start()
        assert not key_file.exists() and not _KEY.search(server.log())
        denied = cli("tenants", "list", *reader, check=False)
        assert denied.returncode == 1 and "403" in denied.stderr
    finally:
        server.kill()


def test_search_and_verify_on_a_data_directory(tmp_path: Path, live_server: LiveServer) -> None:
    httpx.post(
        live_server.url + "/v1/events",
        json={"events": [event(i, actor={"id": f"u{i % 2}"}) for i in range(10)]},
        headers={"Authorization": f"Bearer {live_server.write_key}"},
    )
    data = live_server.data_dir
    found = cli("events", "search", "--tenant", "acme", "--actor", "u1", "--json", data_dir=data)
    assert len(found.stdout.splitlines()) == 5
    paged = cli(
        "events", "search", "--tenant", "acme", "--limit", "3", "--all", "--json", data_dir=data
    )
    assert len(paged.stdout.splitlines()) == 10
    assert "10 events OK" in cli("verify", data_dir=data).stdout


def test_first_start_on_a_terminal_shows_the_operator_key(tmp_path: Path) -> None:
    """A person running `auditkeep serve` (scripts/serve.sh) in a terminal sees the key."""
    data = tmp_path / "fresh"
    port = free_port()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*AUDITKEEP, "serve", "--data-dir", str(data), "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    try:
        shown = b""
        deadline = time.monotonic() + 30
        while _KEY.search(shown.decode(errors="replace")) is None:
            assert time.monotonic() < deadline and proc.poll() is None, shown
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    shown += os.read(leader, 65536)
                except OSError:  # the terminal closed: the process is gone
                    break
        text = shown.decode(errors="replace")
        m = _KEY.search(text)
        assert m and "shown ONCE" in text, text
        assert not (data / "keys" / "operator-key.txt").exists()
        deadline = time.monotonic() + 30
        while True:  # the key it showed is the operator key of this server
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/v1/tenants",
                    headers={"Authorization": f"Bearer {m.group(0)}"},
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200
    finally:
        proc.kill()
        proc.wait(timeout=30)
        os.close(leader)


def test_commands_take_the_postgresql_store_by_flag_or_environment(
    tmp_path: Path, pg_database_url: str
) -> None:
    """`migrate --database-url` (no data directory made), the store commands with
    --database-url or AUDITKEEP_DATABASE_URL, and `migrate` with neither is an error."""
    auditkeep = [sys.executable, "-m", "auditkeep.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*auditkeep, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**env, **extra},
        )

    bare = run("migrate")
    assert bare.returncode == 2 and "--database-url" in bare.stderr, bare.stderr
    assert not (tmp_path / "auditkeep-data").exists()

    migrated = run("migrate", "--database-url", pg_database_url)
    assert migrated.returncode == 0 and "schema is at version" in migrated.stdout, migrated.stderr
    assert not (tmp_path / "auditkeep-data").exists()

    data = str(tmp_path / "node")
    made = run("tenants", "create", "acme", "--data-dir", data, "--database-url", pg_database_url)
    assert made.returncode == 0, made.stderr
    listed = run(
        "tenants", "list", "--json", "--data-dir", data, AUDITKEEP_DATABASE_URL=pg_database_url
    )
    assert [t["slug"] for t in json.loads(listed.stdout)] == ["acme"], listed.stderr
    assert not (tmp_path / "node" / "auditkeep.db").exists()  # nothing went to SQLite
    for command in (["migrate"], ["tenants", "list"], ["verify"], ["log", "rotate-key"]):
        shown = run(*command, "--help").stdout
        assert "--database-url" in shown and "AUDITKEEP_DATABASE_URL" in shown, command
