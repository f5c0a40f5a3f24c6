"""Take the README's screenshots of the embedded timeline and the console with Playwright and
Debian's Chromium (/usr/bin/chromium; never `playwright install`).

    .venv/bin/python scripts/screenshots.py   # writes docs/images/timeline*.png, console*.png

It starts a real server with realistic events, serves a customer's page from another origin
under a strict CSP (tests/web/harness.py) and lets the timeline verify every row.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Browser, expect  # noqa: E402

from tests.web.harness import chromium, csp_violations, deployment, open_page  # noqa: E402

IMAGES = REPO / "docs" / "images"


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, deployment(Path(tmp), 240) as d, chromium() as b:
        path = d.host.page(
            token=d.read_key,
            endpoint=d.server.url,
            log_key=d.log_key,
            page_size="8",
            auto_verify=True,
        )
        for name, viewport, expand in (
            ("timeline.png", {"width": 920, "height": 860}, 1),
            ("timeline-phone.png", {"width": 390, "height": 844}, None),
        ):
            w = open_page(b, d.host.origin + path, viewport=viewport, device_scale_factor=2)
            timeline = w.timeline()
            expect(timeline.locator('button.badge[data-state="verified"]')).to_have_count(8)
            if expand is not None:
                timeline.locator("button.summary").nth(expand).click()
                expect(timeline.locator(".detail").nth(expand)).to_be_visible()
            w.page.screenshot(path=str(IMAGES / name), full_page=True)
            assert w.errors == [] and csp_violations(w) == [], w.errors
            w.page.context.close()
            print(f"wrote {IMAGES / name}")
        console(b, d.server.url, d.read_key)
    return 0


def console(b: Browser, url: str, key: str) -> None:
    """The console's event search, signed in with the read key, and one event's detail."""
    w = open_page(b, url + "/console", viewport={"width": 1200, "height": 760})
    w.page.fill("#key", key)
    w.page.click("button[type=submit]")
    expect(w.page.locator("tbody#rows tr[data-id]").first).to_be_visible()
    w.page.goto(url + "/console/events?action=user.*")
    expect(w.page.locator("tbody#rows tr[data-id]").first).to_be_visible()
    w.page.screenshot(path=str(IMAGES / "console.png"))
    first = w.page.locator("tbody#rows a.action").first
    first.click()
    expect(w.page.locator("#proof")).to_have_attribute("data-state", "verified")
    w.page.screenshot(path=str(IMAGES / "console-event.png"), full_page=True)
    assert w.errors == [] and csp_violations(w) == [], w.errors
    w.page.context.close()
    print(f"wrote {IMAGES / 'console.png'}, {IMAGES / 'console-event.png'}")


if __name__ == "__main__":
    sys.exit(main())
