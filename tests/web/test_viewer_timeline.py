"""The timeline embedded with a viewer token, as a customer's backend mints it for one end
user: only that user's rows; hidden fields absent; a row's badge then says its inclusion is
verified, not its content (which the browser can no longer hash)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import expect

from tests.web.harness import Deployment, Watched

OpenTimeline = Callable[..., Watched]


def _viewer_token(deployed: Deployment, **body: object) -> str:
    r = httpx.post(
        deployed.server.url + "/v1/viewer-tokens",
        json=body,
        headers={"Authorization": f"Bearer {deployed.read_key}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def test_a_viewer_token_shows_only_its_actor_with_hidden_fields(
    open_timeline: OpenTimeline, deployed: Deployment
) -> None:
    token = _viewer_token(deployed, actor_id="u_ada", hide_fields=["context.ip"])
    w = open_timeline(token=token)
    t = w.timeline()
    rows = t.locator("li.row")
    expect(rows).to_have_count(50)
    assert set(t.locator("li.row .actor").all_inner_texts()) == {"Ada Lovelace"}
    expect(t.locator("li.row .ip")).to_have_count(0)
    # every page is Ada's: 200 of the 1,000 events
    more = t.locator("button.more")
    for shown in (100, 150, 200):
        more.click()
        expect(rows).to_have_count(shown)
    assert set(t.locator("li.row .actor").all_inner_texts()) == {"Ada Lovelace"}
    # asking the timeline for another actor's events finds none
    t.locator("select.field").select_option("actor_id")
    t.locator("input.query").fill("u_grace")
    t.locator("input.query").press("Enter")
    expect(t.locator(".status")).to_have_text("No activity matches · actor u_grace")
    expect(rows).to_have_count(0)


def test_the_badge_of_a_redacted_row_verifies_inclusion_only(
    open_timeline: OpenTimeline, deployed: Deployment
) -> None:
    token = _viewer_token(deployed, actor_id="u_ada", hide_fields=["context.ip"])
    w = open_timeline(token=token)
    badge = w.timeline().locator("li.row").first.locator("button.badge")
    badge.click()
    expect(badge).to_have_attribute("data-state", "redacted")
    expect(badge).to_have_text("Included")
    title = badge.get_attribute("title") or ""
    assert title.startswith("content redacted (context.ip), so it cannot be checked here")
    assert "at size 1000, signed by auditkeep.local" in title
    # without hidden fields the same row's content is verified in full
    w = open_timeline(token=_viewer_token(deployed, actor_id="u_ada"))
    badge = w.timeline().locator("li.row").first.locator("button.badge")
    badge.click()
    expect(badge).to_have_attribute("data-state", "verified")
    expect(badge).to_have_text("Verified")
