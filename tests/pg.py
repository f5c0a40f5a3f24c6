"""Real PostgreSQL clusters on loopback for the tests (no mocks, no docker).

- :class:`PgCluster` is one cluster in a directory of its own: ``initdb`` (trust for
  127.0.0.1, a superuser ``postgres``, a password user ``auditkeep`` for wrong-password tests, a
  ``replicator`` role), start/stop/kill/restart, pause/resume (SIGSTOP/SIGCONT: a hung
  server), URLs, ``psql`` and ``execute`` helpers, and databases made and dropped per test.
- :func:`replicated_pair` makes a primary and a streaming standby with *synchronous*
  replication (an acknowledged COMMIT is on both), and :func:`promote` turns the standby into
  the new primary the way a failover manager does.
- Fixtures for conftest files and test modules: ``pg_server`` (one cluster per test session),
  ``pg_database_url`` (a fresh database per test, dropped afterwards) and ``pg_pair`` (a
  replicated pair per test).

PostgreSQL refuses to run as root: when the tests run as root, every server-side program
(``initdb``, ``pg_ctl``, ``pg_basebackup``) runs as the ``postgres`` OS user through
``runuser``, in directories that user owns, made with :func:`make_pg_dir` under /tmp (pytest's
``tmp_path`` is not readable by that user). Clients (``psql``, psycopg) run as the test process.
Servers listen on 127.0.0.1 only (no Unix socket). ``fsync`` stays on: durability is what the
tests are about; start-up is kept fast with small ``shared_buffers`` and ``initdb --no-sync``
(the freshly made files need no fsync, the WAL written by the tests does).

The binaries are found in ``$PG_BINDIR``, else the newest ``/usr/lib/postgresql/*/bin``
(Debian), else ``pg_config --bindir`` / ``$PATH``. Without them the fixtures skip, unless
``REQUIRE_POSTGRES=1`` is set (CI), in which case they fail.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

OS_USER = "postgres"
SUPERUSER = "postgres"
APP_USER = "auditkeep"
APP_PASSWORD = "auditkeep-test-password"  # a fixed test secret
REPLICATION_USER = "replicator"
HOST = "127.0.0.1"

_BASE_SETTINGS: dict[str, str | int] = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",
    "shared_buffers": "16MB",
    "max_connections": 100,
    "fsync": "on",
    "synchronous_commit": "on",
    "wal_level": "replica",
    "max_wal_senders": 10,
    "wal_keep_size": "256MB",  # a standby stopped for a while catches up without a slot
    "wal_retrieve_retry_interval": "200ms",  # a standby retries its primary quickly
    "hot_standby": "on",
    "log_line_prefix": "%m [%p] %q%a ",
}

_HBA = f"""\
# auditkeep tests: the password user first (scram), everyone else trusted on loopback.
host    all             {APP_USER}       {HOST}/32    scram-sha-256
host    all             all              {HOST}/32    trust
host    replication     {REPLICATION_USER}       {HOST}/32    trust
"""


class PgError(RuntimeError):
    """A harness step failed; the message carries the server log's tail."""


# -- binaries and directories ---------------------------------------------------------------


def _has_tools(bindir: Path) -> bool:
    return all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))


