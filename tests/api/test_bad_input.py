"""Every kind of bad input gets RFC 9457 problem+json with the right status, and writes nothing."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.conftest import App, event

pytestmark = pytest.mark.anyio

PROBLEM_KEYS = {"type", "title", "status", "detail"}


async def _assert_problem(r: Any, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert set(body) >= PROBLEM_KEYS and body["status"] == status
    assert body["type"].startswith("https://auditkeep.dev/problems/")
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


async def _raw(app: App, content: bytes, ctype: str = "application/json", **headers: str) -> Any:
    return await app.client.post(
        "/v1/events",
        content=content,
        headers={**app.auth("acme"), "content-type": ctype, **headers},
    )


async def _nothing_written(app: App) -> None:
    feed = (await app.get("acme", "/v1/feed", after=0)).json()
    assert feed["size"] == 0


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{", ["not valid JSON"]),
        (b'{"action": "user.login",}', ["not valid JSON"]),
        (b"", ["empty"]),
        (b'{"action": "caf\xc3"}', ["UTF-8"]),
        (b'{"action": "\xff\xfe"}', ["UTF-8"]),
        (b'"\\ud800"', ["UTF-8"]),
        (b"[" * 2000 + b"]" * 2000, ["deeply"]),
        (b"[1, 2]", ["event object"]),
        (b"null", ["event object"]),
        (b'{"events": [], "extra": 1}', ["unknown field", "extra"]),
        (b'{"events": []}', ["empty"]),
        (b"NaN", ["not valid JSON"]),
    ],
)
async def test_malformed_bodies_are_400(app: App, content: bytes, words: list[str]) -> None:
    await _assert_problem(await _raw(app, content), 400, *words)
    await _nothing_written(app)


async def test_wrong_content_type_is_415(app: App) -> None:
    await _assert_problem(await _raw(app, b"{}", "text/plain"), 415, "application/json")
    r = await _raw(app, b"{}", "application/json", **{"content-encoding": "br"})
    await _assert_problem(r, 415, "gzip")


async def test_oversize_body_is_413(app: App) -> None:
    big = {"events": [event(i, metadata={"pad": "x" * 6000}) for i in range(900)]}
    r = await app.post("acme", big)
    await _assert_problem(r, 413, "limit")
    await _nothing_written(app)


async def test_corrupt_gzip_is_400(app: App) -> None:
    r = await _raw(app, b"\x1f\x8b\x08\x00garbage", **{"content-encoding": "gzip"})
    await _assert_problem(r, 400, "gzip")


async def test_gzip_bomb_is_413(app: App) -> None:
    import gzip

    bomb = gzip.compress(b'{"events": [' + b" " * (6 * 1024 * 1024) + b"]}")
    r = await _raw(app, bomb, **{"content-encoding": "gzip"})
    await _assert_problem(r, 413, "decompressed")


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        ({"action": None}, "action", ["required"]),
        ({"action": 5}, "action", ["must be a string"]),
        ({"action": "UserLogin"}, "action", ["namespace.verb"]),
        ({"action": "a." + "b" * 200}, "action", ["limit is 128"]),
        ({"occurred_at": None}, "occurred_at", ["required", "RFC 3339"]),
        ({"occurred_at": "yesterday"}, "occurred_at", ["RFC 3339"]),
        ({"occurred_at": "2026-02-30T10:00:00Z"}, "occurred_at", ["not a valid date"]),
        ({"occurred_at": "2026-11-23T10:00:00"}, "occurred_at", ["RFC 3339"]),
        ({"occurred_at": "1969-12-31T23:59:59Z"}, "occurred_at", ["before 1970"]),
        ({"occurred_at": 1700000000}, "occurred_at", ["must be a string"]),
        ({"actor": None}, "actor", ["required"]),
        ({"actor": "user_1"}, "actor", ["must be an object"]),
        ({"actor": {"type": "user"}}, "actor.id", ["required"]),
        ({"actor": {"id": "u", "role": "x"}}, "actor.role", ["not a known field"]),
        ({"targets": {"id": "x"}}, "targets", ["array"]),
        ({"targets": [{"id": "d"}]}, "targets[0].type", ["required"]),
        (
            {"targets": [{"id": str(i), "type": "doc"} for i in range(21)]},
            "targets",
            ["21 entries", "limit is 20"],
        ),
        ({"outcome": "ok"}, "outcome", ["'success' or 'failure'"]),
        ({"category": "misc"}, "category", ["must be one of"]),
        ({"context": {"ip": "999.1.1.1"}}, "context.ip", ["IPv4 or IPv6"]),
        ({"context": {"cookie": "x"}}, "context.cookie", ["not a known field"]),
        ({"metadata": [1]}, "metadata", ["must be an object"]),
        ({"metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "metadata.a.b.c.d.e", ["deeper"]),
        ({"metadata": {"big": 2**60}}, "metadata.big", ["2^53"]),
        ({"metadata": {"blob": "x" * 20000}}, "metadata", ["limit is 16384"]),
        ({"id": "has space"}, "id", ["letters, digits"]),
        ({"id": ""}, "id", ["empty"]),
        ({"id": 12}, "id", ["must be a string"]),
        ({"color": "red"}, "color", ["not a known field", "metadata"]),
        ({"seq": 5}, "seq", ["not a known field"]),
    ],
)
async def test_schema_violations_are_422_with_a_path(
    app: App, overrides: dict[str, Any], path: str, words: list[str]
) -> None:
    r = await app.post("acme", event(1, **{k: v for k, v in overrides.items()}))
    if any(v is None for v in overrides.values()):
        ev = event(1)
        for k, v in overrides.items():
            if v is None:
                ev.pop(k)
        r = await app.post("acme", ev)
    body = await _assert_problem(r, 422)
    matching = [e for e in body["errors"] if e["path"] == path]
    assert matching, body["errors"]
    for word in words:
        assert word in matching[0]["message"], matching[0]["message"]
    await _nothing_written(app)


async def test_every_problem_is_reported_at_once(app: App) -> None:
    r = await app.post("acme", {"action": 1, "actor": 2, "outcome": 3})
    body = await _assert_problem(r, 422)
    assert {e["path"] for e in body["errors"]} >= {"action", "actor", "outcome", "occurred_at"}


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (None, ["Authorization: Bearer"]),
        ("Basic dXNlcjpwYXNz", ["Bearer <key>"]),
        ("Bearer", ["Bearer <key>"]),
        ("Bearer not-a-key", ["malformed"]),
        ("Bearer ak_aaaaaaaaaaaa_" + "A" * 43, ["unknown API key"]),
    ],
)
async def test_bad_keys_are_401(app: App, header: str | None, words: list[str]) -> None:
    headers = {"Authorization": header} if header else {}
    r = await app.client.post("/v1/events", json=event(1), headers=headers)
    await _assert_problem(r, 401, *words)
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_a_key_with_a_wrong_secret_is_401(app: App) -> None:
    real = app.keys["acme"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    r = await app.client.post(
        "/v1/events", json=event(1), headers={"Authorization": f"Bearer {forged}"}
    )
    await _assert_problem(r, 401, "unknown API key")


async def test_missing_scope_is_403(app: App) -> None:
    await _assert_problem(await app.post("acme_read", event(1)), 403, "events:write")
    await _assert_problem(await app.get("acme_write", "/v1/events"), 403, "events:read")
    await _assert_problem(await app.post("operator", event(1)), 403, "operator keys")


async def test_revoked_key_is_401_at_once(app: App) -> None:
    tenant = app.core.tenant("acme")
    record, key = app.core.create_key(tenant, frozenset({"events:write"}))
    app.keys["tmp"] = key
    assert (await app.post("tmp", event(1))).status_code == 201
    app.core.revoke_key(tenant, record.key_id)
    await _assert_problem(await app.post("tmp", event(2)), 401, "revoked")


async def test_expired_key_is_401(app: App) -> None:
    from auditkeep.model import now_micros

    tenant = app.core.tenant("acme")
    _, key = app.core.create_key(
        tenant, frozenset({"events:write"}), expires_at=now_micros() + 300_000
    )
    app.keys["short"] = key
    assert (await app.post("short", event(1))).status_code == 201
    await anyio.sleep(0.35)
    await _assert_problem(await app.post("short", event(2)), 401, "expired")


async def test_rate_limit_is_429_with_retry_after(app: App) -> None:
    tenant = app.core.tenant("acme")
    _, key = app.core.create_key(tenant, frozenset({"events:write"}), rate_limit_rps=2)
    app.keys["slow"] = key
    codes = [(await app.post("slow", event(i))).status_code for i in range(4)]
    assert codes[:2] == [201, 201] and 429 in codes[2:]
    r = await app.post("slow", event(9))
    await _assert_problem(r, 429, "2 requests/s")
    assert int(r.headers["retry-after"]) >= 1


async def test_unknown_query_parameters_and_bad_values_are_400(app: App) -> None:
    for params, words in [
        ({"actor": "x"}, ["unknown query parameter", "actor_id"]),
        ({"limit": "0"}, ["between 1 and 1000"]),
        ({"limit": "abc"}, ["whole number"]),
        ({"limit": "5000"}, ["between 1 and 1000"]),
        ({"since": "last week"}, ["since", "RFC 3339"]),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, ["earlier"]),
        ({"cursor": "garbage!!"}, ["cursor"]),
        ({"action": "user*"}, ["prefix"]),
        ({"outcome": "maybe"}, ["success"]),
        ({"order": "sideways"}, ["asc"]),
    ]:
        await _assert_problem(await app.get("acme", "/v1/events", **params), 400, *words)


async def test_unknown_routes_and_methods_are_problems(app: App) -> None:
    await _assert_problem(await app.client.get("/v2/nothing"), 404, "/docs")
    await _assert_problem(await app.client.put("/v1/events", headers=app.auth("acme")), 405, "PUT")
