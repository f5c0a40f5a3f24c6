"""GET /v1/events: filters, ordering and cursor pagination."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import App, event

pytestmark = pytest.mark.anyio


def _ev(n: int, **kw: Any) -> dict[str, Any]:
    return event(n, occurred_at=f"2026-11-{1 + n % 28:02d}T{n % 24:02d}:00:00Z", **kw)


@pytest.fixture
async def loaded(app: App) -> App:
    events = []
    for n in range(60):
        events.append(
            _ev(
                n,
                action=["user.login", "user.logout", "document.deleted", "role.updated"][n % 4],
                actor={"id": f"user_{n % 3}", "type": "user"},
                targets=[{"id": f"doc_{n % 5}", "type": "document"}]
                + ([{"id": f"team_{n % 2}", "type": "team"}] if n % 2 else []),
                outcome="failure" if n % 10 == 0 else "success",
                category="security" if n % 4 == 0 else "audit",
            )
        )
    r = await app.post("acme", {"events": events})
    assert r.json()["accepted"] == 60
    return app


async def _all(app: App, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        body = (await app.get("acme", "/v1/events", **params)).json()
        out += body["data"]
        if not body["next_cursor"]:
            return out
        params["cursor"] = body["next_cursor"]


def _key(e: dict[str, Any]) -> tuple[str, int]:
    return (e["occurred_at"], e["seq"])


async def test_newest_first_with_complete_pagination(loaded: App) -> None:
    got = await _all(loaded, limit=7)
    assert len(got) == 60 and len({e["seq"] for e in got}) == 60
    assert [_key(e) for e in got] == sorted((_key(e) for e in got), reverse=True)


async def test_ascending_order(loaded: App) -> None:
    got = await _all(loaded, limit=11, order="asc")
    assert [_key(e) for e in got] == sorted(_key(e) for e in got)


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"actor_id": "user_1"}, lambda e: e["actor"]["id"] == "user_1"),
        ({"action": "user.login"}, lambda e: e["action"] == "user.login"),
        ({"action": "user.*"}, lambda e: e["action"].startswith("user.")),
        ({"outcome": "failure"}, lambda e: e["outcome"] == "failure"),
        ({"category": "security"}, lambda e: e["category"] == "security"),
        ({"target_id": "doc_3"}, lambda e: any(t["id"] == "doc_3" for t in e["targets"])),
        ({"target_type": "team"}, lambda e: any(t["type"] == "team" for t in e["targets"])),
        (
            {"target_id": "team_1", "target_type": "team", "actor_id": "user_0"},
            lambda e: (
                e["actor"]["id"] == "user_0" and any(t["id"] == "team_1" for t in e["targets"])
            ),
        ),
        (
            {"since": "2026-11-10T00:00:00Z", "until": "2026-11-20T00:00:00Z"},
            lambda e: "2026-11-10" <= e["occurred_at"] < "2026-11-20",
        ),
        (
            {"actor_id": "user_2", "action": "user.*", "outcome": "success"},
            lambda e: (
                e["actor"]["id"] == "user_2"
                and e["action"].startswith("user.")
                and e["outcome"] == "success"
            ),
        ),
    ],
)
async def test_filters_match_exactly_the_right_events(
    loaded: App, params: dict[str, str], predicate: Any
) -> None:
    everything = await _all(loaded, limit=1000)
    expected = sorted((_key(e) for e in everything if predicate(e)), reverse=True)
    assert expected, "the fixture should produce matches"
    for limit in (1000, 4):
        got = await _all(loaded, limit=limit, **params)
        assert [_key(e) for e in got] == expected


async def test_get_by_id(loaded: App) -> None:
    r = await loaded.get("acme", "/v1/events/evt-7")
    assert r.status_code == 200 and r.json()["id"] == "evt-7"
    r = await loaded.get("acme", "/v1/events/nope")
    assert r.status_code == 404


async def test_feed_is_in_seq_order_and_resumable(loaded: App) -> None:
    first = (await loaded.get("acme", "/v1/feed", after=0, limit=25)).json()
    assert [e["seq"] for e in first["data"]] == list(range(1, 26)) and first["size"] == 60
    rest = (await loaded.get("acme", "/v1/feed", after=25, limit=1000)).json()
    assert [e["seq"] for e in rest["data"]] == list(range(26, 61))


async def test_cursor_of_the_other_order_is_refused(loaded: App) -> None:
    cursor = (await loaded.get("acme", "/v1/events", limit=5)).json()["next_cursor"]
    r = await loaded.get("acme", "/v1/events", limit=5, order="asc", cursor=cursor)
    assert r.status_code == 400


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize(
    "window", [{}, {"since": "2026-11-05T00:30:00Z", "until": "2026-11-25T00:30:00Z"}]
)
async def test_action_prefix_pages_match_a_full_scan(
    loaded: App, order: str, window: dict[str, str]
) -> None:
    # The store reads a prefix as a merge of one ordered scan per action under it.
    everything = await _all(loaded, limit=1000)
    expected = sorted(
        (
            _key(e)
            for e in everything
            if e["action"].startswith("user.")
            and window.get("since", "") <= e["occurred_at"] < window.get("until", "9")
        ),
        reverse=order == "desc",
    )
    assert expected
    for limit in (1000, 3):
        got = await _all(loaded, limit=limit, order=order, action="user.*", **window)
        assert [_key(e) for e in got] == expected
    assert await _all(loaded, action="nothing.*") == []


async def test_action_prefix_over_many_distinct_actions(app: App) -> None:
    # More distinct actions under the prefix than the store merges: it reads one range instead.
    events = [_ev(n, action=f"bulk.a{n:03d}") for n in range(90)]
    events += [_ev(100 + n, action="other.x") for n in range(5)]
    assert (await app.post("acme", {"events": events})).json()["accepted"] == 95
    got = await _all(app, limit=7, action="bulk.*")
    assert len(got) == 90 and {e["action"] for e in got} == {f"bulk.a{n:03d}" for n in range(90)}
    assert [_key(e) for e in got] == sorted((_key(e) for e in got), reverse=True)