def find_bindir() -> Path | None:
    """Where initdb/pg_ctl/postgres live, or None if PostgreSQL is not installed."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env) if _has_tools(Path(env)) else None
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in debian:
        if _has_tools(bindir):
            return bindir
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            if _has_tools(Path(out.stdout.strip())):
                return Path(out.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb and _has_tools(Path(initdb).parent):
        return Path(initdb).parent
    return None


def postgres_missing() -> str | None:
    """Why real PostgreSQL tests cannot run here, or None if they can."""
    bindir = find_bindir()
    if bindir is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql; or PG_BINDIR)"
    if not (bindir / "psql").is_file() and shutil.which("psql") is None:
        return "psql not found (apt-get install postgresql-client)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root, but there is no {OS_USER!r} OS user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root, but runuser (util-linux) is missing"
    return None


def require_postgres() -> None:
    """Skip the calling test/fixture when PostgreSQL is unavailable (fail if REQUIRE_POSTGRES)."""
    reason = postgres_missing()
    if reason is None:
        return
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _bin(tool: str) -> str:
    bindir = find_bindir()
    if bindir is None:
        raise PgError("PostgreSQL binaries not found")
    path = bindir / tool
    if path.is_file():
        return str(path)
    found = shutil.which(tool)
    if found is None:
        raise PgError(f"{tool} not found in {bindir} or on PATH")
    return found


def _as_owner(cmd: Sequence[str]) -> list[str]:
    """Run ``cmd`` as the postgres OS user when we are root (postgres refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", OS_USER, "--", *cmd]
    return list(cmd)


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def make_pg_dir(prefix: str = "auditkeep-pg-") -> Path:
    """A new empty directory under /tmp owned by the user PostgreSQL runs as (mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    _chown(path)
    return path


def remove_pg_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _conf_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def _process_gone(pid: int) -> bool:
    """True if ``pid`` has exited (a zombie counts: PID 1 may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


# -- one cluster ----------------------------------------------------------------------------


class PgCluster:
    """One PostgreSQL cluster: data in ``directory/data``, server log in ``directory``.

    ``directory`` must exist and be owned by the user the server runs as (see
    :func:`make_pg_dir`). :meth:`create` makes a new cluster; a standby is made by
    :func:`replicated_pair` with ``pg_basebackup`` instead.
    """

    def __init__(self, directory: Path, port: int, name: str = "pg") -> None:
        self.directory = Path(directory)
        self.port = port
        self.name = name
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"

    def __repr__(self) -> str:
        return f"PgCluster({self.name!r}, port={self.port}, data={str(self.data)!r})"

    # -- making -------------------------------------------------------------------------

    def init(self) -> PgCluster:
        """``initdb`` plus the harness's configuration and pg_hba.conf (does not start)."""
        self._run(
            [
                _bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            what="initdb",
        )
        self.configure(**_BASE_SETTINGS, port=self.port)
        (self.data / "pg_hba.conf").write_text(_HBA)
        return self

    def create(self) -> PgCluster:
        """initdb, start, and create the ``auditkeep`` (password) and ``replicator`` roles."""
        self.init()
        self.start()
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(APP_USER), sql.Literal(APP_PASSWORD)
            )
        )
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN REPLICATION").format(sql.Identifier(REPLICATION_USER))
        )
        return self

    def configure(self, **settings: str | int | bool) -> None:
        """Append settings to postgresql.conf (later lines win; :meth:`reload` or restart)."""
        lines = "".join(f"{k} = {_conf_value(v)}\n" for k, v in settings.items())
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("# auditkeep test harness\n" + lines)

    # -- running ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from postmaster.pid, if that process is alive."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return None if _process_gone(pid) else pid

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait (with a deadline) until a connection works."""
        deadline = time.monotonic() + timeout
        self._run(
            [
                _bin("pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(max(1, int(timeout))),
                "-s",
            ],
            what="pg_ctl start",
            timeout=timeout + 10,
        )
        self.wait_ready(max(1.0, deadline - time.monotonic()))

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until ``SELECT 1`` works (a standby counts once it accepts read-only connections)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url(), connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error as exc:
                last = exc
            time.sleep(0.05)
        raise PgError(f"{self.name} not ready after {timeout:.0f}s: {last}\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (rolls back open transactions, checkpoints); no-op if not running."""
        if not self.is_running():
            return
        self._run(
            [
                _bin("pg_ctl"),
                "stop",
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "-s",
            ],
            what="pg_ctl stop",
            timeout=timeout + 10,
        )

    def kill(self, timeout: float = 10.0) -> None:
        """A crash: SIGKILL the postmaster and, at the same moment, every process it started.

        Nothing is flushed or checkpointed; the next :meth:`start` runs crash recovery. (Left
        alone, the backends would notice the dead postmaster and exit by themselves within
        milliseconds; killing them too makes the crash an instant, as a power cut is.) Waits
        until every one of them is gone, so that a restart finds no shared memory in use.
        """
        pid = self.pid
        if pid is None:
            return
        kids = _children(pid)
        for victim in [pid, *kids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for victim in [pid, *kids]:
            while not _process_gone(victim):
                if time.monotonic() > deadline:
                    raise PgError(f"{self.name}: pid {victim} survived SIGKILL")
                time.sleep(0.01)
        # The lock file names a dead postmaster; if nobody has reaped it yet (a container's
        # PID 1 may be slow to), postgres would still see that pid "alive" and refuse to start.
        with contextlib.suppress(FileNotFoundError):
            (self.data / "postmaster.pid").unlink()

    def pause(self) -> None:
        """A hung server: SIGSTOP the postmaster and every process it started. The kernel still
        accepts TCP connections and acknowledges data for it, but nothing answers: a client
        waits for ever unless it gives up by itself. :meth:`resume` (SIGCONT) or :meth:`kill`."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, signum: int) -> None:
        pid = self.pid
        if pid is None:
            raise PgError(f"{self.name} is not running")
        for victim in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signum)

    def restart(self, timeout: float = 30.0) -> None:
        self.stop()
        self.start(timeout)

    def reload(self) -> None:
        self.execute("SELECT pg_reload_conf()")

    # -- talking to it ------------------------------------------------------------------

    def url(self, db: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{HOST}:{self.port}/{quote(db, safe='')}"

    def connect(
        self,
        db: str = "postgres",
        user: str = SUPERUSER,
        password: str | None = None,
        **kwargs: Any,
    ) -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit psycopg connection (close it, or use it in a ``with``)."""
        options: dict[str, Any] = {"connect_timeout": 5, "autocommit": True, **kwargs}
        return psycopg.connect(self.url(db, user, password), **options)

    def execute(
        self,
        query: str | sql.Composable,
        params: Sequence[Any] | None = None,
        db: str = "postgres",
        user: str = SUPERUSER,
    ) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit; its rows, or [] for statements without any."""
        with self.connect(db, user) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description is not None else []

    def scalar(self, query: str, params: Sequence[Any] | None = None, db: str = "postgres") -> Any:
        rows = self.execute(query, params, db)
        return rows[0][0] if rows else None

    def psql(self, command: str, db: str = "postgres", user: str = SUPERUSER) -> str:
        """``psql -c`` (unaligned, tuples only, stop on error); its stdout."""
        out = subprocess.run(
            [
                _bin("psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                user,
                "-d",
                db,
                "-c",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
        )
        if out.returncode != 0:
            raise PgError(f"psql on {self.name} failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def is_in_recovery(self) -> bool:
        return bool(self.scalar("SELECT pg_is_in_recovery()"))

    def create_database(self, name: str, owner: str = SUPERUSER) -> str:
        """CREATE DATABASE ``name``; returns its URL (as the superuser)."""
        self.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS ... WITH (FORCE): terminates its connections first."""
        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    def _run(self, cmd: Sequence[str], *, what: str, timeout: float = 60.0) -> None:
        out = subprocess.run(
            _as_owner(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.directory,  # a directory the postgres user can enter
            stdin=subprocess.DEVNULL,
        )
        if out.returncode != 0:
            raise PgError(
                f"{what} ({self.name}, port {self.port}) failed with {out.returncode}:\n"
                f"{out.stdout}{out.stderr}\n-- server log --\n{self.log_tail()}"
            )


# -- replication ----------------------------------------------------------------------------


def replicated_pair(
    base_dir: Path, *, synchronous: bool = True, timeout: float = 30.0
) -> tuple[PgCluster, PgCluster]:
    """A primary and a streaming standby (``pg_basebackup -R``), each on its own port.

    With ``synchronous`` (the default) the primary has ``synchronous_standby_names = '*'`` and
    ``synchronous_commit = on``: a COMMIT returns only once the standby has flushed its WAL, so
    an acknowledged write is on both machines, and with the standby down COMMITs wait. The
    standby gets the same settings (one configuration for every node, as a failover manager
    keeps it); they mean nothing to a standby until it is promoted (see :func:`promote`).
    Returns once ``pg_stat_replication`` shows the standby streaming with sync_state 'sync'.
    ``base_dir`` must be owned by the PostgreSQL user (:func:`make_pg_dir`); stop both
    clusters when done (:func:`stop_all`).
    """
    primary = PgCluster(base_dir / "primary", free_port(), "primary")
    standby = PgCluster(base_dir / "standby", free_port(), "standby")
    for node in (primary, standby):
        node.directory.mkdir(mode=0o700)
        _chown(node.directory)
    primary.create()
    conninfo = (
        f"host={HOST} port={primary.port} user={REPLICATION_USER} application_name={standby.name}"
    )
    standby._run(
        [
            _bin("pg_basebackup"),
            "-D",
            str(standby.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
            "-d",
            conninfo,
        ],
        what="pg_basebackup",
        timeout=timeout + 30,
    )
    sync: dict[str, str | int | bool] = (
        {"synchronous_standby_names": "*", "synchronous_commit": "on"} if synchronous else {}
    )
    standby.configure(port=standby.port, **sync)
    if sync:
        primary.configure(**sync)
        primary.reload()
    try:
        standby.start(timeout)
        wait_for_standby(primary, standby, sync="sync" if synchronous else "async", timeout=timeout)
    except BaseException:
        stop_all(primary, standby)
        raise
    return primary, standby


def wait_for_standby(
    primary: PgCluster, standby: PgCluster, sync: str = "sync", timeout: float = 30.0
) -> None:
    """Until ``pg_stat_replication`` on ``primary`` shows ``standby`` streaming as ``sync``."""
    deadline = time.monotonic() + timeout
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        rows = primary.execute(
            "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
            [standby.name],
        )
        if rows and rows[0] == ("streaming", sync):
            return
        time.sleep(0.05)
    raise PgError(
        f"{standby.name} not streaming as {sync} after {timeout:.0f}s (pg_stat_replication: "
        f"{rows})\n-- {standby.name} log --\n{standby.log_tail()}"
    )


def promote(standby: PgCluster, timeout: float = 30.0) -> None:
    """Make ``standby`` the primary: ``pg_ctl promote``, then stop waiting for a standby.

    After ``pg_ctl promote`` returns and ``pg_is_in_recovery()`` is false the node accepts
    writes, but it still has ``synchronous_standby_names = '*'`` from the shared
    configuration: every COMMIT on it would wait for a synchronous standby that does not
    exist (the old primary is dead), for ever — the new primary would look up but hang every
    writer. So, as Patroni does when it promotes a node and no synchronous standby is left,
    we clear ``synchronous_standby_names`` with ALTER SYSTEM (persisted in
    postgresql.auto.conf, surviving restarts) and ``pg_reload_conf()``; the reload releases
    any COMMIT that began waiting in the short window before it. (Patroni's
    ``synchronous_mode_strict`` would instead keep refusing to acknowledge until a new standby
    joins: durability over availability. Here the availability of the promoted node is what
    the tests need.) Returns once a write on the new primary commits without waiting.
    """
    standby._run(
        [_bin("pg_ctl"), "promote", "-D", str(standby.data), "-w", "-t", str(int(timeout)), "-s"],
        what="pg_ctl promote",
        timeout=timeout + 10,
    )
    deadline = time.monotonic() + timeout
    while standby.is_in_recovery():
        if time.monotonic() > deadline:
            raise PgError(f"{standby.name} still in recovery after promote\n{standby.log_tail()}")
        time.sleep(0.05)
    standby.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
    standby.reload()
    while standby.scalar("SHOW synchronous_standby_names") != "":
        if time.monotonic() > deadline:
            raise PgError(f"{standby.name}: synchronous_standby_names not cleared")
        time.sleep(0.02)
    # A probe COMMIT: with a deadline, so a still-synchronous node fails here, not in a test.
    with standby.connect() as conn:
        conn.execute("SET statement_timeout = '5s'")
        with conn.transaction():
            conn.execute("SELECT pg_current_xact_id()")  # a real xid: COMMIT writes WAL


def multi_host_url(
    *clusters: PgCluster,
    db: str = "postgres",
    user: str = SUPERUSER,
    target_session_attrs: str = "read-write",
) -> str:
    """One libpq URL naming every cluster: the client tries them in order and keeps the first
    that matches ``target_session_attrs`` (read-write: the primary), so it follows a failover.
    """
    hosts = ",".join(f"{HOST}:{c.port}" for c in clusters)
    query = f"?target_session_attrs={target_session_attrs}" if target_session_attrs else ""
    return f"postgresql://{quote(user, safe='')}@{hosts}/{quote(db, safe='')}{query}"


def stop_all(*clusters: PgCluster) -> None:
    """Stop every cluster given, killing any that does not stop cleanly."""
    for cluster in clusters:
        try:
            cluster.stop(timeout=15)
        except (PgError, subprocess.SubprocessError):
            with contextlib.suppress(PgError):
                cluster.kill()


@contextlib.contextmanager
def pair_in_tmp(synchronous: bool = True) -> Iterator[tuple[PgCluster, PgCluster]]:
    """A :func:`replicated_pair` in a fresh /tmp directory, stopped and removed afterwards."""
    base = make_pg_dir("auditkeep-pgpair-")
    try:
        primary, standby = replicated_pair(base, synchronous=synchronous)
        try:
            yield primary, standby
        finally:
            stop_all(primary, standby)
    finally:
        remove_pg_dir(base)


# -- fixtures -------------------------------------------------------------------------------

# ``pg_server`` may be imported into several conftest files/modules; pytest then holds one
# session fixture per place. They all share this one cluster (reference counted).
_shared_lock = threading.Lock()
_shared: dict[str, Any] = {"cluster": None, "dir": None, "users": 0}


def _acquire_shared() -> PgCluster:
    with _shared_lock:
        if _shared["cluster"] is None:
            directory = make_pg_dir("auditkeep-pgsession-")
            cluster = PgCluster(directory, free_port(), "session")
            try:
                cluster.create()
            except BaseException:
                with contextlib.suppress(PgError):
                    cluster.kill()
                remove_pg_dir(directory)
                raise
            _shared.update(cluster=cluster, dir=directory)
        _shared["users"] += 1
        cluster_: PgCluster = _shared["cluster"]
        return cluster_


def _release_shared() -> None:
    with _shared_lock:
        _shared["users"] -= 1
        if _shared["users"] > 0 or _shared["cluster"] is None:
            return
        stop_all(_shared["cluster"])
        remove_pg_dir(_shared["dir"])
        _shared.update(cluster=None, dir=None)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgCluster]:
    """One PostgreSQL cluster for the whole test run (skips if PostgreSQL is missing)."""
    require_postgres()
    cluster = _acquire_shared()
    try:
        yield cluster
    finally:
        _release_shared()


@contextlib.contextmanager
def fresh_database(server: PgCluster, prefix: str = "t_") -> Iterator[str]:
    """A fresh, empty database on ``server`` (its superuser URL), dropped afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture
def pg_database_url(pg_server: PgCluster) -> Iterator[str]:
    """A fresh, empty database on ``pg_server`` for one test (superuser URL), dropped after."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture
def pg_pair() -> Iterator[tuple[PgCluster, PgCluster]]:
    """A synchronously replicated (primary, standby) pair for one test."""
    require_postgres()
    with pair_in_tmp() as pair:
        yield pair
