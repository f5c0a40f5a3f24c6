"""Ingest over HTTP: single events, batches, idempotency, limits."""

from __future__ import annotations

import gzip

import orjson
import pytest

from tests.conftest import App, event

pytestmark = pytest.mark.anyio


async def test_single_event_is_accepted_with_seq(app: App) -> None:
    r = await app.post("acme", event(1))
    assert r.status_code == 201
    assert r.json() == {"id": "evt-1", "status": "accepted", "seq": 1}
    r = await app.post("acme", event(2))
    assert r.json()["seq"] == 2


async def test_server_makes_an_id_when_the_client_gives_none(app: App) -> None:
    r = await app.post("acme", event(1, id=None))
    assert r.status_code == 201
    assert len(r.json()["id"]) == 36  # a UUIDv7


async def test_same_event_twice_is_a_duplicate_with_the_original_seq(app: App) -> None:
    await app.post("acme", event(1))
    await app.post("acme", event(2))
    r = await app.post("acme", event(1))
    assert r.status_code == 200
    assert r.json() == {"id": "evt-1", "status": "duplicate", "seq": 1}
    got = await app.get("acme", "/v1/events")
    assert [e["seq"] for e in got.json()["data"]] == [2, 1]


async def test_same_id_different_content_is_a_conflict(app: App) -> None:
    await app.post("acme", event(1))
    r = await app.post("acme", event(1, action="user.logout"))
    assert r.status_code == 409
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert "already stored" in problem["detail"] and problem["id"] == "evt-1"


async def test_equivalent_forms_are_duplicates(app: App) -> None:
    """Normalisation makes a retry with another spelling of the same time a duplicate."""
    await app.post("acme", event(1, occurred_at="2026-11-23T10:00:00Z"))
    r = await app.post("acme", event(1, occurred_at="2026-11-23T11:00:00.000+01:00"))
    assert r.json()["status"] == "duplicate"


async def test_batch_gives_one_result_per_event_in_order(app: App) -> None:
    await app.post("acme", event("dup"))
    body = {
        "events": [
            event("a"),
            event("dup"),
            event("bad", action="Not An Action"),
            event("dup", outcome="failure"),
            event("b"),
            event("a"),  # repeated inside the same batch
        ]
    }
    r = await app.post("acme", body)
    assert r.status_code == 200
    data = r.json()
    statuses = [(x["index"], x["status"], x.get("seq")) for x in data["results"]]
    assert statuses == [
        (0, "accepted", 2),
        (1, "duplicate", 1),
        (2, "rejected", None),
        (3, "rejected", None),
        (4, "accepted", 3),
        (5, "duplicate", 2),
    ]
    assert (data["accepted"], data["duplicates"], data["rejected"]) == (2, 2, 2)
    assert data["results"][2]["error"]["errors"][0]["path"] == "action"
    assert data["results"][3]["error"]["status"] == 409


async def test_rejected_batch_event_writes_nothing(app: App) -> None:
    r = await app.post("acme", {"events": [event("x", actor=None), event("y", metadata=5)]})
    assert r.json()["rejected"] == 2
    assert (await app.get("acme", "/v1/events")).json()["data"] == []
    feed = (await app.get("acme", "/v1/feed", after=0)).json()
    assert feed == {"data": [], "size": 0, "next_after": 0}


async def test_batch_limit_of_1000_events(app: App) -> None:
    r = await app.post("acme", {"events": [event(i) for i in range(1000)]})
    assert r.status_code == 200 and r.json()["accepted"] == 1000
    r = await app.post("acme", {"events": [event(i) for i in range(1001)]})
    assert r.status_code == 413
    assert "1001 events" in r.json()["detail"]


async def test_gzip_body_is_accepted(app: App) -> None:
    raw = gzip.compress(orjson.dumps({"events": [event(1), event(2)]}))
    r = await app.client.post(
        "/v1/events",
        content=raw,
        headers={
            **app.auth("acme"),
            "content-type": "application/json",
            "content-encoding": "gzip",
        },
    )
    assert r.status_code == 200 and r.json()["accepted"] == 2


async def test_stored_event_is_the_normal_form_with_server_fields(app: App) -> None:
    await app.post("acme", event(1, occurred_at="2026-11-23T11:30:00.5+01:00", category=None))
    stored = (await app.get("acme", "/v1/events/evt-1")).json()
    assert stored["occurred_at"] == "2026-11-23T10:30:00.500000Z"
    assert stored["category"] == "audit"
    assert stored["tenant"] == "acme" and stored["seq"] == 1
    assert stored["received_at"].endswith("Z") and len(stored["hash"]) == 64


async def test_leaf_hash_can_be_recomputed_from_the_served_event(app: App) -> None:
    """docs/canonical-encoding.md: hash = SHA-256(0x00 || JCS(event without seq and hash))."""
    import hashlib

    from auditkeep_client.schema import canonical_json

    await app.post("acme", event(1, metadata={"amount": 12.5, "note": "café ☕", "n": 10**15}))
    stored = (await app.get("acme", "/v1/events/evt-1")).json()
    leaf = canonical_json({k: v for k, v in stored.items() if k not in ("seq", "hash")})
    assert hashlib.sha256(b"\x00" + leaf).hexdigest() == stored["hash"]
