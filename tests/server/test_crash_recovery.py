"""A real server process: SIGKILL under load loses no acknowledged event; restarts keep ids."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, cli, event, start_live_server


def _post(server: LiveServer, body: object) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/events",
        json=body,
        headers={"Authorization": f"Bearer {server.write_key}"},
        timeout=10,
    )


def _feed_seqs(server: LiveServer) -> list[int]:
    seqs: list[int] = []
    headers = {"Authorization": f"Bearer {server.write_key}"}
    while True:
        page = httpx.get(
            server.url + "/v1/feed", params={"after": len(seqs), "limit": 1000}, headers=headers
        ).json()
        if not page["data"]:
            return seqs
        seqs += [e["seq"] for e in page["data"]]


def test_idempotency_holds_across_a_restart(tmp_path: Path) -> None:
    server = start_live_server(tmp_path)
    try:
        first = _post(server, {"events": [event(i) for i in range(20)]}).json()
        assert first["accepted"] == 20
        server.stop()
        server.start()
        again = _post(server, {"events": [event(i) for i in range(25)]}).json()
        assert again["duplicates"] == 20 and again["accepted"] == 5
        assert [r["seq"] for r in again["results"][:20]] == [r["seq"] for r in first["results"]]
        conflict = _post(server, event(3, action="user.logout"))
        assert conflict.status_code == 409
    finally:
        server.kill()


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    server = start_live_server(tmp_path)
    acked: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        n = 0
        with httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.write_key}"},
            timeout=5,
        ) as client:
            while not stop.is_set():
                batch = [event(f"w{worker}-{n + i}") for i in range(1 + (worker * 7 + n) % 50)]
                n += len(batch)
                try:
                    if worker % 2:
                        r = client.post("/v1/events", json={"events": batch})
                        ok = (
                            {x["id"]: x["seq"] for x in r.json()["results"]}
                            if r.status_code == 200
                            else {}
                        )
                    else:
                        r = client.post("/v1/events", json=batch[0])
                        ok = (
                            {r.json()["id"]: r.json()["seq"]} if r.status_code in (200, 201) else {}
                        )
                        n -= len(batch) - 1
                except (httpx.HTTPError, ValueError):
                    ok = {}
                    time.sleep(0.05)
                with lock:
                    acked.update(ok)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(1.5)
            before = len(acked)
            server.kill()  # SIGKILL mid-stream
            time.sleep(0.3)
            server.start()
            assert len(acked) >= before
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    try:
        assert len(acked) > 500, "the load generator should have had many acks"
        stored = {e["id"]: e["seq"] for e in server.events()}
        missing = set(acked) - set(stored)
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
        assert all(stored[i] == seq for i, seq in acked.items()), "an acked seq changed"
        seqs = _feed_seqs(server)
        assert seqs == list(range(1, len(seqs) + 1)), "seqs must be gap-free"
        assert len(seqs) == len(stored), "every event appears exactly once"
    finally:
        server.stop()
    result = cli("verify", data_dir=server.data_dir, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "events OK" in result.stdout


def test_graceful_shutdown_drains_and_exits_zero(tmp_path: Path) -> None:
    server = start_live_server(tmp_path)
    assert _post(server, {"events": [event(i) for i in range(50)]}).json()["accepted"] == 50
    assert server.proc is not None
    server.stop()
    # uvicorn re-raises SIGTERM after a clean shutdown, as service managers expect
    assert server.proc.returncode in (0, -15)
    assert "store closed" in server.log()
    out = cli(
        "events",
        "search",
        "--tenant",
        "acme",
        "--limit",
        "1000",
        "--json",
        data_dir=server.data_dir,
    )
    assert len(out.stdout.splitlines()) == 50
