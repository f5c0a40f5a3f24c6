"""Real HTTP receivers on loopback for delivery tests: a Standard Webhooks receiver that
verifies every request with the independent ``standardwebhooks`` package, and a Splunk HEC
receiver that checks the HEC wire format and the ``Authorization: Splunk <token>`` header.

Each can be stopped and started again on the same port, to play a receiver that goes down.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import free_port

# (status, headers, body) for a request (path, headers, body)
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class HTTPReceiver:
    """A threaded HTTP server whose answers come from ``handle``."""

    def __init__(self, handle: Callable[[Received], Answer]) -> None:
        self.port = free_port()
        self.handle = handle
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                req = Received(self.path, dict(self.headers.items()), self.rfile.read(length))
                with receiver.lock:
                    receiver.requests.append(req)
                status, headers, body = receiver.handle(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class WebhookLog:
    """What a verifying webhook receiver accepted, by batch id (repeats counted)."""

    secret: str
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: int = 0
    rejected: list[str] = field(default_factory=list)
    answer: Callable[[Received], Answer | None] | None = None

    def handle(self, req: Received) -> Answer:
        if self.answer is not None:
            forced = self.answer(req)
            if forced is not None:
                return forced
        try:
            payload = Webhook(self.secret).verify(req.body, req.headers)
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return 400, {}, b"bad signature"
        msg_id = req.headers["webhook-id"]
        if msg_id in self.batches:
            self.repeats += 1
        self.batches[msg_id] = payload
        return 204, {}, b""

    def events(self) -> list[dict[str, Any]]:
        """Every event received, by seq order of the batches (a repeated batch once)."""
        batches = sorted(self.batches.values(), key=lambda p: p["data"]["first_seq"])
        return [e for b in batches for e in b["data"]["events"]]


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def hec_check(token: str, req: Received) -> list[dict[str, Any]]:
    """Parse and check one HEC request; return its event objects (AssertionError if wrong)."""
    assert req.path == "/services/collector/event", req.path
    assert req.headers.get("Authorization") == f"Splunk {token}"
    decoder = json.JSONDecoder()
    text = req.body.decode()
    items, pos = [], 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        item, pos = decoder.raw_decode(text, pos)
        assert isinstance(item, dict) and isinstance(item["event"], dict)
        assert isinstance(item["time"], int | float) and item["time"] > 1e9
        assert set(item) <= {"time", "host", "source", "sourcetype", "index", "fields", "event"}
        assert all(not isinstance(v, dict | list) for v in item.get("fields", {}).values())
        items.append(item)
    assert items, "an empty HEC request"
    return items
