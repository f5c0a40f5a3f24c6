"""The console over HTTP (httpx, in process): sessions, CSRF, CSP, scoping of pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkeep.console.session import COOKIE, Sessions
from tests.conftest import App, event

pytestmark = pytest.mark.anyio


@pytest.fixture
def store_settings() -> Iterator[dict[str, Any]]:
    # the console is above the store layer: SQLite is enough here; loopback destinations allowed
    yield {"delivery_allow_networks": "127.0.0.0/8"}


async def sign_in(app: App, key: str) -> httpx.Response:
    return await app.client.post(
        "/console/sign-in",
        data={"key": key},
        headers={"Origin": "http://test", "Sec-Fetch-Site": "same-origin"},
    )


def csrf_of(page: httpx.Response) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m, page.text[:500]
    return m.group(1)


async def test_sign_in_sets_a_strict_cookie_without_the_key(app: App) -> None:
    r = await sign_in(app, app.keys["acme_read"])
    assert r.status_code == 303
    assert r.headers["location"] == "/console/events"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    assert app.keys["acme_read"] not in cookie
    assert app.keys["acme_read"].rsplit("_", 1)[1] not in cookie
    page = await app.client.get("/console/events")
    assert page.status_code == 200
    assert app.keys["acme_read"] not in page.text


async def test_a_wrong_key_is_refused_with_the_reason(app: App) -> None:
    r = await sign_in(app, "ak_aaaaaaaaaaaa_" + "A" * 43)
    assert r.status_code == 401
    assert "unknown API key" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")


async def test_a_write_only_key_cannot_sign_in(app: App) -> None:
    r = await sign_in(app, app.keys["acme_write"])
    assert r.status_code == 401
    assert "neither admin nor events:read" in r.text


async def test_pages_need_a_session(app: App) -> None:
    r = await app.client.get("/console/events", params={"action": "user.*"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/sign-in?next=")


async def test_csp_and_security_headers_on_every_page(app: App) -> None:
    for path in ("/console/sign-in",):
        r = await app.client.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
    await sign_in(app, app.keys["acme_read"])
    r = await app.client.get("/console/events")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text and "style=" not in r.text  # no inline code


async def test_search_filters_and_pages(app: App) -> None:
    events = [event(i, action="user.login" if i % 2 else "document.viewed") for i in range(120)]
    r = await app.post("acme", {"events": events})
    assert r.status_code == 200, r.text
    await sign_in(app, app.keys["acme_read"])
    page = await app.client.get("/console/events", params={"action": "user.*"})
    ids = re.findall(r'<tr data-id="([^"]+)"', page.text)
    assert len(ids) == 50
    assert "document.viewed" not in page.text
    nxt = re.search(r'class="next" href="([^"]+)"', page.text)
    assert nxt
    seen = set(ids)
    url: str | None = nxt.group(1).replace("&amp;", "&")
    while url:
        page = await app.client.get(url)
        ids = re.findall(r'<tr data-id="([^"]+)"', page.text)
        assert not seen & set(ids)
        seen |= set(ids)
        m = re.search(r'class="next" href="([^"]+)"', page.text)
        url = m.group(1).replace("&amp;", "&") if m else None
    assert len(seen) == 60
    bad = await app.client.get("/console/events", params={"since": "yesterday"})
    assert bad.status_code == 200 and 'class="error"' in bad.text


async def test_sign_out_ends_the_session_even_for_the_old_cookie(app: App) -> None:
    await sign_in(app, app.keys["acme_read"])
    old = app.client.cookies[COOKIE]
    page = await app.client.get("/console/events")
    r = await app.client.post(
        "/console/sign-out", data={"csrf": csrf_of(page)}, headers={"Origin": "http://test"}
    )
    assert r.status_code == 303
    app.client.cookies.clear()
    r = await app.client.get("/console/events", headers={"Cookie": f"{COOKIE}={old}"})
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in")


async def test_revoking_the_key_ends_its_session(app: App) -> None:
    await sign_in(app, app.keys["acme_read"])
    assert (await app.client.get("/console/events")).status_code == 200
    key_id = app.keys["acme_read"][:15]
    r = await app.client.delete(f"/v1/tenants/acme/keys/{key_id}", headers=app.auth("operator"))
    assert r.status_code in (200, 204), r.text
    r = await app.client.get("/console/events")
    assert r.status_code == 303


@pytest.mark.parametrize(
    "headers,with_token",
    [
        ({"Origin": "https://evil.example"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Origin": "http://test"}, False),
    ],
)
async def test_cross_site_posts_are_refused(
    app: App, headers: dict[str, str], with_token: bool
) -> None:
    await sign_in(app, app.keys["operator"])
    page = await app.client.get("/console/tenants")
    data = {"slug": "evil"}
    if with_token:
        data["csrf"] = csrf_of(page)
    r = await app.client.post("/console/tenants/new", data=data, headers=headers)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert app.core.store.get_tenant("evil") is None


async def test_a_csrf_token_of_another_session_is_refused(app: App) -> None:
    await sign_in(app, app.keys["operator"])
    other = csrf_of(await app.client.get("/console/tenants"))
    app.client.cookies.clear()
    await sign_in(app, app.keys["operator"])
    r = await app.client.post(
        "/console/tenants/new",
        data={"slug": "evil", "csrf": other},
        headers={"Origin": "http://test"},
    )
    assert r.status_code == 403
    assert "CSRF token" in r.json()["detail"]


async def test_operator_creates_a_tenant_and_a_key_shown_once(app: App) -> None:
    await sign_in(app, app.keys["operator"])
    page = await app.client.get("/console/tenants")
    assert 'data-tenant="acme"' in page.text and 'data-tenant="globex"' in page.text
    csrf = csrf_of(page)
    origin = {"Origin": "http://test"}
    r = await app.client.post(
        "/console/tenants/new", data={"slug": "initech", "csrf": csrf}, headers=origin
    )
    assert r.status_code == 303
    r = await app.client.post(
        "/console/tenants/initech/keys",
        data={"csrf": csrf, "name": "ci", "events:read": "1"},
        headers=origin,
    )
    assert r.status_code == 201
    key = re.search(r'id="new-key">([^<]+)<', r.text)
    assert key
    listing = await app.client.get("/v1/events", headers={"Authorization": f"Bearer {key[1]}"})
    assert listing.status_code == 200
    again = await app.client.get("/console/tenants")
    assert key[1] not in again.text
    r = await app.client.post(
        f"/console/tenants/initech/keys/{key[1][:15]}/revoke", data={"csrf": csrf}, headers=origin
    )
    assert r.status_code == 303
    listing = await app.client.get("/v1/events", headers={"Authorization": f"Bearer {key[1]}"})
    assert listing.status_code == 401


async def test_a_tenant_session_sees_only_its_tenant_and_no_operator_pages(app: App) -> None:
    await app.post("globex", {"events": [event(1, action="globex.secret")]})
    await app.post("acme", {"events": [event(2, action="acme.thing")]})
    await sign_in(app, app.keys["acme"])
    page = await app.client.get("/console/events")
    assert "acme.thing" in page.text and "globex.secret" not in page.text
    assert "/console/tenants" not in page.text  # not in the nav
    assert (await app.client.get("/console/tenants")).status_code == 403
    globex_id = event(1)["id"]
    r = await app.client.get(f"/console/events/{globex_id}")
    assert r.status_code == 404  # globex's event is not in acme's log
    assert (await app.client.get("/console/destinations")).status_code == 403


async def test_event_page_carries_a_read_only_viewer_token(app: App) -> None:
    await app.post("acme", {"events": [event(7)]})
    await sign_in(app, app.keys["acme_read"])
    r = await app.client.get(f"/console/events/{event(7)['id']}")
    assert r.status_code == 200
    token = re.search(r'data-token="(akv_[^"]+)"', r.text)
    assert token
    auth = {"Authorization": f"Bearer {token[1]}"}
    assert (await app.client.get("/v1/events", headers=auth)).status_code == 200
    r = await app.client.post("/v1/events", json={"events": [event(8)]}, headers=auth)
    assert r.status_code == 403


async def test_only_a_whole_tenant_viewer_token_reads_the_feed(app: App) -> None:
    await app.post("acme", {"events": [event(1, actor={"type": "user", "id": "u_ada"})]})
    tokens = {}
    for name, body in (("tenant", {"scope": "tenant"}), ("actor", {"actor_id": "u_ada"})):
        r = await app.client.post("/v1/viewer-tokens", json=body, headers=app.auth("acme"))
        assert r.status_code == 201, r.text
        tokens[name] = r.json()["token"]
    whole = await app.client.get(
        "/v1/feed", headers={"Authorization": f"Bearer {tokens['tenant']}"}
    )
    assert whole.status_code == 200 and whole.json()["data"]
    narrow = await app.client.get(
        "/v1/feed", headers={"Authorization": f"Bearer {tokens['actor']}"}
    )
    assert narrow.status_code == 403


async def test_destinations_page_pauses_and_resumes(app: App) -> None:
    r = await app.client.post(
        "/v1/tenants/acme/destinations",
        json={"name": "siem", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}},
        headers=app.auth("acme_admin"),
    )
    assert r.status_code == 201, r.text
    dest_id = r.json()["id"]
    await sign_in(app, app.keys["acme_admin"])
    page = await app.client.get("/console/destinations")
    assert page.status_code == 200
    assert f'data-dest="{dest_id}"' in page.text and "events" in page.text
    assert (await app.client.get("/console/events")).status_code == 403  # admin only
    origin = {"Origin": "http://test"}
    r = await app.client.post(
        f"/console/destinations/{dest_id}/pause", data={"csrf": csrf_of(page)}, headers=origin
    )
    assert r.status_code == 303
    status = await app.client.get(
        f"/v1/tenants/acme/destinations/{dest_id}", headers=app.auth("acme_admin")
    )
    assert status.json()["state"] == "paused"
    assert "paused in the console" in status.json()["paused_reason"]
    page = await app.client.get("/console/destinations")
    assert ">Resume<" in page.text
    r = await app.client.post(
        f"/console/destinations/{dest_id}/resume", data={"csrf": csrf_of(page)}, headers=origin
    )
    assert r.status_code == 303
    status = await app.client.get(
        f"/v1/tenants/acme/destinations/{dest_id}", headers=app.auth("acme_admin")
    )
    assert status.json()["state"] != "paused"
    # a pause without the token changes nothing
    r = await app.client.post(f"/console/destinations/{dest_id}/pause", headers=origin)
    assert r.status_code == 403


async def test_sign_in_from_another_site_is_refused(app: App) -> None:
    r = await app.client.post(
        "/console/sign-in",
        data={"key": app.keys["acme_read"]},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert "set-cookie" not in r.headers


async def test_a_forged_or_expired_cookie_is_no_session(app: App, tmp_path: Path) -> None:
    await sign_in(app, app.keys["acme_read"])
    good = app.client.cookies[COOKIE]
    payload, mac = good.split(".")
    app.client.cookies.clear()
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
    r = await app.client.get("/console/events", headers={"Cookie": f"{COOKIE}={forged}"})
    assert r.status_code == 303
    # idle timeout: a session whose expiry has passed is refused (idle of -1 s: already past)
    sessions = Sessions(tmp_path / "keys", -1)
    assert sessions.open(sessions.encode(sessions.new("ak_aaaaaaaaaaaa"))) is None
    fresh = Sessions(tmp_path / "keys", 60)
    assert fresh.open(fresh.encode(fresh.new("ak_aaaaaaaaaaaa"))) is not None


async def test_event_content_is_escaped(app: App) -> None:
    await app.post("acme", {"events": [event(9, metadata={"note": "<script>alert(1)</script>"})]})
    await sign_in(app, app.keys["acme_read"])
    r = await app.client.get(f"/console/events/{event(9)['id']}")
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
