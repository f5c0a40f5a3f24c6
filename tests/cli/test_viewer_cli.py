"""`auditkeep viewer-tokens create` against a real server: the token it prints reads only its
scope; a request the server refuses is one line and exit status 1."""

from __future__ import annotations

import json

import httpx

from tests.conftest import LiveServer, cli, event


def test_create_prints_a_token_that_reads_only_its_scope(live_server: LiveServer) -> None:
    url, key = live_server.url, live_server.write_key
    events = [event(i, actor={"id": f"user_{i % 2}", "type": "user"}) for i in range(6)]
    r = httpx.post(
        url + "/v1/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.json()["accepted"] == 6, r.text
    out = cli("viewer-tokens", "create", "--server", url, "--key", key, "--actor", "user_1")
    token = out.stdout.strip()
    assert token.startswith("akv_")
    got = httpx.get(
        url + "/v1/events",
        params={"actor_id": "user_0"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert got.status_code == 200 and got.json()["data"] == []
    got = httpx.get(url + "/v1/events", headers={"Authorization": f"Bearer {token}"})
    assert sorted(e["id"] for e in got.json()["data"]) == ["evt-1", "evt-3", "evt-5"]
    out = cli(
        "viewer-tokens", "create", "--server", url, "--key", key,
        "--filter", "action=user.*", "--hide", "context.ip", "--ttl", "60", "--json",
    )  # fmt: skip
    assert set(json.loads(out.stdout)) == {"token", "expires_at"}


def test_a_refused_request_is_one_line(live_server: LiveServer) -> None:
    url, key = live_server.url, live_server.write_key
    out = cli("viewer-tokens", "create", "--server", url, "--key", key, check=False)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and '"scope": "tenant"' in out.stderr, out.stderr
