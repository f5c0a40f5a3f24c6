"""GET /v1/export (NDJSON, CSV, OCSF; streamed; the query filters; scoped) and the pull feed
with long-polling (a consumer resuming from its cursor misses nothing, repeats nothing)."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import anyio
import pytest

from auditkeep.delivery.formats import CSV_COLUMNS
from tests.conftest import App, event

pytestmark = pytest.mark.anyio


@pytest.fixture
async def loaded(app: App) -> App:
    events = [
        event(
            n,
            action=["user.login", "user.logout", "document.deleted", "role.updated"][n % 4],
            occurred_at=f"2026-11-{1 + n % 20:02d}T10:00:00Z",
            outcome="failure" if n % 5 == 0 else "success",
            reason='=HYPERLINK("http://x")' if n == 5 else None,
            metadata={"n": n, "note": "line one\nline two"},
        )
        for n in range(40)
    ]
    assert (await app.post("acme", {"events": events})).json()["accepted"] == 40
    assert (await app.post("globex", {"events": [event("g1")]})).json()["accepted"] == 1
    return app


async def _export(app: App, key: str = "acme", **params: Any) -> Any:
    return await app.client.get("/v1/export", params=params, headers=app.auth(key))


async def test_ndjson_is_the_api_objects_oldest_first(loaded: App) -> None:
    r = await _export(loaded)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    assert "attachment" in r.headers["content-disposition"]
    lines = [json.loads(line) for line in r.text.splitlines()]
    api = (await loaded.get("acme", "/v1/events", limit=1000, order="asc")).json()["data"]
    assert lines == api and len(lines) == 40


async def test_filters_and_order_apply(loaded: App) -> None:
    r = await _export(loaded, action="user.*", outcome="failure", order="desc")
    got = [json.loads(line) for line in r.text.splitlines()]
    assert got and all(e["action"].startswith("user.") and e["outcome"] == "failure" for e in got)
    keys = [(e["occurred_at"], e["seq"]) for e in got]
    assert keys == sorted(keys, reverse=True)
    r = await _export(loaded, since="2026-11-10T00:00:00Z", until="2026-11-12T00:00:00Z")
    assert {json.loads(x)["occurred_at"][:10] for x in r.text.splitlines()} == {
        "2026-11-10",
        "2026-11-11",
    }


async def test_csv_columns_and_formula_injection(loaded: App) -> None:
    r = await _export(loaded, format="csv")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 41
    by_id = {row[1]: dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]}
    five = by_id["evt-5"]
    assert five["reason"].startswith("'=")  # a spreadsheet shows it, never runs it
    assert json.loads(five["metadata"]) == {"n": 5, "note": "line one\nline two"}
    assert json.loads(five["targets"]) == [{"id": "doc_1", "type": "document"}]
    assert five["actor_id"] == "user_1" and five["tenant"] == "acme" and len(five["hash"]) == 64


async def test_ocsf_lines(loaded: App) -> None:
    r = await _export(loaded, format="ocsf")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 40
    assert {line["class_uid"] for line in lines} >= {3002}
    assert all(line["metadata"]["uid"].startswith("evt-") for line in lines)


async def test_export_is_scoped_and_checked(loaded: App) -> None:
    r = await _export(loaded, key="globex")
    assert [json.loads(x)["id"] for x in r.text.splitlines()] == ["evt-g1"]
    assert (await _export(loaded, key="acme_write")).status_code == 403
    assert (await _export(loaded, key="operator")).status_code == 403
    r = await loaded.client.get("/v1/export")
    assert r.status_code == 401
    for params, needle in [
        ({"format": "xml"}, "format must be one of"),
        ({"limit": "5"}, "unknown export parameter"),
        ({"since": "yesterday"}, "since"),
        ({"order": "sideways"}, "order"),
    ]:
        r = await _export(loaded, **params)
        assert r.status_code == 400 and needle in r.json()["detail"], (params, r.text)


# -- the pull feed ---------------------------------------------------------------------------


async def test_long_poll_returns_when_an_event_arrives(app: App) -> None:
    async def later() -> None:
        await anyio.sleep(0.3)
        await app.post("acme", event("late"))

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(later)
        r = await app.get("acme", "/v1/feed", after=0, wait=10)
    elapsed = time.monotonic() - started
    assert r.status_code == 200 and [e["id"] for e in r.json()["data"]] == ["evt-late"]
    assert elapsed < 5 and r.json()["next_after"] == 1


async def test_long_poll_times_out_empty(app: App) -> None:
    started = time.monotonic()
    r = await app.get("acme", "/v1/feed", after=0, wait=0.4)
    assert r.json() == {"data": [], "size": 0, "next_after": 0}
    assert 0.35 <= time.monotonic() - started < 3


async def test_feed_bad_parameters(app: App) -> None:
    for params in ({"wait": "-1"}, {"wait": "999"}, {"wait": "soon"}, {"after": "x"}):
        r = await app.get("acme", "/v1/feed", **params)
        assert r.status_code == 400, params


async def test_consumer_resuming_from_its_cursor_misses_and_repeats_nothing(app: App) -> None:
    total = 300
    seen: list[int] = []

    async def produce() -> None:
        for i in range(0, total, 30):
            await app.post("acme", {"events": [event(f"p{n}") for n in range(i, i + 30)]})
            await anyio.sleep(0.01)

    async def consume() -> None:
        after = 0
        while len(seen) < total:
            # a "restart" every page: only the cursor is carried over
            page = (await app.get("acme", "/v1/feed", after=after, limit=47, wait=2)).json()
            seen.extend(e["seq"] for e in page["data"])
            after = page["next_after"]

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(produce)
    assert seen == list(range(1, total + 1))
