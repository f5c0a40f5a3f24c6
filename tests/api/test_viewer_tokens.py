"""Viewer tokens: minted by a tenant key, bound to a scope, read-only. Whatever a request asks
for, a token scoped to one actor never shows another actor's events; it cannot write, export,
mint, or administer; hidden fields are absent; revoking its key or its expiry ends it."""

from __future__ import annotations

import base64
import time
from typing import Any

import anyio
import httpx
import orjson
import pytest

from tests.conftest import App, event

pytestmark = pytest.mark.anyio

ALICE, BOB = "user_alice", "user_bob"


async def _seed(app: App) -> None:
    """Alice's events 1-5 and Bob's 6-10, one of Bob's about Alice's document; signed."""
    events = [
        event(i, actor={"id": ALICE, "type": "user"}, targets=[{"id": "doc_a", "type": "doc"}])
        for i in range(1, 6)
    ] + [
        event(i, actor={"id": BOB, "type": "user"}, targets=[{"id": f"doc_{i}", "type": "doc"}])
        for i in range(6, 11)
    ]
    r = await app.post("acme", {"events": events})
    assert r.json()["accepted"] == 10, r.text
    r = await app.client.post("/v1/log/checkpoints", headers=app.auth("acme"))
    assert r.status_code in (200, 201), r.text


async def _mint(app: App, key: str = "acme_read", **body: Any) -> httpx.Response:
    return await app.client.post("/v1/viewer-tokens", json=body, headers=app.auth(key))


async def _token(app: App, **body: Any) -> dict[str, str]:
    r = await _mint(app, **body)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token.startswith("akv_")
    return {"Authorization": f"Bearer {token}"}


async def _ids(app: App, auth: dict[str, str], **params: Any) -> list[str]:
    r = await app.client.get("/v1/events", params={"limit": 1000, **params}, headers=auth)
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()["data"]]


def _forged_cursor(occurred_at: int, seq: int) -> str:
    raw = orjson.dumps({"v": 1, "t": occurred_at, "s": seq, "d": True})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_an_actor_token_never_shows_another_actors_events(app: App) -> None:
    await _seed(app)
    auth = await _token(app, actor_id=ALICE)
    alice = {f"evt-{i}" for i in range(1, 6)}
    assert set(await _ids(app, auth)) == alice
    # a parameter naming another actor matches nothing (the scope is narrowed, never widened)
    assert await _ids(app, auth, actor_id=BOB) == []
    assert set(await _ids(app, auth, actor_id=ALICE)) == alice
    # nor do filters that would reach Bob's events by another road
    assert await _ids(app, auth, target_id="doc_7") == []
    assert set(await _ids(app, auth, target_type="doc", order="asc")) == alice
    # a forged cursor only moves within the scope
    far = _forged_cursor(2**62, 2**62)
    assert set(await _ids(app, auth, cursor=far)) == alice
    # paging through the scope one row at a time shows Alice's five, nothing else
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await app.client.get("/v1/events", params=params, headers=auth)).json()
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(seen) == alice and len(seen) == 5
    # one of Bob's events, by id: absent
    r = await app.client.get("/v1/events/evt-7", headers=auth)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert (await app.client.get("/v1/events/evt-2", headers=auth)).json()["id"] == "evt-2"
    # the inclusion proof of Bob's event, by id or by seq: absent; Alice's: served
    for ask in ({"id": "evt-7"}, {"seq": 7}):
        r = await app.client.get("/v1/log/proof/inclusion", params=ask, headers=auth)
        assert r.status_code == 404, r.text
    r = await app.client.get("/v1/log/proof/inclusion", params={"seq": 2}, headers=auth)
    assert r.status_code == 200 and r.json()["id"] == "evt-2"
    # checkpoints are the tenant's, and readable
    r = await app.client.get("/v1/log/checkpoint", headers=auth)
    assert r.status_code == 200


async def test_a_target_token_and_fixed_filters(app: App) -> None:
    await _seed(app)
    auth = await _token(app, target={"type": "doc", "id": "doc_a"})
    assert set(await _ids(app, auth)) == {f"evt-{i}" for i in range(1, 6)}
    auth = await _token(app, filters={"actor_id": BOB, "action": "user.*"})
    assert set(await _ids(app, auth)) == {f"evt-{i}" for i in range(6, 11)}
    assert await _ids(app, auth, action="other.*") == []
    assert await _ids(app, auth, action="user.logout") == []
    assert await _ids(app, auth, actor_id=ALICE) == []


async def test_minting_needs_a_scope_and_sane_values(app: App) -> None:
    r = await _mint(app)
    assert r.status_code == 400 and '"scope": "tenant"' in r.json()["detail"]
    assert (await _mint(app, scope="tenant")).status_code == 201
    assert (await _mint(app, scope="tenant", actor_id=ALICE)).status_code == 400
    r = await _mint(app, actor_id=ALICE, ttl_seconds=3601)
    assert r.status_code == 400 and "ttl_seconds" in r.json()["detail"]
    r = await _mint(app, actor_id=ALICE, hide_fields=["id"])
    assert r.status_code == 400 and "cannot be hidden" in r.json()["detail"]
    r = await _mint(app, actor_id=ALICE, filters={"actor": "x"})
    assert r.status_code == 400 and "actor" in r.json()["detail"]
    r = await _mint(app, actor_id=ALICE, filters={"actor_id": BOB})
    assert r.status_code == 400
    # a key without events:read, and an operator key, cannot mint
    assert (await _mint(app, "acme_write", actor_id=ALICE)).status_code == 403
    assert (await _mint(app, "operator", actor_id=ALICE)).status_code == 403


