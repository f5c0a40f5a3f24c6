"""The embedded timeline in a real Chromium, against a real server, on a customer's page of
another origin with a strict CSP: rendering, paging, filtering, keyboard, in-browser proofs."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable

from playwright.sync_api import expect

from auditkeep.integrity.checkpoint import generate_signer
from tests.web.harness import Deployment, Watched, csp_violations

OpenTimeline = Callable[..., Watched]


def rows(w: Watched):  # type: ignore[no-untyped-def]
    return w.timeline().locator("li.row")


def test_renders_events_newest_first(open_timeline: OpenTimeline) -> None:
    w = open_timeline()
    expect(rows(w)).to_have_count(50)
    first = rows(w).first
    expect(first).to_have_attribute("data-id", "evt-00999")
    expect(first.locator(".actor")).to_have_text("svc_billing")  # a service without a name
    expect(first.locator(".action")).to_have_text("export.downloaded")
    expect(first.locator(".target")).to_contain_text("audit-2026-11.csv")
    expect(first.locator(".pill")).to_have_text("Success")
    expect(first.locator("time")).to_have_text("8 minutes ago")
    expect(w.timeline().locator(".status")).to_have_text("Showing 50 events")


def test_pages_through_1000_events_with_load_more(open_timeline: OpenTimeline) -> None:
    w = open_timeline(page_size="100")
    more = w.timeline().locator("button.more")
    for shown in range(100, 1001, 100):
        expect(rows(w)).to_have_count(shown)
        expect(w.timeline().locator(".status")).to_have_text(f"Showing {shown} events")
        if shown < 1000:
            more.click()
    if more.is_visible():  # the last full page still carries a cursor: one empty page
        more.click()
    expect(more).to_be_hidden()
    expect(rows(w)).to_have_count(1000)
    ids = rows(w).evaluate_all("(els) => els.map((e) => e.dataset.id)")
    assert ids == [f"evt-{i:05d}" for i in range(999, -1, -1)]


def test_filters_by_action_and_outcome(open_timeline: OpenTimeline) -> None:
    w = open_timeline()
    t = w.timeline()
    t.locator("input.query").fill("document.shared")
    t.locator("button.search").click()
    expect(t.locator(".status")).to_have_text("Showing 50 events · action document.shared")
    expect(t.locator("button.more")).to_be_visible()  # 100 such events: a second page
    actions = t.locator("li.row .action").all_inner_texts()
    assert set(actions) == {"document.shared"}
    t.locator("input.query").fill("user.*")
    t.locator("select.outcome-filter").select_option("failure")
    t.locator("input.query").press("Enter")
    expect(t.locator(".status")).to_have_text("Showing 50 events · action user.* · failure")
    assert set(t.locator("li.row .action").all_inner_texts()) == {"user.login_failed"}
    assert set(t.locator("li.row .pill").all_inner_texts()) == {"Failure"}
    t.locator("select.field").select_option("actor_id")
    t.locator("input.query").fill("nobody")
    t.locator("input.query").press("Enter")
    expect(t.locator(".status")).to_have_text("No activity matches · actor nobody · failure")
    expect(rows(w)).to_have_count(0)


def test_verify_badge_is_green_for_a_stored_event(open_timeline: OpenTimeline) -> None:
    w = open_timeline()
    badge = rows(w).nth(3).locator("button.badge")
    badge.click()
    expect(badge).to_have_attribute("data-state", "verified")
    expect(badge).to_have_text("Verified")
    expect(badge).to_have_attribute(
        "title", "leaf 996 of auditkeep.local/acme at size 1000, signed by auditkeep.local"
    )


def test_auto_verify_checks_every_row(open_timeline: OpenTimeline) -> None:
    w = open_timeline(auto_verify=True, page_size="20")
    expect(w.timeline().locator('button.badge[data-state="verified"]')).to_have_count(20)


def test_verify_badge_is_red_for_an_event_tampered_in_the_database(
    open_timeline: OpenTimeline, deployed: Deployment
) -> None:
    seq = 358  # evt-00357: Alan Turing updated the settings of workspace_0; change who did
    conn = sqlite3.connect(deployed.server.data_dir / "auditkeep.db", isolation_level=None)
    try:
        (data,) = conn.execute("SELECT leaf_data FROM events WHERE seq = ?", (seq,)).fetchone()
        forged = bytes(data).replace(b'"name":"Alan Turing"', b'"name":"Mallory"')
        assert forged != bytes(data)
        conn.execute("UPDATE events SET leaf_data = ? WHERE seq = ?", (forged, seq))
    finally:
        conn.close()
    w = open_timeline()
    t = w.timeline()
    t.locator("select.field").select_option("target_id")
    t.locator("input.query").fill("workspace_0")
    t.locator("input.query").press("Enter")
    row = t.locator('li.row[data-id="evt-00357"]')
    expect(row.locator(".actor")).to_have_text("Mallory")
    row.locator("button.badge").click()
    expect(row.locator("button.badge")).to_have_attribute("data-state", "failed")
    expect(row.locator("button.badge")).to_have_attribute(
        "title", re.compile("^the event's content does not match its hash")
    )
    # an untampered neighbour still verifies
    other = t.locator("li.row").first
    assert other.get_attribute("data-id") != "evt-00357"
    other.locator("button.badge").click()
    expect(other.locator("button.badge")).to_have_attribute("data-state", "verified")


def test_verify_badge_is_red_when_content_and_hash_were_both_rewritten(
    open_timeline: OpenTimeline, deployed: Deployment
) -> None:
    """A forger who also recomputes the stored leaf hash is caught by the proof: the new leaf
    does not lead to the signed root."""
    seq = 368  # evt-00367: Alan Turing updated workspace_10; now it says it failed
    conn = sqlite3.connect(deployed.server.data_dir / "auditkeep.db", isolation_level=None)
    try:
        (data,) = conn.execute("SELECT leaf_data FROM events WHERE seq = ?", (seq,)).fetchone()
        forged = bytes(data).replace(b'"outcome":"success"', b'"outcome":"failure"')
        assert forged != bytes(data)
        conn.execute(
            "UPDATE events SET leaf_data = ?, leaf_hash = ? WHERE seq = ?",
            (forged, hashlib.sha256(b"\x00" + forged).digest(), seq),
        )
    finally:
        conn.close()
    w = open_timeline()
    t = w.timeline()
    t.locator("select.field").select_option("target_id")
    t.locator("input.query").fill("workspace_10")
    t.locator("input.query").press("Enter")
    row = t.locator('li.row[data-id="evt-00367"]')
    expect(row.locator(".pill")).to_have_text("Failure")
    row.locator("button.badge").click()
    expect(row.locator("button.badge")).to_have_attribute("data-state", "failed")
    expect(row.locator("button.badge")).to_have_attribute(
        "title", re.compile(r"^the proof leads to root [0-9a-f]{64}, not the signed root")
    )
    row.locator("button.summary").click()
    expect(row.locator(".reason")).to_contain_text("(leaf index 367, tree size 1000)")


def test_verify_badge_is_red_when_the_page_pins_another_log_key(
    open_timeline: OpenTimeline,
) -> None:
    _, impostor = generate_signer("auditkeep.local")  # same name, another key
    w = open_timeline(log_key=impostor)
    badge = rows(w).first.locator("button.badge")
    badge.click()
    expect(badge).to_have_attribute("data-state", "failed")
    expect(badge).to_have_attribute(
        "title", re.compile("^the checkpoint is not signed by the pinned log key")
    )
    # a key whose id does not match its name and material is refused as such
    w2 = open_timeline(log_key=impostor.replace("+", "+0", 1)[: len(impostor)])
    badge2 = rows(w2).first.locator("button.badge")
    badge2.click()
    expect(badge2).to_have_attribute("data-state", "failed")


def test_keyboard_tab_reaches_rows_and_enter_expands(open_timeline: OpenTimeline) -> None:
    w = open_timeline()
    expect(rows(w)).to_have_count(50)
    page = w.page
    focused = ""
    for _ in range(12):  # the filters come first, then the first row's summary
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => document.activeElement.shadowRoot?.activeElement?.className ?? ''"
        )
        if focused == "summary":
            break
    assert focused == "summary"
    first = rows(w).first
    expect(first.locator(".detail")).to_be_hidden()
    page.keyboard.press("Enter")
    expect(first.locator("button.summary")).to_have_attribute("aria-expanded", "true")
    expect(first.locator(".detail")).to_be_visible()
    expect(first.locator(".detail dd").first).to_have_text("evt-00999")
    page.keyboard.press("Tab")  # next: the row's verify badge, then Enter checks it
    page.keyboard.press("Enter")
    expect(first.locator("button.badge")).to_have_attribute("data-state", "verified")
    outline = first.locator("button.badge").evaluate("(el) => getComputedStyle(el).outlineStyle")
    assert outline == "solid"  # focus is visible


def test_usable_at_phone_width(browser, deployed: Deployment) -> None:  # type: ignore[no-untyped-def]
    from tests.web.harness import open_page

    path = deployed.host.page(
        token=deployed.read_key, endpoint=deployed.server.url, log_key=deployed.log_key
    )
    w = open_page(browser, deployed.host.origin + path, viewport={"width": 375, "height": 740})
    try:
        expect(rows(w)).to_have_count(50)
        width = w.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375  # no horizontal scrolling
        badge = rows(w).first.locator("button.badge")
        box = badge.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 375
        assert w.errors == [] and csp_violations(w) == []
    finally:
        w.page.context.close()


def test_an_origin_not_allowed_is_refused_by_the_browser(
    open_timeline: OpenTimeline, deployed: Deployment
) -> None:
    w = open_timeline(origin=deployed.host.other_origin)
    w.expect_errors = True  # the browser logs the CORS refusal
    alert = w.timeline().locator(".alert")
    expect(alert).to_contain_text("cors_allow_origins")
    expect(rows(w)).to_have_count(0)
    assert any("CORS" in e or "Access-Control-Allow-Origin" in e for e in w.errors), w.errors


def test_the_harness_sees_csp_violations(open_timeline: OpenTimeline) -> None:
    """Control: an inline script on the host page is blocked and recorded, so the empty
    lists the other tests assert mean something."""
    w = open_timeline(extra_head="<script>window.inline = 1</script>")
    w.expect_errors = True
    expect(rows(w)).to_have_count(50)
    assert w.page.evaluate("() => window.inline") is None
    assert any(v.startswith("script-src") for v in csp_violations(w))
    assert any(e.startswith("CSP:") for e in w.errors)


def test_theming_with_css_custom_properties(open_timeline: OpenTimeline) -> None:
    w = open_timeline(theme="teal")
    t = w.timeline()
    expect(rows(w)).to_have_count(50)
    style = t.locator("button.search").evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert style == "rgb(15, 118, 110)"
    card = t.locator(".ak").evaluate(
        "(el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color, "
        "getComputedStyle(el).borderTopLeftRadius]"
    )
    assert card == ["rgb(11, 18, 32)", "rgb(229, 231, 235)", "2px"]


def test_first_render_of_50_rows(open_timeline: OpenTimeline) -> None:
    w = open_timeline()
    expect(rows(w)).to_have_count(50)
    ms = w.timeline().evaluate("(el) => el.firstRenderMs")
    print(f"\ntimeline first render, 50 rows: {ms:.0f} ms (element connected -> rows in DOM)")
    assert 0 < ms < 1000
