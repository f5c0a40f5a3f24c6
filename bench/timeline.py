"""Timeline first render in a real browser: from <auditkeep-timeline> connecting to its
first 50 rows in the DOM, against the bare fetch of the same page of events from the same
page (the baseline: network + server), and the time to verify all 50 rows in the browser.

    .venv/bin/python bench/timeline.py [--events N] [--runs R]

Uses Debian's Chromium (/usr/bin/chromium) through Playwright, a real `auditkeep serve`
with N realistic events (default 10,000) and the customer's page on another origin under a
strict CSP, as tests/web does. Each run opens a fresh browser context (cold caches).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import expect  # noqa: E402

from tests.web.harness import chromium, deployment, open_page  # noqa: E402

BASELINE = """async ([api, token]) => {
  const t0 = performance.now();
  const r = await fetch(api + "/v1/events?limit=50", {headers: {Authorization: "Bearer " + token}});
  await r.json();
  return performance.now() - t0;
}"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    render, fetch, verify = [], [], []
    with (
        tempfile.TemporaryDirectory() as tmp,
        deployment(Path(tmp), args.events) as d,
        chromium() as browser,
    ):
        plain = d.host.page(token=d.read_key, endpoint=d.server.url, log_key=d.log_key)
        auto = d.host.page(
            token=d.read_key, endpoint=d.server.url, log_key=d.log_key, auto_verify=True
        )
        for i in range(args.runs + 1):
            w = open_page(browser, d.host.origin + plain)
            expect(w.timeline().locator("li.row")).to_have_count(50)
            ms = w.timeline().evaluate("(el) => el.firstRenderMs")
            base = w.page.evaluate(BASELINE, [d.server.url, d.read_key])
            w.page.context.close()
            w = open_page(browser, d.host.origin + auto)
            verified = w.timeline().locator('button.badge[data-state="verified"]')
            expect(verified).to_have_count(50, timeout=30_000)
            all_ms = w.timeline().evaluate("(el) => el.lastVerifiedMs")
            w.page.context.close()
            if i == 0:
                continue  # warm-up: the server's first queries, the browser's first start
            render.append(ms)
            fetch.append(base)
            verify.append(all_ms)
    print(f"events in the log: {args.events}, runs: {args.runs}, Chromium headless, loopback")
    for name, values in (
        ("first render, 50 rows (connect -> rows in DOM)", render),
        ("baseline: fetch + parse the same 50 events", fetch),
        ("render + verify all 50 rows in the browser", verify),
    ):
        print(
            f"{name:50s} median {statistics.median(values):6.0f} ms   p95 {pct(values, 95):6.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
