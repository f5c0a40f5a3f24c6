"""Fixtures of the store contract suite: every test of ``test_contract.py`` that takes ``store``
or ``backend`` runs against SQLite and against PostgreSQL.

PostgreSQL is a real cluster the run starts itself (``tests/pg.py``, one per run): each test
gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from auditkeep.store import AnyStore
from auditkeep.store.postgres import PostgresStore
from auditkeep.store.sqlite import SQLiteStore
from tests.pg import PgCluster, fresh_database, pg_server

__all__ = ["pg_server"]  # the session fixture: one PostgreSQL cluster for the run


@dataclass
class Backend:
    """One store backend for a test: opens any number of stores over the same data (with
    PostgreSQL, each is what one API node would open)."""

    kind: str
    data_dir: Path
    url: str = ""  # the PostgreSQL database of this test
    durability: str = "normal"
    opened: list[AnyStore] = field(default_factory=list)

    def open(self, *, migrate: bool = True, pool_size: int = 4) -> AnyStore:
        store: AnyStore
        if self.kind == "sqlite":
            store = SQLiteStore(self.data_dir, durability=self.durability)
        else:
            store = PostgresStore(self.url, pool_size=pool_size, durability=self.durability)
        self.opened.append(store)
        if migrate:
            store.migrate()
        return store

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run one statement on the PostgreSQL database directly (autocommit)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement.encode(), params)
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        b = Backend("sqlite", tmp_path / "data")
        try:
            yield b
        finally:
            b.close()
        return
    with fresh_database(request.getfixturevalue("pg_server")) as url:
        b = Backend("postgres", tmp_path / "data", url)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def pg_backend(tmp_path: Path, pg_server: PgCluster) -> Iterator[Backend]:
    """PostgreSQL only."""
    with fresh_database(pg_server) as url:
        b = Backend("postgres", tmp_path / "data", url)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def store(backend: Backend) -> AnyStore:
    """A migrated store of the backend (closed by the backend fixture)."""
    return backend.open()
