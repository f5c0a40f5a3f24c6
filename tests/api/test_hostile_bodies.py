"""Hostile request bodies: validation that would amplify (a small body, a huge answer), CPU-heavy
bodies that would stall the event loop, and JSON whose meaning is ambiguous (a member named
twice). Each is written as the attack, then what the server must do."""

from __future__ import annotations

import gzip
import time
from typing import Any

import anyio
import httpx
import orjson
import pytest

from auditkeep_client.schema import MAX_ERRORS
from tests.api.test_event_loop import probe_healthz
from tests.conftest import App, event

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
FIELDS = 580_000  # the probe sent ~590,000 in 5 MiB
# /healthz while hostile bodies are decoded in the thread pool: orjson holds the GIL for the
# length of one 5 MiB decode (~0.1-0.3 s here); inline, the loop stalled for seconds
HEAVY_PROBE_BOUND = 3.0  # the count of probes answered is what tells a stalled loop (2 inline)


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def many_unknown_fields(count: int) -> bytes:
    """One event with ``count`` unknown top-level fields (about 9 bytes each; upper-case, so
    that none is a known field)."""
    base = orjson.dumps(event(1))[:-1]
    fields = b",".join(b'"%s":0' % _b36(i).upper().encode() for i in range(count))
    return base + b"," + fields + b"}"


async def _post_raw(app: App, body: bytes, **headers: str) -> httpx.Response:
    return await app.client.post(
        "/v1/events",
        content=body,
        headers={**app.auth("acme"), "content-type": "application/json", **headers},
        timeout=120,
    )


async def _size(app: App) -> int:
    size: int = (await app.get("acme", "/v1/feed", after=0, limit=0)).json()["size"]
    return size


# -- item 1: validation errors must not amplify, nor stall the loop ----------------------------


async def test_an_event_with_half_a_million_unknown_fields_gets_a_small_422(app: App) -> None:
    body = many_unknown_fields(FIELDS)
    assert 4.5 * MiB < len(body) <= 5 * MiB
    r = await _post_raw(app, body)
    assert r.status_code == 422, r.text[:500]
    assert len(r.content) < 32 * 1024, len(r.content)  # was 194 MiB
    problem = r.json()
    assert len(problem["errors"]) == MAX_ERRORS
    assert problem["errors_omitted"] == FIELDS - MAX_ERRORS
    assert "more problems" in problem["detail"] and len(problem["detail"]) < 2000
    assert await _size(app) == 0


async def test_hostile_bodies_do_not_stall_the_event_loop(app: App) -> None:
    """Four 5 MiB hostile events at once (decoded and validated in the thread pool) while a
    /healthz probe runs beside them on the same event loop."""
    body = gzip.compress(many_unknown_fields(FIELDS))  # the server still decodes 5 MiB each
    statuses: list[int] = []
    latencies: list[float] = []

    async def attack() -> None:
        statuses.append((await _post_raw(app, body, **{"content-encoding": "gzip"})).status_code)

    async def probe_until_done() -> None:
        while len(statuses) < 4:
            latencies.extend(await probe_healthz(app.client, 0.2))

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(attack)
        tg.start_soon(probe_until_done)
    assert statuses == [422] * 4
    assert len(latencies) >= 5, (latencies, time.monotonic() - started)
    assert max(latencies) < HEAVY_PROBE_BOUND, sorted(latencies)[-5:]


async def test_a_batch_of_bad_events_gets_a_bounded_answer(app: App) -> None:
    """1,000 events, each with 200 unknown fields: every event is rejected and counted, each
    lists at most MAX_ERRORS problems, and the whole answer lists at most 1,000."""
    bad = {**event(1), **{f"x{i}": 0 for i in range(200)}}
    events = [dict(bad, id=f"e{i}") for i in range(999)] + [event(1000)]
    r = await app.post("acme", {"events": events})
    assert r.status_code == 200
    assert len(r.content) < 1 * MiB, len(r.content)
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, 999)
    listed = 0
    for result in body["results"][:999]:
        error = result["error"]
        errors = error.get("errors", [])
        assert len(errors) <= MAX_ERRORS
        assert len(errors) + error.get("errors_omitted", 0) == 200
        listed += len(errors)
    assert listed == 1000
    assert body["results"][999]["status"] == "accepted"


