"""Tenants and keys over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkeep.api.app import create_app
from tests.conftest import App, _key, event, make_core

pytestmark = pytest.mark.anyio


async def test_operator_creates_a_tenant_and_a_key_that_works(app: App) -> None:
    op = app.auth("operator")
    r = await app.client.post(
        "/v1/tenants", json={"slug": "initech", "name": "Initech"}, headers=op
    )
    assert r.status_code == 201 and r.json()["slug"] == "initech"
    assert "initech" in [
        t["slug"] for t in (await app.client.get("/v1/tenants", headers=op)).json()["data"]
    ]
    r = await app.client.post(
        "/v1/tenants/initech/keys",
        json={"scopes": ["events:write", "events:read"], "name": "ci"},
        headers=op,
    )
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith(created["key_id"] + "_") and created["tenant"] == "initech"
    app.keys["initech"] = created["key"]
    assert (await app.post("initech", event(1))).status_code == 201


async def test_key_listing_never_shows_keys_or_hashes(app: App) -> None:
    r = await app.client.get("/v1/tenants/acme/keys", headers=app.auth("operator"))
    assert r.status_code == 200
    text = r.text
    for key in app.keys.values():
        assert key not in text
    assert all(
        set(k) >= {"key_id", "scopes", "created_at"} and "secret_hash" not in k
        for k in r.json()["data"]
    )


async def test_keys_are_stored_hashed(app: App) -> None:
    raw = app.stored_bytes()
    for key in app.keys.values():
        assert key.encode() not in raw
        secret = key.split("_", 2)[2]
        assert secret.encode() not in raw


async def test_tenant_admin_manages_own_keys(app: App) -> None:
    admin = app.auth("acme_admin")
    r = await app.client.post(
        "/v1/tenants/acme/keys", json={"scopes": ["events:read"]}, headers=admin
    )
    assert r.status_code == 201
    key_id = r.json()["key_id"]
    r = await app.client.delete(f"/v1/tenants/acme/keys/{key_id}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"]


async def test_duplicate_tenant_is_409_and_bad_slug_is_400(app: App) -> None:
    op = app.auth("operator")
    assert (
        await app.client.post("/v1/tenants", json={"slug": "acme"}, headers=op)
    ).status_code == 409
    r = await app.client.post("/v1/tenants", json={"slug": "Bad Name!"}, headers=op)
    assert r.status_code == 400 and "lower-case" in r.json()["detail"]
    r = await app.client.post("/v1/tenants", json={"slug": "ok", "color": 1}, headers=op)
    assert r.status_code == 400 and "color" in r.json()["detail"]


async def test_bad_key_requests_are_400(app: App) -> None:
    op = app.auth("operator")
    for body, word in [
        ({"scopes": ["events:delete"]}, "unknown scope"),
        ({"scopes": "events:read"}, "array"),
        ({}, "missing"),
        ({"scopes": ["events:read"], "expires_at": "tomorrow"}, "expires_at"),
        ({"scopes": ["events:read"], "expires_at": "2001-01-01T00:00:00Z"}, "future"),
        ({"scopes": ["events:read"], "rate_limit_rps": "fast"}, "number"),
    ]:
        r = await app.client.post("/v1/tenants/acme/keys", json=body, headers=op)
        assert r.status_code == 400 and word in r.json()["detail"], (body, r.text)
    r = await app.client.post("/v1/tenants/nope/keys", json={"scopes": ["events:read"]}, headers=op)
    assert r.status_code == 404


async def test_tenant_admin_cannot_mint_keys_above_the_operators_rate_limit(
    tmp_path: Path,
) -> None:
    """The attack: the operator runs --rate-limit-rps 2; a tenant admin mints a key with
    rate_limit_rps 0 (unlimited) or 1,000,000 to escape it."""
    core = make_core(tmp_path / "data", rate_limit_rps=2, rate_limit_burst=2)
    core.start()
    try:
        operator = core.ensure_operator_key() or ""
        admin = _key(core, "acme", {"admin"}, rate_limit_rps=1000)  # set by the operator
        transport = httpx.ASGITransport(app=create_app(core, manage_core=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def mint(key: str, rate: float | None) -> httpx.Response:
                body: dict[str, Any] = {"scopes": ["events:write"]}
                if rate is not None:
                    body["rate_limit_rps"] = rate
                return await client.post(
                    "/v1/tenants/acme/keys", json=body, headers={"Authorization": f"Bearer {key}"}
                )

            acme = core.tenant("acme")
            before = len(core.store.list_keys(acme.tenant_id))
            for rate in (0, 1_000_000, 2.5):
                r = await mint(admin, rate)
                assert r.status_code == 403, r.text
                problem = r.json()
                assert problem["type"].endswith("/rate-limit-ceiling")
                assert "limit of 2 requests/s" in problem["detail"] and problem["ceiling"] == 2
            assert len(core.store.list_keys(acme.tenant_id)) == before, "no key was minted"
            # within the ceiling, or no limit of its own (the server's default applies): fine
            r = await mint(admin, 1)
            assert r.status_code == 201 and r.json()["rate_limit_rps"] == 1
            r = await mint(admin, None)
            assert r.status_code == 201
            minted = r.json()["key"]
            statuses = [
                (
                    await client.post(
                        "/v1/events",
                        json=event(n),
                        headers={"Authorization": f"Bearer {minted}"},
                    )
                ).status_code
                for n in range(3)
            ]
            assert statuses[:2] == [201, 201] and statuses[2] == 429
            # the operator decides above the ceiling
            r = await mint(operator, 0)
            assert r.status_code == 201 and r.json()["rate_limit_rps"] == 0
    finally:
        core.close()
