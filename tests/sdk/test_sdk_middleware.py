"""ASGI (FastAPI/Starlette) and WSGI (Flask) middleware, recorded in test mode."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from flask import Flask, abort
from flask import request as flask_request

from auditkeep_client import REDACTED, AuditKeep, context
from auditkeep_client.middleware import (
    AuditKeepASGIMiddleware,
    _sampled,
    instrument_flask,
)


class TestClient:
    """A small sync wrapper over httpx.ASGITransport (Starlette's TestClient wants httpx2)."""

    __test__ = False

    def __init__(self, app: Any, raise_server_exceptions: bool = True) -> None:
        self.app = app
        self.raise_exc = raise_server_exceptions

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(
                app=self.app, raise_app_exceptions=self.raise_exc, client=("127.0.0.1", 5000)
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def fastapi_app(client: AuditKeep, **options: Any) -> FastAPI:
    app = FastAPI()

    def current_user(request: Request) -> str:  # a sync dependency: runs in a thread pool
        user = request.headers.get("x-user")
        if user:
            context.bind(actor={"id": user, "type": "user"}, client_id="web-app")
        return user or ""

    @app.get("/docs/{doc_id}")
    def get_doc(doc_id: str, user: str = Depends(current_user)) -> dict[str, str]:
        client.log("document.viewed", targets=[{"id": doc_id, "type": "document"}])
        return {"id": doc_id}

    @app.post("/login")
    async def login(request: Request) -> dict[str, str]:
        body = await request.json()
        if body.get("password") != "right":
            raise HTTPException(401, "bad credentials")
        return {"ok": "yes"}

    @app.get("/admin")
    async def admin() -> None:
        raise HTTPException(403)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("db password=hunter2 leaked in message")

    @app.get("/slow")
    def slow() -> dict[str, int]:
        time.sleep(0.06)
        return {"ok": 1}

    app.add_middleware(AuditKeepASGIMiddleware, client=client, **options)
    return app


def test_fastapi_access_events_with_route_actor_and_context() -> None:
    client = AuditKeep(testing=True)
    http = TestClient(fastapi_app(client))
    resp = http.get(
        "/docs/d42?password=hunter2&q=x",
        headers={
            "x-user": "ada",
            "X-Request-ID": "req-abc",
            "User-Agent": "pytest-ua",
            "Authorization": "Bearer sekrit-token-value",
            "Cookie": "sid=cookie-secret",
        },
    )
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "req-abc"
    cap = client.captured
    viewed = cap.assert_logged("document.viewed", actor={"id": "ada"})
    assert viewed["context"]["request_id"] == "req-abc"
    access = cap.assert_logged("http.request", category="access")
    meta = access["metadata"]
    assert meta["route"] == "/docs/{doc_id}" and meta["path"] == "/docs/d42"
    assert meta["method"] == "GET" and meta["status"] == 200
    assert meta["query"] == {"password": REDACTED, "q": "x"}
    assert meta["client_id"] == "web-app" and meta["response_bytes"] > 0
    assert isinstance(meta["latency_ms"], float)
    assert access["actor"] == {"id": "ada", "type": "user"}
    assert access["context"]["user_agent"] == "pytest-ua"
    assert access["outcome"] == "success"
    text = repr(cap.events)
    for secret in ("hunter2", "sekrit-token-value", "cookie-secret"):
        assert secret not in text


def test_fastapi_security_error_and_performance_events() -> None:
    client = AuditKeep(testing=True)
    http = TestClient(fastapi_app(client, slow_threshold_ms=50), raise_server_exceptions=False)
    assert http.post("/login", json={"user": "ada", "password": "wrong"}).status_code == 401
    assert http.get("/admin").status_code == 403
    assert http.get("/boom").status_code == 500
    assert http.get("/slow").status_code == 200
    cap = client.captured
    unauth = cap.assert_logged("http.unauthorized", category="security", outcome="failure")
    assert unauth["reason"] == "HTTP 401" and unauth["actor"]["type"] == "anonymous"
    cap.assert_logged("http.forbidden", category="security", metadata={"status": 403})
    err = cap.assert_logged("http.exception", category="error")
    assert err["reason"] == "RuntimeError"
    assert err["metadata"]["exception_type"] == "builtins.RuntimeError"
    assert "Traceback" in err["metadata"]["stack"] and "boom" in err["metadata"]["stack"]
    assert "hunter2" not in repr(err)
    cap.assert_logged("http.request", metadata={"route": "/boom", "status": 500})
    slow = cap.assert_logged("http.slow_request", category="performance")
    assert slow["metadata"]["latency_ms"] > 50 and slow["metadata"]["threshold_ms"] == 50
    # the login body (with the password) was never read into an event
    assert "wrong" not in repr(cap.events)
    login = cap.assert_logged("http.request", metadata={"route": "/login"})
    assert login["metadata"]["request_bytes"] > 0


def test_sampling_is_deterministic_by_request_id() -> None:
    kept = [f"r{i}" for i in range(2000) if _sampled(f"r{i}", 0.25)]
    assert 400 < len(kept) < 600
    assert kept == [f"r{i}" for i in range(2000) if _sampled(f"r{i}", 0.25)]
    client = AuditKeep(testing=True)
    http = TestClient(fastapi_app(client, sample_rate=0.25), raise_server_exceptions=False)
    for i in range(40):
        http.get("/admin", headers={"X-Request-ID": f"r{i}"})
    access = client.captured.find("http.request")
    assert len(access) == sum(_sampled(f"r{i}", 0.25) for i in range(40))
    assert all(e["metadata"]["sample_rate"] == 0.25 for e in access)
    assert len(client.captured.find("http.forbidden")) == 40  # never sampled


def test_middleware_never_raises_into_the_app(tmp_path: Any) -> None:
    client = AuditKeep(
        "k", endpoints="http://127.0.0.1:9", outbox=tmp_path / "o.db", start_sender=False
    )
    client.close(0)  # every log() now raises ClientClosed
    http = TestClient(fastapi_app(client), raise_server_exceptions=False)
    assert http.get("/admin").status_code == 403
    # the endpoint's own log() raises ClientClosed: a 500, but the middleware adds nothing
    assert http.get("/docs/x", headers={"x-user": "u"}).status_code == 500


def test_non_http_scopes_pass_through() -> None:
    client = AuditKeep(testing=True)
    calls: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    mw = AuditKeepASGIMiddleware(inner, client=client)

    async def receive() -> Any:
        return {}

    async def send(message: Any) -> None:
        pass

    asyncio.run(mw({"type": "websocket", "path": "/ws"}, receive, send))
    asyncio.run(mw({"type": "lifespan"}, receive, send))
    assert calls == ["websocket", "lifespan"] and client.captured.events == []


def flask_app(client: AuditKeep, **options: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        user = flask_request.headers.get("X-User")
        if user:
            context.bind(actor=user)
        client.log("item.viewed", targets=[{"id": str(item_id), "type": "item"}])
        return {"id": item_id}

    @app.post("/login")
    def login() -> Any:
        body = flask_request.get_json()
        if body.get("password") != "right":
            abort(401)
        return {"ok": True}

    @app.get("/boom")
    def boom() -> Any:
        raise ValueError("secret=hunter2")

    instrument_flask(app, client, **options)
    return app


def test_flask_events() -> None:
    client = AuditKeep(testing=True)
    app = flask_app(client)
    http = app.test_client()
    resp = http.get(
        "/items/7?api_key=k-123&page=2",
        headers={"X-User": "bob", "X-Request-ID": "req-flask", "Authorization": "Basic Ym9iOnB3"},
        environ_base={"REMOTE_ADDR": "198.51.100.4"},
        buffered=True,  # like a real WSGI server: the response iterable is closed
    )
    assert resp.status_code == 200 and resp.headers["X-Request-ID"] == "req-flask"
    assert http.post("/login", json={"password": "hunter2"}, buffered=True).status_code == 401
    assert http.get("/boom", buffered=True).status_code == 500
    cap = client.captured
    viewed = cap.assert_logged("item.viewed", actor={"id": "bob"})
    assert viewed["context"] == {"ip": "198.51.100.4", "request_id": "req-flask"} | {
        k: v for k, v in viewed["context"].items() if k == "user_agent"
    }
    access = cap.assert_logged("http.request", metadata={"route": "/items/<int:item_id>"})
    assert access["metadata"]["query"] == {"api_key": REDACTED, "page": "2"}
    assert access["actor"]["id"] == "bob" and access["metadata"]["status"] == 200
    cap.assert_logged("http.unauthorized", category="security")
    err = cap.assert_logged("http.exception", category="error", reason="ValueError")
    assert "secret=[REDACTED]" in err["metadata"]["stack"]
    text = repr(cap.events)
    for secret in ("hunter2", "k-123", "Ym9iOnB3"):
        assert secret not in text


@pytest.mark.parametrize("trust", [True, False])
def test_forwarded_for_only_when_trusted(trust: bool) -> None:
    client = AuditKeep(testing=True)
    http = TestClient(fastapi_app(client, trust_forwarded=trust))
    http.get("/admin", headers={"X-Forwarded-For": "203.0.113.50, 10.0.0.1"})
    ev = client.captured.assert_logged("http.request")
    assert ev["context"].get("ip") == ("203.0.113.50" if trust else "127.0.0.1")


def test_asgi_with_the_async_client_writes_the_outbox(tmp_path: Any) -> None:
    from auditkeep_client import AsyncAuditKeep

    client = AsyncAuditKeep(
        "k",
        endpoints="http://127.0.0.1:9",
        outbox=tmp_path / "o.db",
        start_sender=False,
        flush_on_exit=0,
    )
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        await client.log("ping.received", actor="u1")
        return {"ok": "yes"}

    app.add_middleware(AuditKeepASGIMiddleware, client=client)
    http = TestClient(app)
    assert http.get("/ping", headers={"X-Request-ID": "r-async"}).status_code == 200
    assert client.sync.outbox is not None
    events = [json.loads(body) for _, _, body in client.sync.outbox.pending_events()]
    assert [e["action"] for e in events] == ["ping.received", "http.request"]
    assert all(e["context"]["request_id"] == "r-async" for e in events)
    asyncio.run(client.aclose(0.1))


def test_recording_failures_are_logged_without_payload(caplog: pytest.LogCaptureFixture) -> None:
    client = AuditKeep(testing=True)
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, str]:
        context.bind(actor={"id": "u1", "type": "Not A Type hunter2"})
        return {"ok": "yes"}

    app.add_middleware(AuditKeepASGIMiddleware, client=client)
    caplog.set_level(logging.ERROR, logger="auditkeep_client")
    assert TestClient(app).get("/x").status_code == 200
    messages = [r.getMessage() for r in caplog.records]
    assert messages and "actor.type" in messages[0]
    assert not any("hunter2" in m for m in messages)
