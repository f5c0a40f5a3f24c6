"""Health, readiness, metrics, OpenAPI, docs, and log hygiene."""

from __future__ import annotations

import logging

import pytest

from auditkeep.api.app import create_app
from auditkeep.logs import JSONFormatter, scrub
from tests.conftest import App, event

pytestmark = pytest.mark.anyio


async def test_health_and_readiness(app: App) -> None:
    assert (await app.client.get("/healthz")).json() == {"status": "ok"}
    r = await app.client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


async def test_readyz_reports_503_when_the_store_is_gone(app: App) -> None:
    app.core.store.close()
    r = await app.client.get("/readyz")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"


async def test_metrics_count_ingest_latency_queue_and_batches(app: App) -> None:
    await app.post("acme", {"events": [event(i) for i in range(10)] + [event("bad", actor=None)]})
    text = (await app.client.get("/metrics")).text
    assert 'auditkeep_events_ingested_total{result="accepted"} 10.0' in text
    assert 'auditkeep_events_ingested_total{result="rejected"} 1.0' in text
    assert (
        'auditkeep_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/events"}'
        in text
    )
    assert "auditkeep_writer_queue_events 0.0" in text
    assert "auditkeep_writer_batch_events_count 1.0" in text
    assert "auditkeep_writer_commit_seconds_bucket" in text


async def test_openapi_describes_every_route(app: App) -> None:
    spec = (await app.client.get("/openapi.json")).json()
    asgi = create_app(app.core, manage_core=False)
    for route in asgi.routes:
        path = getattr(route, "path", None)
        for method in getattr(route, "methods", set()) - {"HEAD"}:
            assert method.lower() in spec["paths"][path], (method, path)
    html = (await app.client.get("/docs")).text
    assert "/v1/events" in html and "<html>" in html


def test_log_lines_are_json_and_scrub_keys() -> None:
    key = "ak_abcdefghijkl_" + "S" * 43
    assert key not in scrub(f"oops {key}") and "ak_abcdefghijkl" in scrub(key)
    assert "tok123" not in scrub("Authorization: Bearer tok123")
    record = logging.makeLogRecord({"msg": "failed with %s", "args": (key,), "levelname": "ERROR"})
    line = JSONFormatter().format(record)
    import json

    parsed = json.loads(line)
    assert parsed["level"] == "error" and key not in line


async def test_requests_never_put_keys_in_logs(app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await app.post("acme", event(1))
    await app.client.post("/v1/events", json=event(2), headers={"Authorization": "Bearer ak_bad"})
    for key in app.keys.values():
        assert key not in caplog.text


async def test_readyz_reports_503_while_a_commit_is_stuck(app: App) -> None:
    # as when PostgreSQL waits for a synchronous standby that is gone: connections work,
    # commits never return
    import time

    writer = app.core.writer
    writer._commit_started = writer._failing_since = time.monotonic() - 60
    try:
        r = await app.client.get("/readyz")
        assert r.status_code == 503 and "synchronous standby" in r.json()["detail"]
        assert r.headers["retry-after"]
    finally:
        writer._commit_started = writer._failing_since = None
    assert (await app.client.get("/readyz")).status_code == 200
