"""Nothing a client sends may stall the event loop: while one request waits for a store lock
held by another process, or validates a hostile body, /healthz keeps answering promptly.

The app runs in-process (httpx.ASGITransport) on the test's own event loop, so a handler that
blocks the loop would hold up the /healthz probe running beside it: its latency is the
measurement.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import App

pytestmark = pytest.mark.anyio

PROBE_BOUND = 0.9  # seconds; a loaded 2-core machine can pause a probe, a lock wait is >= 1 s


async def probe_healthz(client: httpx.AsyncClient, seconds: float) -> list[float]:
    """Latencies of /healthz asked back to back for ``seconds``."""
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        r = await client.get("/healthz")
        latencies.append(time.monotonic() - started)
        assert r.status_code == 200
        await anyio.sleep(0.01)
    return latencies


def hold_write_lock(app: App) -> Callable[[], None]:
    """Take another process's write lock on the store (SQLite: BEGIN IMMEDIATE on the database
    file; PostgreSQL: an exclusive lock on the tables the admin handlers use); returns the
    function that releases it."""
    url = app.core.config.database_url
    if not url:
        conn = sqlite3.connect(app.core.config.data_dir / "auditkeep.db", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")

        def release() -> None:
            conn.execute("ROLLBACK")
            conn.close()

        return release
    import psycopg

    pg = psycopg.connect(url)
    pg.execute("LOCK TABLE tenants, api_keys IN ACCESS EXCLUSIVE MODE")

    def release_pg() -> None:
        pg.rollback()
        pg.close()

    return release_pg


async def test_admin_calls_waiting_for_a_lock_do_not_stall_the_loop(app: App) -> None:
    op = app.auth("operator")
    results: dict[str, httpx.Response] = {}

    async def call(name: str, method: str, path: str, **kwargs: Any) -> None:
        results[name] = await app.client.request(method, path, headers=op, **kwargs)

    release = hold_write_lock(app)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: call("key", "POST", "/v1/tenants/acme/keys", json={"scopes": ["admin"]})
            )
            tg.start_soon(lambda: call("tenant", "POST", "/v1/tenants", json={"slug": "initech"}))
            latencies = await probe_healthz(app.client, 1.0)
            # the admin writes still wait for the lock while the probe is answered beside them
            assert not results, {k: r.status_code for k, r in results.items()}
            assert len(latencies) >= 10 and max(latencies) < PROBE_BOUND, latencies
            release()
            release = lambda: None  # noqa: E731 - released once
    finally:
        release()
    # once the lock is gone the writes complete
    assert results["key"].status_code == 201, results["key"].text
    assert results["tenant"].status_code == 201, results["tenant"].text
    r = await app.client.get("/v1/tenants/acme/keys", headers=op)
    assert results["key"].json()["key_id"] in [k["key_id"] for k in r.json()["data"]]
