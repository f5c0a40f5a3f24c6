"""The auditkeep CLI, run as a user runs it: on a data directory and against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.conftest import LiveServer, cli, event, free_port

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


def _operator_key(server: LiveServer) -> str:
    m = re.search(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}", server.log())
    assert m, server.log()
    return m.group(0)


def test_first_start_prints_where_it_listens_and_an_operator_key(tmp_path: Path) -> None:
    server = LiveServer(data_dir=tmp_path / "fresh", port=free_port())
    server.start()
    try:
        log = server.log()
        assert f"listening on http://127.0.0.1:{server.port}" in log
        key = _operator_key(server)
        assert "shown ONCE" in log
        # the key is not in the server's JSON log lines, only in the one-time banner
        json_lines = [line for line in log.splitlines() if line.startswith("{")]
        assert json_lines and not any(key in line for line in json_lines)
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
        server.start()
        assert len(re.findall(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}", server.log())) == 1
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
