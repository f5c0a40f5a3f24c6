"""A webhook receiver for bench/delivery.py, run as its own process.

    python bench/_webhook_receiver.py PORT SECRET

POST /hook: verifies the Standard Webhooks signature (the `standardwebhooks` package), parses
the batch, and records for every event the lag ``now - received_at``. POST /direct: the same
parsing without a signature (the baseline's target). GET /stats returns the counts and lags and
resets them. Runs until SIGTERM.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

PORT, SECRET = int(sys.argv[1]), sys.argv[2]
VERIFIER = Webhook(SECRET)
LOCK = threading.Lock()
STATE: dict[str, Any] = {"events": 0, "batches": 0, "lags": [], "seqs": set(), "bad": 0}


def _micros(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        now = time.time()
        if self.path == "/hook":
            try:
                payload = VERIFIER.verify(body, dict(self.headers.items()))
            except Exception:
                with LOCK:
                    STATE["bad"] += 1
                self._answer(400)
                return
            events = payload["data"]["events"]
        else:
            events = json.loads(body)["events"]
        lags = [now - _micros(e["received_at"]) for e in events if "received_at" in e]
        with LOCK:
            STATE["events"] += len(events)
            STATE["batches"] += 1
            STATE["lags"] += lags
            STATE["seqs"].update(e.get("seq") for e in events)
        self._answer(204)

    def do_GET(self) -> None:
        with LOCK:
            out = {
                "events": STATE["events"],
                "batches": STATE["batches"],
                "distinct": len(STATE["seqs"]),
                "bad": STATE["bad"],
                "lags": STATE["lags"],
            }
            STATE.update(events=0, batches=0, lags=[], seqs=set(), bad=0)
        self._answer(200, json.dumps(out).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
