"""/v1/log: checkpoints, proofs and the public key, checked with the verifier library."""

from __future__ import annotations

from typing import Any

import pytest

from auditkeep.integrity.checkpoint import (
    NoKnownSignatureError,
    parse_verifier,
    verify_checkpoint,
)
from auditkeep.integrity.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from auditkeep.model import canonical_json
from tests.conftest import App, event

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def no_background_checkpoints(app: App) -> None:
    """The app fixture runs the checkpoint signer, whose first round may or may not have
    signed the fixture's tenants yet: stop it and start every test without checkpoints."""
    app.core.checkpointer.stop()
    app.execute("DELETE FROM checkpoints")


async def _ingest(app: App, name: str, numbers: range) -> list[dict[str, Any]]:
    r = await app.post(name, {"events": [event(i) for i in numbers]})
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


async def _sign(app: App, name: str = "acme") -> dict[str, Any]:
    r = await app.client.post("/v1/log/checkpoints", headers=app.auth(name))
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


async def _verifiers(app: App) -> list[Any]:
    text = (await app.client.get("/v1/log/key")).text
    return [parse_verifier(line) for line in text.splitlines()]


def _leaf_hashes(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        leaf_hash(canonical_json({k: v for k, v in e.items() if k not in ("seq", "hash")}))
        for e in events
    ]


async def test_checkpoint_commits_to_the_events(app: App) -> None:
    await _ingest(app, "acme", range(7))
    signed = await _sign(app)
    assert signed["size"] == 7 and signed["origin"] == "auditkeep.local/acme"
    note = (await app.get("acme_read", "/v1/log/checkpoint")).content
    assert note == signed["note"].encode()
    cp = verify_checkpoint(note, await _verifiers(app), "auditkeep.local/acme")
    events = (await app.get("acme", "/v1/feed", after=0, limit=100)).json()["data"]
    assert cp.size == 7 and cp.root_hash == root_from_leaves(_leaf_hashes(events))
    assert cp.extensions[0].startswith("timestamp 20")
    # JSON form, by parameter or by Accept header
    as_json = (await app.get("acme", "/v1/log/checkpoint", format="json")).json()
    assert as_json["root"] == cp.root_hash.hex() and as_json["note"] == note.decode()
    accept = await app.client.get(
        "/v1/log/checkpoint", headers={**app.auth("acme"), "Accept": "application/json"}
    )
    assert accept.json()["size"] == 7
    # signing again without new events changes nothing
    r = await app.client.post("/v1/log/checkpoints", headers=app.auth("acme"))
    assert r.status_code == 200 and r.json()["note"] == note.decode()