async def test_small_events_still_validate_fully(app: App) -> None:
    r = await app.post("acme", {"action": 1, "actor": 2, "outcome": 3})
    assert r.status_code == 422
    assert "errors_omitted" not in r.json()


# -- item 11: a member named twice is ambiguous ------------------------------------------------


def _with_duplicate(name: str, first: Any, second: Any) -> bytes:
    ev = event(1)
    ev.pop(name, None)
    head = orjson.dumps(ev)[:-1]
    return head + b',"%s":%s,"%s":%s}' % (
        name.encode(),
        orjson.dumps(first),
        name.encode(),
        orjson.dumps(second),
    )


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (_with_duplicate("action", "user.login", "user.logout"), "action"),
        (_with_duplicate("action", "user.login", "user.login"), "action"),
        (_with_duplicate("outcome", "success", "failure"), "outcome"),
        (
            orjson.dumps(event(1))[:-1] + b',"metadata":{"role":"user","role":"admin"}}',
            "role",
        ),
        (
            b'{"events": [' + orjson.dumps(event(1)) + b'], "events": []}',
            "events",
        ),
        # the same name spelled with an escape is still the same name
        (orjson.dumps(event(1))[:-1] + b',"\\u0061ction":"user.logout"}', "action"),
        # spaced out, not compact
        (b'{ "id" : "evt-1" , "id" : "evt-2" , "action" : "user.login" }', "id"),
    ],
)
async def test_duplicate_member_names_are_rejected(app: App, body: bytes, name: str) -> None:
    r = await _post_raw(app, body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["duplicate"] == name and repr(name) in problem["detail"]
    assert "I-JSON" in problem["detail"]
    assert await _size(app) == 0


async def test_colons_in_strings_and_escaped_colons_are_not_duplicates(app: App) -> None:
    ev = event(1, metadata={"url": "https://x:1/a:b", "k:v": "::", "t": "10:00:00"})
    body = orjson.dumps(ev)[:-1] + b',"reason":"a\\u003ab\\u003Ac"}'
    r = await _post_raw(app, body)
    assert r.status_code == 201, r.text
    stored = (await app.get("acme", "/v1/events/evt-1")).json()
    assert stored["reason"] == "a:b:c" and stored["metadata"]["k:v"] == "::"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/tenants", b'{"slug": "initech", "slug": "umbrella"}'),
        (
            "/v1/tenants/acme/keys",
            b'{"scopes": ["events:read"], "scopes": ["admin", "events:write"]}',
        ),
        (
            "/v1/tenants/acme/destinations",
            b'{"kind": "webhook", "name": "a", "name": "b", "config": {"url": "https://x"}}',
        ),
    ],
)
async def test_admin_bodies_reject_duplicate_names_too(app: App, path: str, body: bytes) -> None:
    r = await app.client.post(
        path,
        content=body,
        headers={**app.auth("operator"), "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert "more than once" in r.json()["detail"]


@pytest.mark.parametrize("depth", [253, 300, 900, 1020])
async def test_deep_bodies_are_client_errors_and_still_checked_for_duplicates(
    app: App, depth: int
) -> None:
    """orjson reads 1,024 levels but writes only 254, so the duplicate-name check of a deeper
    body takes the slow path; every answer is a 4xx, never a 500."""
    deep = b"[" * depth + b"]" * depth
    ok = orjson.dumps(event(1, metadata=None))[:-1] + b',"metadata":{"x":' + deep + b"}}"
    r = await _post_raw(app, ok)
    assert r.status_code == 422, r.text[:300]  # metadata nests deeper than 5 levels
    assert "metadata" in r.text
    dup = orjson.dumps(event(2, metadata=None))[:-1] + b',"metadata":{"x":' + deep + b',"x":1}}'
    r = await _post_raw(app, dup)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["duplicate"] == "x"
    assert await _size(app) == 0
