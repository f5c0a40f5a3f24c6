"""The PostgreSQL harness (tests/pg.py) itself: real clusters do what the other tests assume."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests import pg
from tests.pg import PgCluster

pytestmark = pytest.mark.timeout(120)

# The harness's fixtures, bound here by name (an import would trip ruff's F811 on the args).
pg_server = pg.pg_server
pg_database_url = pg.pg_database_url
pg_pair = pg.pg_pair


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    pg.require_postgres()
    directory = pg.make_pg_dir()
    node = PgCluster(directory, pg.free_port(), "solo")
    try:
        yield node.create()
    finally:
        pg.stop_all(node)
        pg.remove_pg_dir(directory)


class Blocked:
    """One statement run in a thread, so a test can watch it wait, with a deadline."""

    def __init__(self, node: PgCluster, statement: str) -> None:
        self.notices: list[str] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.conn = node.connect()
        self.conn.add_notice_handler(lambda d: self.notices.append(d.message_primary or ""))
        self.thread = threading.Thread(target=self._run, args=(statement,), daemon=True)
        self.thread.start()

    def _run(self, statement: str) -> None:
        try:
            self.conn.execute(statement)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def close(self) -> None:
        self.thread.join(10)
        self.conn.close()


def _sync_waiters(node: PgCluster) -> list[tuple[Any, ...]]:
    return node.execute("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'")


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def test_start_stop_kill_restart(cluster: PgCluster) -> None:
    assert cluster.is_running() and cluster.pid is not None
    assert "PostgreSQL" in cluster.psql("SELECT version()")
    cluster.execute("CREATE TABLE t (x int)")
    cluster.execute("INSERT INTO t VALUES (1)")
    open_tx = cluster.connect(autocommit=False)
    open_tx.execute("INSERT INTO t VALUES (2)")  # never committed

    pid = cluster.pid
    started = time.monotonic()
    cluster.kill()
    assert time.monotonic() - started < 5
    assert not cluster.is_running() and pg._process_gone(pid)
    with pytest.raises(psycopg.OperationalError):
        open_tx.execute("COMMIT")
    open_tx.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url(), connect_timeout=2)

    started = time.monotonic()
    cluster.start()  # crash recovery
    assert time.monotonic() - started < 10
    assert cluster.execute("SELECT x FROM t") == [(1,)]
    assert "redo" in cluster.log_path.read_text()  # it did run crash recovery

    cluster.stop()
    assert not cluster.is_running()
    cluster.stop()  # a no-op when stopped
    cluster.restart()
    assert cluster.scalar("SELECT count(*) FROM t") == 1
    assert cluster.scalar("SHOW fsync") == "on"
    assert cluster.scalar("SHOW listen_addresses") == pg.HOST


def test_create_and_drop_a_database(pg_server: PgCluster) -> None:
    name = "harness_db_check"
    pg_server.drop_database(name)
    url = pg_server.create_database(name)
    assert url == pg_server.url(name)
    held = psycopg.connect(url, autocommit=True)  # DROP ... FORCE does not wait for it
    held.execute("CREATE TABLE t (x int)")
    pg_server.drop_database(name)
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url, connect_timeout=2)
    pg_server.drop_database(name)  # IF EXISTS


def test_pg_database_url_is_a_fresh_database(pg_database_url: str, pg_server: PgCluster) -> None:
    with psycopg.connect(pg_database_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        ).fetchone()
        assert tables == (0,)
        db = conn.execute("SELECT current_database()").fetchone()
    assert db is not None
    assert db[0] in [r[0] for r in pg_server.execute("SELECT datname FROM pg_database")]


def test_password_user(pg_server: PgCluster) -> None:
    ok = pg_server.url("postgres", pg.APP_USER, pg.APP_PASSWORD)
    with psycopg.connect(ok, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (pg.APP_USER,)
    bad = pg_server.url("postgres", pg.APP_USER, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad, connect_timeout=5)


def test_replicated_pair_streams_synchronously(pg_pair: tuple[PgCluster, PgCluster]) -> None:
    primary, standby = pg_pair
    assert primary.port != standby.port
    assert not primary.is_in_recovery() and standby.is_in_recovery()
    assert primary.execute(
        "SELECT application_name, state, sync_state FROM pg_stat_replication"
    ) == [("standby", "streaming", "sync")]
    assert primary.scalar("SHOW synchronous_standby_names") == "*"
    assert primary.scalar("SHOW synchronous_commit") == "on"

    primary.execute("CREATE TABLE t (x int)")
    primary.execute("INSERT INTO t VALUES (1)")
    # The COMMIT waited for the standby's flush; replay follows within moments.
    _wait_for(lambda: standby.execute("SELECT x FROM t") == [(1,)], 10, "replay on the standby")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        standby.execute("INSERT INTO t VALUES (2)")

    # A multi-host URL with target_session_attrs=read-write lands on the primary, whatever
    # the order of the hosts.
    url = pg.multi_host_url(standby, primary)
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.info.port == primary.port


def test_commit_waits_for_the_standby(pg_pair: tuple[PgCluster, PgCluster]) -> None:
    primary, standby = pg_pair
    primary.execute("CREATE TABLE t (x int)")
    standby.stop()
    _wait_for(lambda: not primary.execute("SELECT 1 FROM pg_stat_replication"), 10, "walsender")

    blocked = Blocked(primary, "INSERT INTO t VALUES (1)")
    try:
        assert not blocked.done.wait(1.5), f"COMMIT returned without a standby: {blocked.error}"
        assert len(_sync_waiters(primary)) == 1  # waiting in SyncRep, committed only locally
        standby.start()
        assert blocked.done.wait(15), "COMMIT still waiting after the standby came back"
        assert blocked.error is None and blocked.notices == []
    finally:
        blocked.close()
    _wait_for(lambda: standby.execute("SELECT x FROM t") == [(1,)], 10, "replay on the standby")


def test_a_cancelled_sync_wait_reports_success_with_only_a_warning(
    pg_pair: tuple[PgCluster, PgCluster],
) -> None:
    """What a store must not mistake for an acknowledgement.

    statement_timeout does not bound the wait (PostgreSQL disarms it before committing); a
    cancel does end it, but the statement then *succeeds*, with only a WARNING that the
    transaction committed locally and might not be on the standby.
    """
    primary, standby = pg_pair
    primary.execute("CREATE TABLE t (x int)")
    standby.stop()
    blocked = Blocked(primary, "SET statement_timeout = '200ms'; INSERT INTO t VALUES (1)")
    try:
        assert not blocked.done.wait(1.0), "statement_timeout ended the SyncRep wait"
        (pid,) = _sync_waiters(primary)[0]
        primary.execute("SELECT pg_cancel_backend(%s)", [pid])
        assert blocked.done.wait(10)
        assert blocked.error is None
        assert any("canceling wait for synchronous replication" in n for n in blocked.notices)
    finally:
        blocked.close()
    assert primary.execute("SELECT x FROM t") == [(1,)]  # on the primary only


def test_promote_after_the_primary_crashes(pg_pair: tuple[PgCluster, PgCluster]) -> None:
    primary, standby = pg_pair
    primary.execute("CREATE TABLE t (x int)")
    primary.execute("INSERT INTO t SELECT generate_series(1, 100)")
    primary.kill()
    url = pg.multi_host_url(primary, standby)
    with pytest.raises(psycopg.OperationalError):  # no read-write server left
        psycopg.connect(url, connect_timeout=2)
    assert standby.is_in_recovery()

    pg.promote(standby)
    assert not standby.is_in_recovery()
    assert standby.scalar("SHOW synchronous_standby_names") == ""
    # Every acknowledged row survived, and the new primary commits without waiting.
    assert standby.scalar("SELECT count(*) FROM t") == 100
    writer = Blocked(standby, "INSERT INTO t VALUES (101)")
    try:
        assert writer.done.wait(5), "COMMIT on the promoted node waits for a standby"
        assert writer.error is None and writer.notices == []
    finally:
        writer.close()
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.info.port == standby.port
        assert conn.execute("SELECT max(x) FROM t").fetchone() == (101,)