async def test_a_viewer_token_only_reads(app: App) -> None:
    await _seed(app)
    auth = await _token(app, actor_id=ALICE)
    c = app.client
    refused = [
        await c.post("/v1/events", json=event(99, actor={"id": ALICE}), headers=auth),
        await c.get("/v1/export", headers=auth),
        await c.get("/v1/feed", headers=auth),
        await c.post("/v1/viewer-tokens", json={"actor_id": ALICE}, headers=auth),
        await c.post("/v1/log/checkpoints", headers=auth),
        await c.get("/v1/tenants", headers=auth),
        await c.get("/v1/tenants/acme/keys", headers=auth),
        await c.post("/v1/tenants/acme/keys", json={"scopes": ["admin"]}, headers=auth),
        await c.get("/v1/tenants/acme/destinations", headers=auth),
    ]
    for r in refused:
        assert r.status_code == 403, (r.request.url, r.text)
        assert "viewer token can only read" in r.json()["detail"], r.text
    # also when minted by a key that holds every scope
    auth = await _token(app, key="acme", actor_id=ALICE)
    r = await c.post("/v1/events", json=event(98, actor={"id": ALICE}), headers=auth)
    assert r.status_code == 403
    assert "evt-98" not in await _ids(app, {"Authorization": f"Bearer {app.keys['acme']}"})


async def test_hidden_fields_are_absent(app: App) -> None:
    await _seed(app)
    auth = await _token(app, actor_id=ALICE, hide_fields=["context.ip", "metadata.plan"])
    r = await app.client.get("/v1/events", headers=auth)
    for ev in r.json()["data"]:
        assert "ip" not in ev["context"] and "plan" not in ev["metadata"]
        assert ev["context"]["user_agent"] == "pytest"
        assert ev["redacted"] == ["context.ip", "metadata.plan"]
        assert len(ev["hash"]) == 64
    ev = (await app.client.get("/v1/events/evt-1", headers=auth)).json()
    assert "ip" not in ev["context"] and ev["redacted"] == ["context.ip", "metadata.plan"]
    # an unscoped reader still sees them
    full = (await app.get("acme", "/v1/events/evt-1")).json()
    assert full["context"]["ip"] == "203.0.113.9" and "redacted" not in full
    assert full["hash"] == ev["hash"]


async def test_a_token_of_a_revoked_key_is_refused(app: App) -> None:
    await _seed(app)
    auth = await _token(app, actor_id=ALICE)
    assert (await app.client.get("/v1/events", headers=auth)).status_code == 200  # cached
    key_id = "_".join(app.keys["acme_read"].split("_")[:2])
    r = await app.client.delete(
        f"/v1/tenants/acme/keys/{key_id}", headers={"Authorization": f"Bearer {app.operator_key}"}
    )
    assert r.status_code in (200, 204), r.text
    r = await app.client.get("/v1/events", headers=auth)
    assert r.status_code == 401
    assert f"the viewer token's key (which minted it) {key_id} was revoked" in r.json()["detail"]


async def test_an_expired_or_altered_token_is_refused(app: App) -> None:
    r = await _mint(app, actor_id=ALICE, ttl_seconds=1)
    token = r.json()["token"]
    payload, mac = token.removeprefix("akv_").split(".")
    data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["f"] = {}  # widen the scope to the whole tenant: the MAC no longer matches
    forged = base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")
    r = await app.client.get("/v1/events", headers={"Authorization": f"Bearer akv_{forged}.{mac}"})
    assert r.status_code == 401 and "signature" in r.json()["detail"]
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 10
    while (r := await app.client.get("/v1/events", headers=auth)).status_code == 200:
        assert time.monotonic() < deadline, "the token outlived its ttl"
        await _wait_a_little()
    assert r.status_code == 401 and "expired" in r.json()["detail"]


async def _wait_a_little() -> None:
    await anyio.sleep(0.05)  # polling interval of a bounded wait on the expiry


async def test_issuing_a_token_is_recorded_in_the_log(app: App) -> None:
    r = await _mint(app, actor_id=ALICE, hide_fields=["context.ip"], ttl_seconds=600)
    token = r.json()["token"]
    found = await _ids(app, {"Authorization": f"Bearer {app.keys['acme']}"})
    assert len(found) == 1
    ev = (await app.get("acme", f"/v1/events/{found[0]}")).json()
    key_id = "_".join(app.keys["acme_read"].split("_")[:2])
    assert ev["action"] == "auditkeep.viewer_token.created"
    assert ev["actor"] == {"id": key_id, "type": "api_key"}
    assert ev["metadata"]["scope"] == {"actor_id": ALICE}
    assert ev["metadata"]["ttl_seconds"] == 600
    assert ev["metadata"]["hide_fields"] == ["context.ip"]
    assert token not in orjson.dumps(ev).decode()
    assert token.encode() not in app.stored_bytes()
    # and it is outside the token's own scope
    assert await _ids(app, {"Authorization": f"Bearer {token}"}) == []


async def test_a_scope_too_large_for_a_token_is_refused(app: App) -> None:
    fields = [f"metadata.field_{i:04d}_{'x' * 40}" for i in range(80)]
    r = await _mint(app, actor_id=ALICE, hide_fields=fields)
    assert r.status_code == 400 and "too large" in r.json()["detail"]
