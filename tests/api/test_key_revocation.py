"""A key revoked by another process stops working on a running server: `auditkeep keys revoke
--data-dir` beside it, or another API node over the same PostgreSQL database. Real processes;
the attack is a revoked key that keeps working from a cache."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from auditkeep.auth import Authenticator
from auditkeep.store.sqlite import SQLiteStore
from tests.conftest import LiveServer, cli, create_tenant_key, free_port, start_live_server
from tests.pg import PgCluster, fresh_database

DB_ENV = "AUDITKEEP_DATABASE_URL"
# the default key_revocation_check is 0.25 s; the key cache (key_cache_seconds) is 5 s, so a
# revocation seen only when the cached entry expires would take ~5 s
BOUND = 1.5


def _status(server: LiveServer, key: str) -> httpx.Response:
    return httpx.get(
        server.url + "/v1/events", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def _seconds_until_refused(servers: list[LiveServer], key: str, timeout: float = 10.0) -> float:
    """Poll every server until each refuses ``key``; the seconds it took (bounded)."""
    started = time.monotonic()
    waiting = list(servers)
    while waiting:
        waiting = [s for s in waiting if _status(s, key).status_code != 401]
        assert time.monotonic() - started < timeout, "the revoked key still works"
        if waiting:
            time.sleep(0.02)
    return time.monotonic() - started


def _revoke_on_data_dir(data_dir: Path, key: str) -> None:
    key_id = "_".join(key.split("_")[:2])
    out = cli("keys", "revoke", key_id, "--tenant", "acme", data_dir=data_dir)
    assert "revoked " + key_id in out.stdout


def test_a_key_revoked_with_data_dir_stops_working_on_the_running_server(
    tmp_path: Path,
) -> None:
    server = start_live_server(tmp_path)
    try:
        key = create_tenant_key(server.data_dir, "acme", "events:read")
        assert _status(server, key).status_code == 200  # now in the server's key cache
        _revoke_on_data_dir(server.data_dir, key)
        took = _seconds_until_refused([server], key)
        assert took < BOUND, f"the revoked key worked for {took:.2f} s"
        refused = _status(server, key)
        assert refused.status_code == 401 and "was revoked at" in refused.json()["detail"]
        # the other keys still work (from the store, then the cache again)
        assert _status(server, server.write_key).status_code == 200
    finally:
        server.kill()


@pytest.fixture
def two_nodes(
    tmp_path: Path, pg_server: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[LiveServer]]:
    with fresh_database(pg_server) as url:
        monkeypatch.setenv(DB_ENV, url)  # for the CLI, and inherited by the nodes
        first = tmp_path / "node-1"
        key = create_tenant_key(first, "acme", "events:write,events:read")
        nodes = [LiveServer(data_dir=first, port=free_port(), write_key=key)]
        try:
            nodes[0].start()  # makes the signing key, which every node needs a copy of
            second = tmp_path / "node-2"
            second.mkdir()
            shutil.copytree(first / "keys", second / "keys")
            nodes.append(LiveServer(data_dir=second, port=free_port(), write_key=key))
            nodes[1].start()
            yield nodes
        finally:
            for node in nodes:
                node.kill()


def test_a_key_revoked_elsewhere_stops_working_on_every_api_node(
    two_nodes: list[LiveServer],
) -> None:
    first, _ = two_nodes
    key = create_tenant_key(first.data_dir, "acme", "events:read")
    for node in two_nodes:
        assert _status(node, key).status_code == 200  # cached on both nodes
    _revoke_on_data_dir(first.data_dir, key)  # a third process, over the same database
    took = _seconds_until_refused(two_nodes, key)
    assert took < BOUND, f"the revoked key worked for {took:.2f} s on some node"
    for node in two_nodes:
        assert _status(node, first.write_key).status_code == 200


def test_an_unreadable_store_is_reported_once_not_at_every_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "data")
    store.migrate()
    auth = Authenticator(store, revocation_check=0.25)
    auth.check_revocations()
    store.close()  # the store is away (PostgreSQL failing over, a disk gone)
    with caplog.at_level(logging.INFO, logger="auditkeep.auth"):
        for _ in range(8):  # two seconds of checks
            auth.check_revocations()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot check for revoked API keys" in warnings[0].message
