"""Health, readiness, metrics, OpenAPI, docs, and log hygiene."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from auditkeep.api.app import create_app
from auditkeep.errors import ConfigError
from auditkeep.logs import JSONFormatter, scrub
from tests.conftest import App, _key, event, make_core

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


async def test_metrics_token_keeps_metrics_from_anyone_else(tmp_path: Path) -> None:
    """The attack: anyone who can reach the port scrapes /metrics (tenant names, destination
    ids, traffic). With metrics_token set, only its holder can."""
    token = "mt_" + "0123456789abcdef" * 2
    core = make_core(tmp_path / "data", metrics_token=token)
    core.start()
    try:
        transport = httpx.ASGITransport(app=create_app(core, manage_core=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            tenant_key = _key(core, "acme", {"events:write", "events:read", "admin"})
            for headers in (
                {},
                {"Authorization": f"Bearer {token[:-1]}x"},
                {"Authorization": f"Bearer {tenant_key}"},  # an API key is not the token
                {"Authorization": f"Basic {token}"},
            ):
                r = await client.get("/metrics", headers=headers)
                assert r.status_code == 401, headers
                assert r.headers["content-type"] == "application/problem+json"
                assert "metrics token" in r.json()["detail"] and "auditkeep_" not in r.text
                assert r.headers["www-authenticate"].startswith("Bearer")
            r = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200 and "auditkeep_auth_failures_total 4.0" in r.text
            # health checks stay open
            assert (await client.get("/healthz")).status_code == 200
    finally:
        core.close()


@pytest.mark.parametrize("token", ["short", "x" * 16 + " y", "tök" * 8])
def test_an_unusable_metrics_token_is_refused_at_start(tmp_path: Path, token: str) -> None:
    with pytest.raises(ConfigError, match="metrics_token must be at least 16"):
        make_core(tmp_path / "data", metrics_token=token)
