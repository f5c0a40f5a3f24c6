"""Resources a client can make the server hold must stay bounded: SQLite read connections
(file handles) however many threads come and go."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import anyio
import httpx

from auditkeep.store.sqlite import SQLiteStore
from tests.conftest import event, start_live_server


def open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for_fds(pid: int, bound: int, timeout: float = 10.0) -> int:
    """The process's open descriptors once at most ``bound`` (closed client sockets take a
    moment to be closed on the server's side too), or the count when ``timeout`` ran out."""
    deadline = time.monotonic() + timeout
    while True:
        n = open_fds(pid)
        if n <= bound or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def test_threads_that_come_and_go_share_a_bounded_set_of_read_connections(
    tmp_path: Path,
) -> None:
    """Thread pools retire idle workers and start new ones; a connection per thread leaked one
    with each. 300 short-lived threads, 30 at a time, each reading: the pool stays at its size
    and the process's file handles come back to where they were."""
    store = SQLiteStore(tmp_path / "data", readers=4)
    store.migrate()
    tenant = store.create_tenant("acme", "acme")
    reader = store.events(tenant.tenant_id)
    reader.size()  # one reader open, as in a running server
    baseline = open_fds()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(5):
                reader.size()
                store.list_tenants()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for _ in range(10):
        threads = [threading.Thread(target=read) for _ in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert store._readers.opened <= 4
    assert not errors, errors[:3]
    assert open_fds() <= baseline + 3 * 3  # at most 3 more connections (db, -wal, -shm each)
    store.close()
    assert store._readers.opened == 0
    assert open_fds() < baseline


def test_bursts_of_reads_keep_the_servers_file_handles_bounded(tmp_path: Path) -> None:
    """The probe: five bursts of concurrent reads took a server from 27 to 169 descriptors.
    With database_pool_size=4 every burst ends where the first one did, give or take the
    pool."""
    server = start_live_server(tmp_path, database_pool_size="4")
    try:
        assert server.proc is not None
        pid = server.proc.pid
        headers = {"Authorization": f"Bearer {server.write_key}"}
        httpx.post(server.url + "/v1/events", json=event(1), headers=headers).raise_for_status()

        async def burst() -> None:
            limits = httpx.Limits(max_connections=60)
            async with httpx.AsyncClient(
                base_url=server.url, headers=headers, limits=limits, timeout=60
            ) as client:

                async def one(i: int) -> None:
                    path = ("/v1/events", "/v1/feed", "/v1/log/checkpoints")[i % 3]
                    r = await client.get(path)
                    assert r.status_code == 200, r.text

                async with anyio.create_task_group() as tg:
                    for i in range(120):
                        tg.start_soon(one, i)

        assert httpx.get(server.url + "/v1/feed", headers=headers).status_code == 200
        baseline = open_fds(pid)  # one read connection open (3 descriptors: db, -wal, -shm)
        bound = baseline + 3 * 3  # the pool may open its other 3
        counts = []
        for _ in range(5):
            anyio.run(burst)
            counts.append(wait_for_fds(pid, bound))
        assert max(counts) <= bound, (baseline, counts)
    finally:
        server.kill()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_eight_hostile_bodies_at_once_keep_memory_and_healthz_in_bounds(tmp_path: Path) -> None:
    """The probe: eight 5 MiB events with ~590,000 unknown fields each, sent at once, took the
    server to 1.7 GB (194 MiB answers) and stalled /healthz for ~5 s."""
    from tests.api.test_hostile_bodies import FIELDS, HEAVY_PROBE_BOUND, many_unknown_fields

    server = start_live_server(tmp_path)
    try:
        assert server.proc is not None
        pid = server.proc.pid
        body = many_unknown_fields(FIELDS)
        headers = {
            "Authorization": f"Bearer {server.write_key}",
            "content-type": "application/json",
        }
        before = _peak_rss_mib(pid)
        sizes: list[int] = []
        latencies: list[float] = []

        async def attack() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

                async def one() -> None:
                    r = await client.post("/v1/events", content=body, headers=headers)
                    assert r.status_code == 422, r.text[:300]
                    sizes.append(len(r.content))

                async def probe() -> None:
                    while len(sizes) < 8:
                        started = time.monotonic()
                        assert (await client.get("/healthz")).status_code == 200
                        latencies.append(time.monotonic() - started)
                        await anyio.sleep(0.05)

                async with anyio.create_task_group() as tg:
                    for _ in range(8):
                        tg.start_soon(one)
                    tg.start_soon(probe)

        anyio.run(attack)
        peak = _peak_rss_mib(pid)
        # measured: 53 -> 277 MiB, 10 KB answers, /healthz at most 0.55 s (2 cores, loaded)
        assert max(sizes) < 32 * 1024
        assert peak - before < 600, (before, peak)
        assert len(latencies) >= 3 and max(latencies) < HEAVY_PROBE_BOUND, sorted(latencies)[-5:]
    finally:
        server.kill()