async def test_inclusion_proof_for_every_event(app: App) -> None:
    results = await _ingest(app, "acme", range(13))
    cp = verify_checkpoint(
        (await _sign(app))["note"].encode(), await _verifiers(app), "auditkeep.local/acme"
    )
    for res in results:
        r = await app.get("acme_read", "/v1/log/proof/inclusion", id=res["id"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["seq"] == res["seq"] and body["tree_size"] == 13
        event_json = (await app.get("acme", f"/v1/events/{res['id']}")).json()
        assert body["leaf_hash"] == event_json["hash"]
        verify_inclusion(
            bytes.fromhex(body["leaf_hash"]),
            body["leaf_index"],
            cp.size,
            [bytes.fromhex(h) for h in body["hashes"]],
            cp.root_hash,
        )
    by_seq = (await app.get("acme", "/v1/log/proof/inclusion", seq=5, tree_size=9)).json()
    assert by_seq["tree_size"] == 9 and by_seq["checkpoint"] is None
    assert by_seq["leaf_index"] == 4
    # asked by seq, the answer names the event it proves
    assert by_seq["id"] == results[4]["id"]


async def test_consistency_between_checkpoints(app: App) -> None:
    await _ingest(app, "acme", range(5))
    old = await _sign(app)
    await _ingest(app, "acme", range(5, 21))
    new = await _sign(app)
    history = (await app.get("acme", "/v1/log/checkpoints")).json()["data"]
    assert [c["size"] for c in history] == [5, 21]
    after = (await app.get("acme", "/v1/log/checkpoints", after_size=5)).json()["data"]
    assert [c["size"] for c in after] == [21]
    r = await app.get("acme_read", "/v1/log/proof/consistency", first=5, second=21)
    proof = [bytes.fromhex(h) for h in r.json()["hashes"]]
    verify_consistency(5, 21, bytes.fromhex(old["root"]), bytes.fromhex(new["root"]), proof)
    default = (await app.get("acme", "/v1/log/proof/consistency", first=5)).json()
    assert default["second"] == 21 and default["hashes"] == r.json()["hashes"]
    empty = (await app.get("acme", "/v1/log/proof/consistency", first=0, second=0)).json()
    assert empty["hashes"] == []
    frontier = (await app.get("acme", "/v1/log/frontier", tree_size=21)).json()
    assert len(frontier["hashes"]) == 3  # 21 = 16 + 4 + 1


async def test_tenants_are_isolated(app: App) -> None:
    acme = await _ingest(app, "acme", range(3))
    await _ingest(app, "globex", range(4))
    await _sign(app, "acme")
    globex_cp = await _sign(app, "globex")
    assert globex_cp["origin"] == "auditkeep.local/globex" and globex_cp["size"] == 4
    r = await app.get("globex", "/v1/log/proof/inclusion", id=acme[0]["id"])
    # the same event id exists in globex (ids are per tenant): its proof is globex's event
    assert r.json()["tree_size"] == 4
    await app.post("acme", event("only-acme"))
    await _sign(app, "acme")
    r = await app.get("globex", "/v1/log/proof/inclusion", id="evt-only-acme")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    # a checkpoint for one tenant does not verify as another tenant's log
    note = (await app.get("globex", "/v1/log/checkpoint")).content
    with pytest.raises(Exception, match="does not match the expected origin"):
        verify_checkpoint(note, await _verifiers(app), "auditkeep.local/acme")


async def test_scopes(app: App) -> None:
    await _ingest(app, "acme", range(2))
    assert (await app.get("acme_write", "/v1/log/checkpoint")).status_code == 403
    assert (await app.get("acme_admin", "/v1/log/proof/consistency", first=0)).status_code == 403
    assert (await app.get("operator", "/v1/log/checkpoint")).status_code == 403
    assert (await app.client.get("/v1/log/checkpoint")).status_code == 401
    r = await app.client.post("/v1/log/checkpoints", headers=app.auth("acme_read"))
    assert r.status_code == 403 and "events:write or admin" in r.json()["detail"]
    r = await app.client.post("/v1/log/checkpoints", headers=app.auth("operator"))
    assert r.status_code == 403
    assert (await app.client.post("/v1/log/checkpoints", headers=app.auth("acme_admin"))).is_success
    assert (await app.client.post("/v1/log/checkpoints", headers=app.auth("acme_write"))).is_success


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/v1/log/proof/inclusion", {"id": "nope"}, 404, "no event with id 'nope'"),
        ("/v1/log/proof/inclusion", {}, 400, "exactly one of id"),
        ("/v1/log/proof/inclusion", {"seq": "0"}, 400, "seq must be at least 1"),
        ("/v1/log/proof/inclusion", {"seq": "99"}, 404, "no event with seq 99"),
        ("/v1/log/proof/inclusion", {"seq": "2", "tree_size": "1"}, 400, "not in the tree"),
        ("/v1/log/proof/inclusion", {"seq": "4"}, 409, "not covered by the latest checkpoint"),
        ("/v1/log/proof/inclusion", {"seq": "1", "tree_size": "x"}, 400, "whole number"),
        ("/v1/log/proof/inclusion", {"seq": "1", "tree_size": "50"}, 400, "larger than the log"),
        ("/v1/log/proof/consistency", {}, 400, "first (the older tree size) is required"),
        ("/v1/log/proof/consistency", {"first": "3", "second": "2"}, 400, "between 0 and"),
        ("/v1/log/proof/consistency", {"first": "1", "second": "9"}, 400, "larger than the log"),
        ("/v1/log/checkpoints", {"limit": "0"}, 400, "between 1 and 1000"),
        ("/v1/log/checkpoint", {"format": "xml"}, 400, "format must be json or note"),
        ("/v1/log/checkpoint", {"bogus": "1"}, 400, "unknown query parameter(s) bogus"),
    ],
)
async def test_errors_are_problems(
    app: App, path: str, params: dict[str, str], status: int, message: str
) -> None:
    await _ingest(app, "acme", range(3))
    await _sign(app)
    await app.post("acme", event("late"))
    r = await app.get("acme", path, **params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert message in r.json()["detail"]


async def test_no_checkpoint_yet_is_404(app: App) -> None:
    r = await app.get("acme", "/v1/log/checkpoint")
    assert r.status_code == 404 and "no signed checkpoint yet" in r.json()["detail"]


async def test_empty_log_checkpoint(app: App) -> None:
    cp = await _sign(app)
    assert cp["size"] == 0 and cp["root"] == EMPTY_ROOT.hex()


async def test_public_key_and_rotation(app: App) -> None:
    await _ingest(app, "acme", range(3))
    first = await _sign(app)
    old = await _verifiers(app)
    assert len(old) == 1 and old[0].name == "auditkeep.local"
    listing = (await app.client.get("/v1/log/key", params={"format": "json"})).json()
    assert [k["state"] for k in listing["keys"]] == ["active"]
    app.core.keys.rotate()
    both = await _verifiers(app)
    assert len(both) == 2 and both[1] == old[0]
    # the same size is signed again, by both keys: verifiers pinned to either accept it
    second = await _sign(app)
    assert second["size"] == first["size"] and len(second["key_ids"]) == 2
    note = second["note"].encode()
    verify_checkpoint(note, old, "auditkeep.local/acme")
    verify_checkpoint(note, [both[0]], "auditkeep.local/acme")
    app.core.keys.retire()
    listing = (await app.client.get("/v1/log/key", params={"format": "json"})).json()
    assert [k["state"] for k in listing["keys"]] == ["active", "retired"]
    assert listing["keys"][1]["retired_at"] is not None
    await _ingest(app, "acme", range(3, 5))
    third = (await _sign(app))["note"].encode()
    with pytest.raises(NoKnownSignatureError):
        verify_checkpoint(third, old, "auditkeep.local/acme")
    verify_checkpoint(third, [both[0]], "auditkeep.local/acme")
    assert not (app.core.config.data_dir / "keys" / f"{listing['keys'][1]['key_id']}.key").exists()


async def test_checkpoint_at_a_given_size(app: App) -> None:
    await _ingest(app, "acme", range(5))
    five = await _sign(app)
    await _ingest(app, "acme", range(5, 9))
    nine = await _sign(app)
    verifiers = await _verifiers(app)
    note = (await app.get("acme_read", "/v1/log/checkpoints/5")).content
    assert note == five["note"].encode()
    assert verify_checkpoint(note, verifiers, "auditkeep.local/acme").size == 5
    as_json = (await app.get("acme_read", "/v1/log/checkpoints/9", format="json")).json()
    assert as_json == nine
    # a size that was never signed: 404 naming the next signed size, and where to look
    r = await app.get("acme_read", "/v1/log/checkpoints/7")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    detail = r.json()["detail"]
    assert "was signed at size 7" in detail and "next one signed is at size 9" in detail
    r = await app.get("acme_read", "/v1/log/checkpoints/12")
    assert r.status_code == 404 and "the latest is at size 9" in r.json()["detail"]
    r = await app.get("acme_read", "/v1/log/checkpoints/x")
    assert r.status_code == 400 and "size must be a whole number" in r.json()["detail"]
    # another tenant's checkpoint of the same size is not visible
    await _ingest(app, "globex", range(5))
    r = await app.get("globex", "/v1/log/checkpoints/5")
    assert r.status_code == 404 and "no signed checkpoint yet" in r.json()["detail"]
    assert (await app.get("acme_write", "/v1/log/checkpoints/5")).status_code == 403


async def test_checkpoints_paging(app: App) -> None:
    sizes = []
    for n in range(4):
        await _ingest(app, "acme", range(n * 2, n * 2 + 2))
        sizes.append((await _sign(app))["size"])
    seen, params = [], {"limit": 3}
    while True:
        page = (await app.get("acme_read", "/v1/log/checkpoints", **params)).json()
        seen += [c["size"] for c in page["data"]]
        if page["next_after_size"] is None:
            break
        assert page["next_after_size"] == page["data"][-1]["size"]
        params["after_size"] = page["next_after_size"]  # exclusive
    assert seen == sizes == [2, 4, 6, 8]
    r = await app.get("acme_read", "/v1/log/checkpoints", limit=1001)
    assert r.status_code == 400 and "between 1 and 1000" in r.json()["detail"]


async def test_key_answers_the_callers_origin(app: App) -> None:
    public = (await app.client.get("/v1/log/key", params={"format": "json"})).json()
    assert "origin" not in public and public["key_name"] == "auditkeep.local"
    mine = (await app.get("acme_read", "/v1/log/key", format="json")).json()
    assert mine["origin"] == "auditkeep.local/acme" and mine["keys"] == public["keys"]
    assert "origin" not in (await app.get("operator", "/v1/log/key", format="json")).json()
    bad = await app.client.get("/v1/log/key", headers={"Authorization": "Bearer ak_nope_nope"})
    assert bad.status_code == 401
