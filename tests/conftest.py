"""Shared fixtures: an in-process app over httpx.ASGITransport, and real server processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkeep.api.app import create_app
from auditkeep.core import Core
from auditkeep.settings import Config
from tests.pg import pg_server


def pytest_configure(config: pytest.Config) -> None:
    """Each run gets its own temporary root (unless --basetemp is given): pytest's shared
    /tmp/pytest-of-USER keeps only the last three runs, so two runs at once on one machine
    would delete each other's files mid-test. A run that passes removes its root."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="auditkeep-tests-")
        config._auditkeep_basetemp = config.option.basetemp  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    root = getattr(session.config, "_auditkeep_basetemp", None)
    if root and exitstatus == 0:
        shutil.rmtree(root, ignore_errors=True)


__all__ = ["pg_server"]  # the session fixture: one PostgreSQL cluster for the run

REPO = Path(__file__).resolve().parent.parent
AUDITKEEP = [sys.executable, "-m", "auditkeep.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(
    *args: str, data_dir: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the auditkeep CLI as a user would."""
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    return subprocess.run(
        [*AUDITKEEP, *args, *extra], capture_output=True, text=True, check=check, timeout=60
    )


def create_tenant_key(data_dir: Path, tenant: str, scopes: str, *extra: str) -> str:
    if cli("tenants", "list", "--json", data_dir=data_dir).stdout.find(f'"{tenant}"') < 0:
        cli("tenants", "create", tenant, data_dir=data_dir)
    out = cli(
        "keys",
        "create",
        "--tenant",
        tenant,
        "--scopes",
        scopes,
        "--json",
        *extra,
        data_dir=data_dir,
    )
    key: str = json.loads(out.stdout)["key"]
    return key


def event(n: int | str = 1, **overrides: Any) -> dict[str, Any]:
    """A valid event; ``overrides`` replace fields (None removes one)."""
    ev: dict[str, Any] = {
        "id": f"evt-{n}",
        "action": "user.login",
        "occurred_at": "2026-11-23T10:00:00Z",
        "actor": {"id": "user_1", "type": "user", "name": "Ada"},
        "targets": [{"id": "doc_1", "type": "document"}],
        "outcome": "success",
        "context": {"ip": "203.0.113.9", "user_agent": "pytest", "request_id": f"req-{n}"},
        "metadata": {"plan": "pro", "attempt": 1},
    }
    for key, value in overrides.items():
        if value is None:
            ev.pop(key, None)
        else:
            ev[key] = value
    return ev


# -- in-process ------------------------------------------------------------------------------


@dataclass
class App:
    """An in-process server: core + httpx client, with keys for tenants acme and globex."""

    core: Core
    client: httpx.AsyncClient
    keys: dict[str, str] = field(default_factory=dict)
    operator_key: str = ""

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    async def post(self, name: str, body: Any, **kwargs: Any) -> httpx.Response:
        return await self.client.post("/v1/events", json=body, headers=self.auth(name), **kwargs)

    async def get(self, name: str, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth(name))

    def execute(self, statement: str) -> None:
        """Run one SQL statement straight on the store's database (SQLite or PostgreSQL)."""
        url = self.core.config.database_url
        if not url:
            self.core.store._write(lambda conn: conn.execute(statement))  # type: ignore[union-attr]
            return
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement.encode())

    def stored_bytes(self) -> bytes:
        """Everything the store holds, as bytes (to show what is never stored): the SQLite
        file, or every table of the PostgreSQL database dumped with COPY."""
        url = self.core.config.database_url
        if not url:
            db = self.core.config.data_dir / "auditkeep.db"
            wal = db.with_name("auditkeep.db-wal")
            return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        import psycopg

        out = []
        with psycopg.connect(url) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            for (table,) in tables:
                with conn.cursor().copy(f'COPY (SELECT * FROM "{table}") TO STDOUT') as copy:
                    out += [bytes(chunk) for chunk in copy]
        return b"".join(out)


def make_core(data_dir: Path, **settings: Any) -> Core:
    return Core(Config.load({"data_dir": data_dir, **settings}, env={}))


def _key(core: Core, tenant: str, scopes: set[str], **kwargs: Any) -> str:
    t = core.store.get_tenant(tenant) or core.create_tenant(tenant)
    return core.create_key(t, frozenset(scopes), **kwargs)[1]


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The API suite runs on both stores: SQLite in the data directory, and a fresh database
    on the run's real PostgreSQL cluster (tests/pg.py)."""
    if request.param == "sqlite":
        yield {}
        return
    from tests.pg import fresh_database

    with fresh_database(request.getfixturevalue("pg_server")) as url:
        yield {"database_url": url}


@pytest.fixture
async def app(tmp_path: Path, store_settings: dict[str, Any]) -> AsyncIterator[App]:
    core = make_core(tmp_path / "data", **store_settings)
    core.start()
    asgi = create_app(core, manage_core=False)
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        a = App(core, client)
        a.operator_key = core.ensure_operator_key() or ""
        a.keys["acme"] = _key(core, "acme", {"events:write", "events:read"})
        a.keys["acme_read"] = _key(core, "acme", {"events:read"})
        a.keys["acme_write"] = _key(core, "acme", {"events:write"})
        a.keys["acme_admin"] = _key(core, "acme", {"admin"})
        a.keys["globex"] = _key(core, "globex", {"events:write", "events:read"})
        a.keys["operator"] = a.operator_key
        yield a
    core.close()


# -- real server processes -------------------------------------------------------------------


@dataclass
class LiveServer:
    """A real `auditkeep serve` process on loopback, restartable on the same port and data."""

    data_dir: Path
    port: int
    write_key: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        args = [*AUDITKEEP, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        for name, value in self.settings.items():
            args += [f"--{name.replace('_', '-')}", value]
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def events(self, key: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Every event matching ``filters``, following cursors."""
        headers = {"Authorization": f"Bearer {key or self.write_key}"}
        params: dict[str, Any] = {"limit": 1000, **filters}
        out: list[dict[str, Any]] = []
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            while True:
                page = client.get("/v1/events", params=params)
                page.raise_for_status()
                body = page.json()
                out += body["data"]
                if not body["next_cursor"]:
                    return out
                params["cursor"] = body["next_cursor"]


def start_live_server(tmp_path: Path, **settings: str) -> LiveServer:
    data_dir = tmp_path / f"live-{free_port()}"
    key = create_tenant_key(data_dir, "acme", "events:write,events:read")
    server = LiveServer(data_dir=data_dir, port=free_port(), write_key=key, settings=settings)
    server.start()
    return server


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_live_server(tmp_path)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
