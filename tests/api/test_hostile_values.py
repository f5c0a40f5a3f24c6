"""Hostile values in fields and parameters: timestamps whose UTC offset overflows the calendar,
integers beyond int64, forged cursors. Each is the client's mistake (a 400, or a 422 for one
event of a batch whose other events are stored), never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conftest import App, event

pytestmark = pytest.mark.anyio

OVERFLOWING = [
    "9999-12-31T23:59:59-01:00",  # past year 9999 once the offset is applied
    "0001-01-01T00:00:00+01:00",  # before year 1
    "9999-12-31T23:30:00-23:59",
]


def _problem(r: Any, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


@pytest.mark.parametrize("stamp", OVERFLOWING)
async def test_overflowing_occurred_at_rejects_one_event_and_keeps_the_rest(
    app: App, stamp: str
) -> None:
    batch = {"events": [event(1), event(2, occurred_at=stamp), event(3)]}
    r = await app.post("acme", batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    bad = body["results"][1]
    assert bad["status"] == "rejected" and bad["error"]["status"] == 422
    assert bad["error"]["errors"][0]["path"] == "occurred_at"
    assert "outside the supported range" in bad["error"]["errors"][0]["message"]
    stored = (await app.get("acme", "/v1/events")).json()["data"]
    assert sorted(e["id"] for e in stored) == ["evt-1", "evt-3"]
    # the single-event form is a 422 too
    _problem(await app.post("acme", event(4, occurred_at=stamp)), 422, "occurred_at")


@pytest.mark.parametrize("stamp", OVERFLOWING)
@pytest.mark.parametrize("name", ["since", "until"])
async def test_overflowing_time_filters_are_400(app: App, name: str, stamp: str) -> None:
    _problem(await app.get("acme", "/v1/events", **{name: stamp}), 400, name, "range")
    _problem(await app.get("acme", "/v1/export", **{name: stamp}), 400, name)


@pytest.mark.parametrize("stamp", OVERFLOWING)
async def test_overflowing_key_expiry_is_400(app: App, stamp: str) -> None:
    r = await app.client.post(
        "/v1/tenants/acme/keys",
        json={"scopes": ["events:read"], "expires_at": stamp},
        headers=app.auth("operator"),
    )
    _problem(r, 400, "expires_at", "range")


HUGE = [str(2**63), str(2**64 + 5), "9" * 40, "²", "-1", "1e3"]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize(
    ("path", "name", "extra"),
    [
        ("/v1/feed", "after", {}),
        ("/v1/feed", "limit", {}),
        ("/v1/events", "limit", {}),
        ("/v1/log/proof/inclusion", "seq", {}),
        ("/v1/log/proof/inclusion", "tree_size", {"seq": "1"}),
        ("/v1/log/proof/consistency", "first", {}),
        ("/v1/log/proof/consistency", "second", {"first": "1"}),
        ("/v1/log/checkpoints", "after_size", {}),
        ("/v1/log/checkpoints", "limit", {}),
        ("/v1/log/frontier", "tree_size", {}),
    ],
)
async def test_integers_beyond_int64_are_400(
    app: App, path: str, name: str, extra: dict[str, str], value: str
) -> None:
    await app.post("acme", event(1))
    r = await app.get("acme", path, **{**extra, name: value})
    _problem(r, 400, name)


async def test_the_largest_int64_is_an_ordinary_value(app: App) -> None:
    await app.post("acme", event(1))
    r = await app.get("acme", "/v1/feed", after=str(2**63 - 1))
    assert r.status_code == 200 and r.json()["data"] == []
    r = await app.get("acme", "/v1/log/checkpoints", after_size=str(2**63 - 1))
    assert r.status_code == 200 and r.json()["data"] == []


def _cursor(**fields: Any) -> str:
    raw = json.dumps({"v": 1, "d": True, **fields}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "fields",
    [
        {"t": 2**63, "s": 1},
        {"t": 1, "s": 2**64},
        {"t": -(2**63) - 1, "s": 1},
        {"t": 1.5, "s": 1},
        {"t": "1", "s": 1},
        {"t": True, "s": 1},
    ],
)
async def test_forged_cursors_are_400(app: App, fields: dict[str, Any]) -> None:
    await app.post("acme", event(1))
    r = await app.get("acme", "/v1/events", cursor=_cursor(**fields))
    _problem(r, 400, "cursor")


def _largest_event(n: int) -> dict[str, Any]:
    """An event with every field at its own limit, in 4-byte characters (targets in control
    characters, 6 bytes each once escaped): each field is allowed, but together they are over
    the 64 KiB whole-event limit."""
    wide, escaped = "\U0001f600", "\x01"
    person = {"id": wide * 256, "type": "user", "name": wide * 256}
    return event(
        n,
        actor=person,
        targets=[{"id": escaped * 128, "type": "t" * 64, "name": escaped * 256} for _ in range(20)],
        reason=wide * 1024,
        context={"ip": "203.0.113.9", "user_agent": wide * 1024, "request_id": wide * 256},
        metadata={f"k{i}": wide * 100 for i in range(38)},
    )


async def test_an_event_over_the_whole_event_limit_is_422_and_the_batch_keeps_the_rest(
    app: App,
) -> None:
    from auditkeep_client.schema import LIMITS, canonical_json

    big = _largest_event(2)
    assert len(canonical_json(big)) > LIMITS.max_event_bytes  # the attack as it is meant
    r = await app.post("acme", {"events": [event(1), big, event(3)]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    message = body["results"][1]["error"]["errors"][0]["message"]
    assert "canonical form; the limit is 65536" in message, message
    _problem(await app.post("acme", big), 422, "the limit is 65536")
    stored = (await app.get("acme", "/v1/events")).json()["data"]
    assert sorted(e["id"] for e in stored) == ["evt-1", "evt-3"]


def test_the_sdk_refuses_the_same_event_before_the_outbox(tmp_path: Any) -> None:
    from auditkeep_client import AuditKeep, EventValidationError

    big = _largest_event(1)
    with AuditKeep(
        "ak_x_y", endpoints="http://127.0.0.1:9", outbox=tmp_path / "o.db", start_sender=False
    ) as client:
        with pytest.raises(EventValidationError, match="the limit is 65536"):
            client.log(
                big["action"],
                actor=big["actor"],
                targets=big["targets"],
                reason=big["reason"],
                context=big["context"],
                metadata=big["metadata"],
            )
        assert client.outbox_stats().pending == 0
