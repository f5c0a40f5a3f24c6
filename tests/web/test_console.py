"""The console in a real browser (Chromium via Playwright) against a real server with 1,000
events: sign-in, search, paging, live tail, proof badges, sign-out, and a clean console (no
errors, no CSP violations) on every page."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import create_tenant_key, event
from tests.web.harness import Deployment, Watched, csp_violations, open_page

OpenConsole = Callable[..., Watched]


@pytest.fixture
def signed_in(browser: Browser, deployed: Deployment) -> Iterator[OpenConsole]:
    """Sign in with ``key`` (the deployment's read key by default) in a fresh browser context,
    then open ``path``. Afterwards, every page must have logged no error or CSP violation."""
    opened: list[Watched] = []

    def open_(path: str = "/console/events", key: str | None = None, **context: object) -> Watched:
        w = open_page(browser, deployed.server.url + "/console", **context)
        opened.append(w)
        expect(w.page).to_have_url(re.compile(r"/console/sign-in"))
        w.page.fill("#key", key or deployed.read_key)
        w.page.click("button[type=submit]")
        expect(w.page.locator("header nav")).to_be_visible()
        w.page.goto(deployed.server.url + path)
        return w

    yield open_
    for w in opened:
        assert w.errors == [], w.errors
        assert csp_violations(w) == []
        w.page.context.close()


def _ids(w: Watched) -> list[str]:
    ids: list[str] = w.page.locator("tbody#rows tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    return ids


def test_sign_in_search_and_filter(signed_in: OpenConsole, deployed: Deployment) -> None:
    w = signed_in()
    expect(w.page.locator("tbody#rows tr[data-id]")).to_have_count(50)
    w.page.fill("input[name=action]", "user.*")
    w.page.select_option("select[name=outcome]", "failure")
    w.page.click("form.filters button[type=submit]")
    expect(w.page).to_have_url(re.compile(r"action=user\.\*.*outcome=failure"))
    actions = w.page.locator("tbody#rows a.action").all_text_contents()
    assert actions and set(actions) == {"user.login_failed"}
    # the URL is shareable: the same filters in a fresh tab show the same rows
    url = w.page.url
    again = signed_in(url.removeprefix(deployed.server.url))
    assert _ids(again) == _ids(w)


def test_page_through_1000_events(signed_in: OpenConsole) -> None:
    w = signed_in()
    seen: list[str] = []
    for _ in range(40):
        seen += _ids(w)
        nxt = w.page.locator("a.next")
        if nxt.count() == 0:
            break
        nxt.click()
        expect(w.page).to_have_url(re.compile("cursor="))
    assert len(seen) == len(set(seen))
    assert {f"evt-{i:05d}" for i in range(1000)} <= set(seen)


def test_event_detail_proof_is_green_and_red_when_tampered(
    signed_in: OpenConsole, deployed: Deployment
) -> None:
    w = signed_in("/console/events/evt-00010")
    expect(w.page.locator("#proof")).to_have_attribute("data-state", "verified")
    expect(w.page.locator("#proof")).to_have_text("Verified")
    seq = 358  # evt-00357: change who did it, straight in the SQLite file
    conn = sqlite3.connect(deployed.server.data_dir / "auditkeep.db", isolation_level=None)
    try:
        (data,) = conn.execute("SELECT leaf_data FROM events WHERE seq = ?", (seq,)).fetchone()
        forged = bytes(data).replace(b'"name":"Alan Turing"', b'"name":"Mallory"')
        assert forged != bytes(data)
        conn.execute("UPDATE events SET leaf_data = ? WHERE seq = ?", (forged, seq))
    finally:
        conn.close()
    w.page.goto(deployed.server.url + "/console/events/evt-00357")
    expect(w.page.locator(".facts")).to_contain_text("Mallory")
    expect(w.page.locator("#proof")).to_have_attribute("data-state", "failed")
    expect(w.page.locator("#proof")).to_have_attribute(
        "title", re.compile("content does not match its hash")
    )


def test_live_tail_shows_a_new_event_within_2_s(
    signed_in: OpenConsole, deployed: Deployment
) -> None:
    w = signed_in("/console/tail")
    expect(w.page.locator("#live")).to_have_attribute("data-state", "live")
    expect(w.page.locator("tbody#rows tr[data-id]")).to_have_count(50)
    r = httpx.post(
        deployed.server.url + "/v1/events",
        json={"events": [event("tail-1", action="tail.arrived")]},
        headers={"Authorization": f"Bearer {deployed.server.write_key}"},
    )
    assert r.status_code == 200, r.text
    first = w.page.locator("tbody#rows tr[data-id]").first
    expect(first).to_have_attribute("data-id", event("tail-1")["id"], timeout=2000)
    expect(first.locator("a.action")).to_have_text("tail.arrived")


def test_sign_out_ends_the_session(
    signed_in: OpenConsole, browser: Browser, deployed: Deployment
) -> None:
    w = signed_in()
    cookies = w.page.context.cookies()
    assert [c["name"] for c in cookies] == ["ak_console"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    w.page.click("text=Sign out")
    expect(w.page).to_have_url(re.compile("/console/sign-in"))
    w.page.goto(deployed.server.url + "/console/events")
    expect(w.page).to_have_url(re.compile("/console/sign-in"))
    # the old cookie, replayed in another browser, no longer works
    other = open_page(browser, "about:blank")
    other.page.context.add_cookies(cookies)  # type: ignore[arg-type]
    other.page.goto(deployed.server.url + "/console/events")
    expect(other.page).to_have_url(re.compile("/console/sign-in"))
    other.page.context.close()


def test_a_tenant_session_sees_neither_other_tenants_nor_operator_pages(
    signed_in: OpenConsole, deployed: Deployment
) -> None:
    other_key = create_tenant_key(deployed.server.data_dir, "globex", "events:read,events:write")
    r = httpx.post(
        deployed.server.url + "/v1/events",
        json={"events": [event("globex-1", action="globex.secret")]},
        headers={"Authorization": f"Bearer {other_key}"},
    )
    assert r.status_code == 200, r.text
    w = signed_in("/console/events?action=globex.secret")
    expect(w.page.locator("tr.empty")).to_have_text("No events match.")
    assert w.page.locator("header nav a").all_text_contents() == ["Events", "Live tail"]
    globex = signed_in("/console/events?action=globex.secret", key=other_key)
    expect(globex.page.locator("tbody#rows tr[data-id]")).to_have_count(1)


def test_usable_on_a_phone(signed_in: OpenConsole) -> None:
    w = signed_in(viewport={"width": 390, "height": 844}, is_mobile=True)
    expect(w.page.locator("tbody#rows tr[data-id]")).to_have_count(50)
    width = w.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
