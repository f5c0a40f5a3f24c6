"""Real-browser harness: Debian's Chromium driven by Playwright, a real auditkeep server, and a
customer's page on another origin that embeds the timeline under a strict CSP.

Used by tests/web, bench/timeline.py and scripts/screenshots.py. Never runs
`playwright install`: the browser is /usr/bin/chromium (scripts/test.sh installs it).
"""

from __future__ import annotations

import html
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from tests.conftest import LiveServer, create_tenant_key, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does); "
            "never `playwright install`"
        )
    pw: Playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def host_csp(api: str) -> str:
    """The strict CSP a customer's page needs to embed the timeline served by ``api``."""
    return (
        f"default-src 'self'; script-src 'self' {api}; style-src 'self' {api}; "
        f"connect-src 'self' {api}; img-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


HOST_CSS = b"""
body { margin: 0; padding: 24px; background: #f6f7f9; font-family: system-ui, sans-serif; }
@media (max-width: 520px) { body { padding: 12px; } }
main { max-width: 880px; margin: 0 auto; }
h1 { font-size: 20px; margin: 0 0 16px; color: #1f2328; }
main.teal auditkeep-timeline { --ak-accent: rgb(15, 118, 110); --ak-bg: rgb(11, 18, 32);
  --ak-fg: rgb(229, 231, 235); --ak-radius: 2px; }
"""


@dataclass
class HostSite:
    """The customer's site: pages registered by name, served with a strict CSP header from
    another origin than the API (``http://localhost:PORT`` vs ``http://127.0.0.1:PORT``)."""

    api: str
    port: int = field(default_factory=free_port)
    pages: dict[str, bytes] = field(default_factory=dict)
    csp: str = ""
    _server: ThreadingHTTPServer | None = None
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def other_origin(self) -> str:
        """Same server, another origin (not in cors_allow_origins)."""
        return f"http://127.0.0.1:{self.port}"

    def page(self, *, extra_head: str = "", theme: str = "", **attrs: str | bool) -> str:
        """Register a page embedding ``<auditkeep-timeline>`` with ``attrs``; its path."""
        rendered = " ".join(
            html.escape(k.replace("_", "-"))
            if v is True
            else f'{html.escape(k.replace("_", "-"))}="{html.escape(str(v))}"'
            for k, v in attrs.items()
            if v is not False
        )
        body = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>Customer app</title><link rel='stylesheet' href='/host.css'>"
            f"<script type='module' src='{self.api}/static/timeline.js'></script>{extra_head}"
            f"</head><body><main class='{html.escape(theme)}'><h1>Your account activity</h1>"
            f"<auditkeep-timeline {rendered}></auditkeep-timeline></main></body></html>"
        )
        path = f"/page{next(self._ids)}.html"
        self.pages[path] = body.encode()
        return path

    def start(self) -> None:
        site = self
        self.csp = host_csp(self.api)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/host.css":
                    body, ctype = HOST_CSS, "text/css"
                elif path == "/favicon.ico":
                    body, ctype = b"", "image/x-icon"
                elif path in site.pages:
                    body, ctype = site.pages[path], "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Security-Policy", site.csp)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class Watched:
    """A page with its console errors, uncaught exceptions and CSP violations recorded."""

    page: Page
    errors: list[str] = field(default_factory=list)
    expect_errors: bool = False  # a test that provokes errors on purpose sets this

    def timeline(self) -> Any:
        return self.page.locator("auditkeep-timeline")


# Runs before any page script via the DevTools protocol (not subject to the page's CSP).
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def open_page(
    browser: Browser, url: str, *, setup: Callable[[Page], None] | None = None, **context: Any
) -> Watched:
    """Open ``url`` in a fresh context (``context``: viewport etc.); ``setup`` runs on the
    page before it navigates (e.g. to hold a request)."""
    page = browser.new_context(**context).new_page()
    if setup is not None:
        setup(page)
    watched = Watched(page)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning") and "Content Security Policy" in msg.text:
            watched.errors.append(f"CSP: {msg.text}")
        elif msg.type == "error":
            watched.errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"pageerror: {exc}"))
    page.add_init_script(_RECORD_VIOLATIONS)
    page.goto(url)
    return watched


