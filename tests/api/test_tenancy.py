"""A key of tenant B never sees, guesses or touches tenant A's events or keys."""

from __future__ import annotations

import pytest

from tests.conftest import App, event

pytestmark = pytest.mark.anyio


@pytest.fixture
async def two_tenants(app: App) -> App:
    await app.post(
        "acme", {"events": [event(i, metadata={"secret": "acme-only"}) for i in range(5)]}
    )
    await app.post("globex", {"events": [event(100 + i) for i in range(3)]})
    return app


async def test_queries_only_return_the_callers_events(two_tenants: App) -> None:
    a = (await two_tenants.get("acme", "/v1/events")).json()["data"]
    b = (await two_tenants.get("globex", "/v1/events")).json()["data"]
    assert {e["tenant"] for e in a} == {"acme"} and len(a) == 5
    assert {e["tenant"] for e in b} == {"globex"} and len(b) == 3
    for params in ({"actor_id": "user_1"}, {"target_id": "doc_1"}, {"action": "user.*"}):
        got = (await two_tenants.get("globex", "/v1/events", **params)).json()["data"]
        assert {e["tenant"] for e in got} == {"globex"}


async def test_another_tenants_event_id_is_404(two_tenants: App) -> None:
    r = await two_tenants.get("globex", "/v1/events/evt-1")
    assert r.status_code == 404
    assert "acme" not in r.text


async def test_same_ids_in_two_tenants_are_independent(two_tenants: App) -> None:
    r = await two_tenants.post("globex", event(1, action="user.logout"))
    assert r.status_code == 201 and r.json()["seq"] == 4
    a = (await two_tenants.get("acme", "/v1/events/evt-1")).json()
    assert a["action"] == "user.login"


async def test_seqs_are_per_tenant(two_tenants: App) -> None:
    a = (await two_tenants.get("acme", "/v1/feed", after=0)).json()
    b = (await two_tenants.get("globex", "/v1/feed", after=0)).json()
    assert [e["seq"] for e in a["data"]] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in b["data"]] == [1, 2, 3]


async def test_a_cursor_cannot_cross_tenants(two_tenants: App) -> None:
    cursor = (await two_tenants.get("acme", "/v1/events", limit=2)).json()["next_cursor"]
    got = (await two_tenants.get("globex", "/v1/events", cursor=cursor)).json()["data"]
    assert all(e["tenant"] == "globex" for e in got)


async def test_tenant_admin_cannot_manage_another_tenants_keys(two_tenants: App) -> None:
    headers = two_tenants.auth("acme_admin")
    own = await two_tenants.client.get("/v1/tenants/acme/keys", headers=headers)
    assert own.status_code == 200 and own.json()["data"]
    for method, path in [
        ("GET", "/v1/tenants/globex/keys"),
        ("POST", "/v1/tenants/globex/keys"),
        ("DELETE", "/v1/tenants/globex/keys/ak_aaaaaaaaaaaa"),
    ]:
        r = await two_tenants.client.request(
            method, path, headers=headers, json={"scopes": ["events:read"]}
        )
        assert r.status_code == 404, (method, path, r.text)


async def test_a_key_id_of_another_tenant_cannot_be_revoked(two_tenants: App) -> None:
    globex_keys = two_tenants.core.store.list_keys(two_tenants.core.tenant("globex").tenant_id)
    r = await two_tenants.client.delete(
        f"/v1/tenants/acme/keys/{globex_keys[0].key_id}", headers=two_tenants.auth("acme_admin")
    )
    assert r.status_code == 404
    assert (await two_tenants.get("globex", "/v1/events")).status_code == 200


async def test_tenant_keys_cannot_list_or_create_tenants(two_tenants: App) -> None:
    for name in ("acme", "acme_admin"):
        assert (
            await two_tenants.client.get("/v1/tenants", headers=two_tenants.auth(name))
        ).status_code == 403
        r = await two_tenants.client.post(
            "/v1/tenants", json={"slug": "evil"}, headers=two_tenants.auth(name)
        )
        assert r.status_code == 403


async def test_store_readers_are_bound_to_one_tenant(two_tenants: App) -> None:
    """The store layer itself scopes reads: a reader for globex cannot return acme rows."""
    from auditkeep.store.base import PageRequest

    globex = two_tenants.core.tenant("globex")
    reader = two_tenants.core.store.events(globex.tenant_id)
    assert {e.to_json()["tenant"] for e in reader.query(PageRequest(limit=1000))} == {"globex"}
    assert reader.get("evt-1") is None
    assert [e.seq for e in reader.scan()] == [1, 2, 3]
