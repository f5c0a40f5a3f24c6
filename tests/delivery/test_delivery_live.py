"""Delivery from a real server process to real receivers that fail and come back.

A webhook receiver verifying every request with the independent ``standardwebhooks`` package
goes down for a while under continuous ingest and comes back: every event arrives, in order,
each verified. The server itself is also killed (SIGKILL) and restarted mid-delivery: the
destination's cursor is in the store, so delivery resumes and loses nothing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import create_tenant_key, event, start_live_server
from tests.delivery.receivers import HTTPReceiver, WebhookLog, wait_for

pytestmark = pytest.mark.slow

SETTINGS = {
    "delivery_allow_networks": "127.0.0.0/8",
    "delivery_retry_base": "0.05",
    "delivery_retry_cap": "0.5",
    "delivery_batch_size": "100",
}


def _ingest_continuously(
    url: str, key: str, stop: threading.Event, acked: list[str], prefix: str
) -> None:
    n = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        while not stop.is_set():
            batch = [event(f"{prefix}-{n + i}") for i in range(20)]
            try:
                r = client.post("/v1/events", json={"events": batch}, timeout=10)
            except httpx.HTTPError:
                time.sleep(0.05)  # the server is restarting: resend the same batch
                continue
            if r.status_code == 200:
                acked += [e["id"] for e in batch]
                n += 20
            time.sleep(0.01)


def test_webhook_receiver_down_and_server_killed(tmp_path: Path) -> None:
    server = start_live_server(tmp_path, **SETTINGS)
    admin = create_tenant_key(server.data_dir, "acme", "admin")
    log = WebhookLog(secret="")
    receiver = HTTPReceiver(log.handle)
    receiver.start()
    stop = threading.Event()
    acked: list[str] = []
    try:
        r = httpx.post(
            server.url + "/v1/tenants/acme/destinations",
            json={"name": "siem", "kind": "webhook", "config": {"url": receiver.url}},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert r.status_code == 201, r.text
        dest = r.json()
        log.secret = dest["secret"]
        sender = threading.Thread(
            target=_ingest_continuously, args=(server.url, server.write_key, stop, acked, "e")
        )
        sender.start()
        wait_for(lambda: len(log.events()) >= 100, what="first deliveries")
        receiver.stop()  # the receiver goes down under load
        down_at = len(acked)
        wait_for(lambda: len(acked) >= down_at + 300, what="ingest while the receiver is down")
        status = httpx.get(
            f"{server.url}/v1/tenants/acme/destinations/{dest['id']}",
            headers={"Authorization": f"Bearer {admin}"},
        ).json()
        assert status["attempts"] >= 1 and status["lag_events"] > 0 and status["last_error"]
        receiver.start()  # back on the same port
        wait_for(lambda: len(log.events()) > 400, what="delivery after the receiver came back")
        server.kill()  # the server dies mid-delivery, and comes back
        server.start()
        time.sleep(0.5)
        stop.set()
        sender.join(30)
        total = len(acked)
        wait_for(lambda: len(log.events()) >= total, timeout=60, what="catch-up")
    finally:
        stop.set()
        receiver.stop()
        server.kill()
    got: list[dict[str, Any]] = log.events()
    assert not log.rejected, log.rejected[:3]
    # in order, gap-free, each event exactly once (a repeated batch counted once)
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))
    ids = [e["id"] for e in got]
    assert len(set(ids)) == len(ids)
    assert set(acked) <= set(ids)
