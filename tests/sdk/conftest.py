"""Fixtures for the SDK tests: fast-retry clients, fake servers, a clean logger."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auditkeep_client import AuditKeep
from tests.sdk._support import FakeAuditServer

FAST = {
    "retry_base": 0.02,
    "retry_cap": 0.2,
    "poll_interval": 0.05,
    "timeout": 5.0,
    "flush_on_exit": 0.0,
}


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox" / "outbox.sqlite3"


@pytest.fixture
def fake_server() -> Iterator[FakeAuditServer]:
    server = FakeAuditServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_client(outbox_path: Path) -> Iterator[Callable[..., AuditKeep]]:
    clients: list[AuditKeep] = []

    def make(endpoints: list[str] | str, api_key: str = "test-key", **options: Any) -> AuditKeep:
        opts: dict[str, Any] = {**FAST, "outbox": outbox_path, **options}
        client = AuditKeep(api_key, endpoints=endpoints, **opts)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close(timeout=2)


def ev_kwargs(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for one valid log() call."""
    kw: dict[str, Any] = {
        "actor": {"id": f"user_{n}", "type": "user"},
        "targets": [{"id": f"doc_{n}", "type": "document"}],
        "metadata": {"n": n},
    }
    kw.update(overrides)
    return kw