def csp_violations(watched: Watched) -> list[str]:
    result: list[str] = watched.page.evaluate("window.__cspViolations")
    return result


# -- data ------------------------------------------------------------------------------------

PEOPLE = [
    ("u_ada", "Ada Lovelace"),
    ("u_grace", "Grace Hopper"),
    ("u_alan", "Alan Turing"),
    ("u_katherine", "Katherine Johnson"),
    ("svc_billing", None),
]
ACTIONS = [
    ("user.login", ("session", "Web session")),
    ("document.shared", ("document", "Q3 board deck")),
    ("document.viewed", ("document", "Pricing 2027.xlsx")),
    ("invoice.paid", ("invoice", "INV-20461")),
    ("member.role_changed", ("member", "Ada Lovelace")),
    ("api_key.created", ("api_key", "ci-deploy")),
    ("user.password_changed", ("user", "Grace Hopper")),
    ("settings.updated", ("workspace", "Acme Corp")),
    ("user.login_failed", ("session", "Web session")),
    ("export.downloaded", ("export", "audit-2026-11.csv")),
]


def realistic_events(n: int, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """``n`` events, newest last, minutes apart, ending a minute before ``now``."""
    now = now or datetime.now(UTC)
    out = []
    for i in range(n):
        actor_id, name = PEOPLE[i % len(PEOPLE)]
        action, (ttype, tname) = ACTIONS[i % len(ACTIONS)]
        when = now - timedelta(minutes=1 + (n - i) * 7)
        actor: dict[str, Any] = {"id": actor_id, "type": "user" if name else "service"}
        if name:
            actor["name"] = name
        ev: dict[str, Any] = {
            "id": f"evt-{i:05d}",
            "action": action,
            "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": actor,
            "targets": [{"id": f"{ttype}_{i % 17}", "type": ttype, "name": tname}],
            "outcome": "failure" if action == "user.login_failed" else "success",
            "context": {"ip": f"203.0.113.{i % 250 + 1}", "user_agent": "Mozilla/5.0"},
            "metadata": {"plan": "pro", "n": i, "note": "café"},
        }
        out.append(ev)
    return out


def ingest(server: LiveServer, events: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {server.write_key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        for start in range(0, len(events), 1000):
            r = client.post("/v1/events", json={"events": events[start : start + 1000]})
            r.raise_for_status()
            assert r.json()["accepted"] + r.json()["duplicates"] == len(
                events[start : start + 1000]
            ), r.text
        client.post("/v1/log/checkpoints").raise_for_status()


@dataclass
class Deployment:
    server: LiveServer
    host: HostSite
    read_key: str
    log_key: str


@contextmanager
def deployment(base: Path, n_events: int) -> Iterator[Deployment]:
    """A real server with ``n_events`` events (checkpoint signed), a read key, and the
    customer's site on another origin allowed by cors_allow_origins."""
    data_dir = base / "data"
    write_key = create_tenant_key(data_dir, "acme", "events:write")
    read_key = create_tenant_key(data_dir, "acme", "events:read")
    host_port = free_port()
    server = LiveServer(
        data_dir=data_dir,
        port=free_port(),
        write_key=write_key,
        settings={
            "cors_allow_origins": f"http://localhost:{host_port}",
            "checkpoint_interval": "0",
        },
    )
    server.start()
    host = HostSite(api=server.url, port=host_port)
    host.start()
    try:
        ingest(server, realistic_events(n_events))
        log_key = httpx.get(server.url + "/v1/log/key").text.strip().splitlines()[0]
        yield Deployment(server, host, read_key, log_key)
    finally:
        host.stop()
        server.stop()
