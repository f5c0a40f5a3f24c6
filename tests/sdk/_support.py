"""Real loopback HTTP peers for the SDK tests (no mocks of httpx).

- :class:`FakeAuditServer` speaks the ingest contract of ``POST /v1/events`` in memory, with
  the real schema validation and id idempotency, and can be scripted to answer 429/503/401/413
  or to reject chosen ids. It makes the protocol tests fast and deterministic.
- :class:`FaultProxy` forwards to a real auditkeep server and can be scripted to answer some
  requests itself (429 with Retry-After, 503, ...), to drop the connection after the upstream
  stored a batch, and it counts the results the upstream returned (accepted / duplicates).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from auditkeep_client.schema import EventValidationError, canonical_json, normalize_event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Scripted:
    """A canned answer: status, headers, JSON body (problem+json by default)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    drop: bool = False  # close the connection without answering


@dataclass
class RequestRecord:
    at: float
    status: int
    ids: list[str]
    auth: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    """A ThreadingHTTPServer on 127.0.0.1 in a thread, restartable on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.script: list[Scripted] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        raise NotImplementedError

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_POST(self) -> None:
                owner.handle(self, self._body())

            def do_GET(self) -> None:
                owner.handle(self, b"")

        self._httpd = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def next_scripted(self) -> Scripted | None:
        with self.lock:
            return self.script.pop(0) if self.script else None


def reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(data)


def send_scripted(handler: BaseHTTPRequestHandler, s: Scripted) -> None:
    if s.drop:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)
        return
    body = s.body
    if body is None:
        body = {"type": "about:blank", "title": f"HTTP {s.status}", "status": s.status}
    reply(handler, s.status, body, s.headers, "application/problem+json")


class FakeAuditServer(_Base):
    """The ingest contract in memory: validation, idempotency, per-event results."""

    def __init__(
        self,
        port: int | None = None,
        *,
        key: str = "test-key",
        max_events_per_request: int = 1000,
        delay: float = 0.0,
    ) -> None:
        super().__init__(port)
        self.key = key
        self.max_events_per_request = max_events_per_request
        self.delay = delay
        self.stored: dict[str, bytes] = {}
        self.order: list[str] = []
        self.requests: list[RequestRecord] = []
        self.reject_ids: set[str] = set()
        self.on_request: Callable[[list[str]], None] | None = None

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        auth = handler.headers.get("Authorization", "")
        if handler.command == "GET":
            reply(handler, 200, {"status": "ok"})
            return
        ids: list[str] = []
        try:
            parsed = json.loads(body)
            ids = [e.get("id", "") for e in parsed.get("events", [])]
        except (ValueError, AttributeError):
            parsed = None
        if self.on_request is not None:
            self.on_request(ids)
        if self.delay:
            time.sleep(self.delay)
        scripted = self.next_scripted()
        if scripted is not None:
            with self.lock:
                self.requests.append(RequestRecord(time.monotonic(), scripted.status, ids, auth))
            send_scripted(handler, scripted)
            return
        status, answer = self._ingest(auth, parsed, ids)
        with self.lock:
            self.requests.append(RequestRecord(time.monotonic(), status, ids, auth))
        reply(handler, status, answer)

    def _ingest(self, auth: str, parsed: Any, ids: list[str]) -> tuple[int, Any]:
        if auth != f"Bearer {self.key}":
            return 401, {"title": "Unauthorized", "status": 401, "detail": "bad key"}
        if not isinstance(parsed, dict) or not isinstance(parsed.get("events"), list):
            return 400, {"title": "Bad Request", "status": 400}
        events = parsed["events"]
        if len(events) > self.max_events_per_request:
            return 413, {"title": "Payload Too Large", "status": 413, "detail": "too many"}
        results: list[dict[str, Any]] = []
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        with self.lock:
            for raw in events:
                rid = raw.get("id") if isinstance(raw, dict) else None
                if rid in self.reject_ids:
                    results.append(
                        {
                            "id": rid,
                            "status": "rejected",
                            "error": {"title": "Conflict", "detail": "scripted rejection"},
                        }
                    )
                    counts["rejected"] += 1
                    continue
                try:
                    ev, _ = normalize_event(raw)
                except EventValidationError as exc:
                    results.append(
                        {
                            "id": rid,
                            "status": "rejected",
                            "error": {
                                "title": "Unprocessable",
                                "detail": str(exc),
                                "errors": [e.as_dict() for e in exc.errors],
                            },
                        }
                    )
                    counts["rejected"] += 1
                    continue
                canon = canonical_json(ev)
                prev = self.stored.get(ev["id"])
                if prev is None:
                    self.stored[ev["id"]] = canon
                    self.order.append(ev["id"])
                    results.append({"id": ev["id"], "status": "accepted", "seq": len(self.order)})
                    counts["accepted"] += 1
                elif prev == canon:
                    seq = self.order.index(ev["id"]) + 1
                    results.append({"id": ev["id"], "status": "duplicate", "seq": seq})
                    counts["duplicate"] += 1
                else:
                    results.append(
                        {
                            "id": ev["id"],
                            "status": "rejected",
                            "error": {"title": "Conflict", "detail": "same id, other content"},
                        }
                    )
                    counts["rejected"] += 1
        return 200, {
            "results": results,
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
        }

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(self.stored[i]) for i in self.order]


class FaultProxy(_Base):
    """Forwards ``/v1/events`` and everything else to ``upstream``; scriptable faults."""

    def __init__(self, upstream: str, port: int | None = None) -> None:
        super().__init__(port)
        self.upstream = upstream.rstrip("/")
        self.http = httpx.Client(timeout=30)
        self.requests: list[RequestRecord] = []
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.drop_after_forward = 0  # forward, then drop the connection (the next N requests)

    def stop(self) -> None:
        super().stop()
        self.http.close()

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        auth = handler.headers.get("Authorization", "")
        ids: list[str] = []
        if body:
            with contextlib.suppress(ValueError, AttributeError):
                ids = [e.get("id", "") for e in json.loads(body).get("events", [])]
        scripted = self.next_scripted()
        if scripted is not None:
            with self.lock:
                self.requests.append(RequestRecord(time.monotonic(), scripted.status, ids, auth))
            send_scripted(handler, scripted)
            return
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() in ("authorization", "content-type")
        }
        resp = self.http.request(
            handler.command, self.upstream + handler.path, content=body or None, headers=headers
        )
        with self.lock:
            self.requests.append(RequestRecord(time.monotonic(), resp.status_code, ids, auth))
            if resp.status_code == 200 and handler.command == "POST":
                data = resp.json()
                self.accepted += int(data.get("accepted", 0))
                self.duplicates += int(data.get("duplicates", 0))
                self.rejected += int(data.get("rejected", 0))
            drop = self.drop_after_forward > 0 and handler.command == "POST"
            if drop:
                self.drop_after_forward -= 1
        if drop:
            send_scripted(handler, Scripted(0, drop=True))
            return
        out_headers = {
            k: v for k, v in resp.headers.items() if k.lower() in ("retry-after", "x-request-id")
        }
        reply(
            handler,
            resp.status_code,
            resp.content,
            out_headers,
            resp.headers.get("content-type", "application/json"),
        )
