"""The timeline's other states, on a small deployment of its own: an event newer than the
latest checkpoint is "Pending" until one is signed; a bad token shows the server's problem."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.conftest import event
from tests.web.harness import Deployment, csp_violations, deployment, open_page


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("states"), 3) as d:
        yield d


def test_an_event_newer_than_the_checkpoint_is_pending_until_one_is_signed(
    browser: Browser, small: Deployment
) -> None:
    server = small.server
    auth = {"Authorization": f"Bearer {server.write_key}"}
    r = httpx.post(server.url + "/v1/events", json=event("late"), headers=auth)
    assert r.status_code == 201
    path = small.host.page(token=small.read_key, endpoint=server.url, log_key=small.log_key)
    w = open_page(browser, small.host.origin + path)
    try:
        rows = w.timeline().locator("li.row")
        expect(rows).to_have_count(4)
        late = w.timeline().locator('li.row[data-id="evt-late"] button.badge')
        late.click()
        expect(late).to_have_attribute("data-state", "pending")
        expect(late).to_have_attribute(
            "title", "not in a signed checkpoint yet; check again after the next checkpoint"
        )
        older = rows.filter(has_not=w.timeline().locator('[data-id="evt-late"]'))
        older.locator("button.badge").first.click()
        expect(older.locator("button.badge").first).to_have_attribute("data-state", "verified")
        httpx.post(server.url + "/v1/log/checkpoints", headers=auth).raise_for_status()
        late.click()
        expect(late).to_have_attribute("data-state", "verified")
        # the browser logs the 409 answer itself; nothing else may be logged
        assert [e for e in w.errors if "status of 409 (Conflict)" not in e] == []
        assert csp_violations(w) == []
    finally:
        w.page.context.close()


def test_a_search_made_while_the_first_page_loads_wins(browser: Browser, small: Deployment) -> None:
    """The first page is held in the network until the user's search has been answered; its
    late answer must not be mixed into the search's results."""
    held: list[Route] = []

    def hold_first(page: Page) -> None:
        def handler(route: Route) -> None:
            if not held and "action=" not in route.request.url:
                held.append(route)  # answered later
            else:
                route.continue_()

        page.route("**/v1/events?*", handler)

    path = small.host.page(token=small.read_key, endpoint=small.server.url, log_key=small.log_key)
    w = open_page(browser, small.host.origin + path, setup=hold_first)
    try:
        t = w.timeline()
        t.locator("input.query").fill("user.login_failed")  # no such event here
        t.locator("input.query").press("Enter")
        expect(t.locator(".status")).to_have_text("No activity matches · action user.login_failed")
        assert len(held) == 1
        held[0].continue_()
        w.page.wait_for_load_state("networkidle")
        expect(t.locator(".status")).to_have_text("No activity matches · action user.login_failed")
        expect(t.locator("li.row")).to_have_count(0)
        assert w.errors == [] and csp_violations(w) == []
    finally:
        w.page.context.close()


def test_a_bad_token_shows_the_servers_problem(browser: Browser, small: Deployment) -> None:
    path = small.host.page(token="ak_nope_nope", endpoint=small.server.url, log_key=small.log_key)
    w = open_page(browser, small.host.origin + path)
    try:
        alert = w.timeline().locator(".alert")
        expect(alert).to_be_visible()
        detail = httpx.get(
            small.server.url + "/v1/events", headers={"Authorization": "Bearer ak_nope_nope"}
        ).json()["detail"]
        expect(alert).to_have_text(detail)
        expect(w.timeline().locator("li.row")).to_have_count(0)
        # the browser logs the 401 response itself; nothing else may be logged
        assert [e for e in w.errors if "status of 401" not in e] == []
        assert csp_violations(w) == []
    finally:
        w.page.context.close()
