"""Destinations over the API: management, bad input, scoping, secrets, and delivery behaviour
(order, retries, Retry-After, pause and resume) against real receivers on loopback."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from auditkeep.api.app import create_app
from auditkeep.delivery.netguard import NetGuard
from tests.conftest import App, _key, event, make_core
from tests.delivery.conftest import FAST_DELIVERY
from tests.delivery.receivers import (
    HTTPReceiver,
    Received,
    WebhookLog,
    hec_check,
    wait_for,
)

pytestmark = pytest.mark.anyio

BASE = "/v1/tenants/acme/destinations"


async def _create(app: App, url: str, key: str = "acme_admin", **extra: Any) -> httpx.Response:
    body = {"name": "siem", "kind": "webhook", "config": {"url": url}, **extra}
    return await app.client.post(BASE, json=body, headers=app.auth(key))


async def _ingest(app: App, start: int, count: int) -> None:
    events = [event(n) for n in range(start, start + count)]
    r = await app.post("acme", {"events": events})
    assert r.json()["accepted"] == count


async def _status(app: App, dest_id: str) -> dict[str, Any]:
    r = await app.client.get(f"{BASE}/{dest_id}", headers=app.auth("acme_admin"))
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


async def _until(app: App, dest_id: str, pred: Any, within: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        status = await _status(app, dest_id)
        if pred(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"destination never got there: {status}")
        await anyio.sleep(0.05)


async def test_webhook_delivers_every_event_in_order_signed(
    dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]
) -> None:
    receiver, log = webhook
    await _ingest(dapp, 0, 30)
    r = await _create(dapp, receiver.url)
    assert r.status_code == 201, r.text
    created = r.json()
    log.secret = created["secret"]
    assert created["secret"].startswith("whsec_") and created["secrets"] == 1
    await _ingest(dapp, 30, 20)
    status = await _until(dapp, created["id"], lambda s: s["cursor"] == 50)
    assert status["lag_events"] == 0 and status["delivered"] == 50 and status["attempts"] == 0
    got = log.events()
    assert [e["seq"] for e in got] == list(range(1, 51))
    assert [e["id"] for e in got] == [f"evt-{n}" for n in range(50)]
    assert not log.rejected
    # the secret is never shown again, nor stored in the clear
    again = await _status(dapp, created["id"])
    assert "secret" not in again and again["secrets"] == 1
    db = (dapp.core.config.data_dir / "auditkeep.db").read_bytes()
    assert created["secret"].encode() not in db
    assert created["secret"][6:].encode() not in db


async def test_the_batch_is_fixed_in_the_store_before_it_is_sent(
    dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]
) -> None:
    receiver, log = webhook
    created = (await _create(dapp, receiver.url)).json()
    log.secret = created["secret"]
    fixed: list[tuple[int | None, int]] = []
    verify = log.handle

    def check(req: Received) -> tuple[int, dict[str, str], bytes]:
        dest = dapp.core.store.destinations(1).get(created["id"])
        assert dest is not None
        fixed.append((dest.batch_end, json.loads(req.body)["data"]["last_seq"]))
        return verify(req)

    receiver.handle = check
    await _ingest(dapp, 0, 7)
    await _until(dapp, created["id"], lambda s: s["cursor"] == 7)
    assert fixed and all(end == last for end, last in fixed)
    assert (await _status(dapp, created["id"]))["cursor"] == 7


async def test_start_now_skips_history(dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]) -> None:
    receiver, log = webhook
    await _ingest(dapp, 0, 10)
    created = (await _create(dapp, receiver.url, start="now")).json()
    log.secret = created["secret"]
    assert created["cursor"] == 10 and created["lag_events"] == 0
    await _ingest(dapp, 10, 5)
    await _until(dapp, created["id"], lambda s: s["cursor"] == 15)
    assert [e["seq"] for e in log.events()] == [11, 12, 13, 14, 15]


async def test_receiver_errors_are_retried_with_backoff_and_retry_after(
    dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]
) -> None:
    receiver, log = webhook
    answers = iter([(503, {"Retry-After": "1"}, b"busy"), (500, {}, b"oops")])

    def flaky(req: Received) -> tuple[int, dict[str, str], bytes] | None:
        return next(answers, None)

    log.answer = flaky
    created = (await _create(dapp, receiver.url)).json()
    log.secret = created["secret"]
    await _ingest(dapp, 0, 5)
    status = await _until(dapp, created["id"], lambda s: s["cursor"] == 5)
    assert status["attempts"] == 0 and status["last_error"] is None
    times = [r for r in receiver.requests]
    assert len(times) == 3
    # the same batch each time: same webhook-id
    assert len({r.headers["webhook-id"] for r in times}) == 1
    assert [e["seq"] for e in log.events()] == [1, 2, 3, 4, 5]


async def test_retry_after_is_honoured(dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]) -> None:
    receiver, log = webhook
    seen: list[float] = []

    def once_busy(req: Received) -> tuple[int, dict[str, str], bytes] | None:
        seen.append(time.monotonic())
        return (429, {"Retry-After": "1"}, b"slow down") if len(seen) == 1 else None

    log.answer = once_busy
    created = (await _create(dapp, receiver.url)).json()
    log.secret = created["secret"]
    await _ingest(dapp, 0, 3)
    failing = await _until(dapp, created["id"], lambda s: s["attempts"] == 1)
    assert "429" in failing["last_error"] and failing["next_attempt_at"]
    await _until(dapp, created["id"], lambda s: s["cursor"] == 3)
    assert seen[1] - seen[0] >= 0.95  # base backoff is 0.05 s: only Retry-After explains this


def test_sustained_failure_pauses_and_resume_delivers(tmp_path: Path) -> None:
    down = HTTPReceiver(lambda req: (500, {}, b"down"))
    down.start()
    core = make_core(
        tmp_path / "d",
        delivery_allow_networks="127.0.0.0/8",
        delivery_retry_base=0.05,
        delivery_retry_cap=0.1,
        delivery_pause_after=0.5,
    )
    core.start()
    try:
        tenant = core.create_tenant("acme")
        created = core.destinations.create(
            tenant, {"name": "w", "kind": "webhook", "config": {"url": down.url}}
        )
        prepared = core.prepare([event(1), event(2)], "acme")[1]
        core.writer.append_sync(tenant.tenant_id, [p for _, p in prepared])
        wait_for(
            lambda: core.destinations.get(tenant, created["id"])["state"] == "paused",
            what="the destination to pause",
        )
        paused = core.destinations.get(tenant, created["id"])
        assert paused["cursor"] == 0 and paused["lag_events"] == 2
        assert "failing for" in paused["paused_reason"] and "500" in paused["paused_reason"]
        tries = len(down.requests)
        time.sleep(0.3)
        assert len(down.requests) == tries  # paused means no attempts
        log = WebhookLog(secret=created["secret"])
        down.handle = log.handle  # the receiver is fixed
        resumed = core.destinations.resume(tenant, created["id"])
        assert resumed["state"] == "active" and resumed["attempts"] == 0
        wait_for(lambda: core.destinations.get(tenant, created["id"])["cursor"] == 2)
        assert [e["seq"] for e in log.events()] == [1, 2]
    finally:
        core.close()
        down.stop()


async def test_gone_pauses_at_once(dapp: App) -> None:
    gone = HTTPReceiver(lambda req: (410, {}, b""))
    gone.start()
    try:
        created = (await _create(dapp, gone.url)).json()
        await _ingest(dapp, 0, 1)
        status = await _until(dapp, created["id"], lambda s: s["state"] == "paused")
        assert "410" in status["paused_reason"]
    finally:
        gone.stop()


async def test_pause_and_resume_by_api(dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]) -> None:
    receiver, log = webhook
    created = (await _create(dapp, receiver.url)).json()
    log.secret = created["secret"]
    headers = dapp.auth("acme_admin")
    r = await dapp.client.post(
        f"{BASE}/{created['id']}/pause", json={"reason": "maintenance"}, headers=headers
    )
    assert r.status_code == 200 and r.json()["state"] == "paused"
    assert r.json()["paused_reason"] == "maintenance"
    await _ingest(dapp, 0, 4)
    await anyio.sleep(0.3)
    assert receiver.requests == []
    r = await dapp.client.post(f"{BASE}/{created['id']}/resume", headers=headers)
    assert r.status_code == 200
    await _until(dapp, created["id"], lambda s: s["cursor"] == 4)
    assert len(log.events()) == 4


async def test_secret_rotation_signs_with_both_until_dropped(
    dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]
) -> None:
    receiver, log = webhook
    created = (await _create(dapp, receiver.url)).json()
    old = created["secret"]
    log.secret = old
    await _ingest(dapp, 0, 2)
    await _until(dapp, created["id"], lambda s: s["cursor"] == 2)
    headers = dapp.auth("acme_admin")
    r = await dapp.client.post(f"{BASE}/{created['id']}/rotate-secret", headers=headers)
    new = r.json()["secret"]
    assert new != old and r.json()["secrets"] == 2
    # receivers holding either secret verify the next batches
    old_log = WebhookLog(secret=old)
    new_log = WebhookLog(secret=new)
    receiver.handle = lambda req: (old_log.handle(req), new_log.handle(req))[1]
    await _ingest(dapp, 2, 2)
    await _until(dapp, created["id"], lambda s: s["cursor"] == 4)
    assert len(old_log.events()) == 2 and len(new_log.events()) == 2
    assert not old_log.rejected and not new_log.rejected
    r = await dapp.client.post(
        f"{BASE}/{created['id']}/rotate-secret", json={"keep_previous": False}, headers=headers
    )
    assert r.status_code == 200 and r.json()["secrets"] == 1 and "secret" not in r.json()
    await _ingest(dapp, 4, 1)
    await _until(dapp, created["id"], lambda s: s["cursor"] == 5)
    assert old_log.rejected and len(new_log.events()) == 3


async def test_splunk_hec(dapp: App) -> None:
    token = "3c1b6f7e-0d6a-4a51-9c7e-8b0f2d4e5a61"
    received: list[dict[str, Any]] = []

    def hec(req: Received) -> tuple[int, dict[str, str], bytes]:
        received.extend(hec_check(token, req))
        return 200, {"Content-Type": "application/json"}, b'{"text":"Success","code":0}'

    receiver = HTTPReceiver(hec)
    receiver.start()
    try:
        body = {
            "name": "splunk",
            "kind": "splunk_hec",
            "config": {"url": receiver.url, "index": "audit", "sourcetype": "auditkeep:event"},
            "secret": token,
        }
        r = await dapp.client.post(BASE, json=body, headers=dapp.auth("acme_admin"))
        assert r.status_code == 201, r.text
        assert "secret" not in r.json() and token not in r.text
        await _ingest(dapp, 0, 12)
        await _until(dapp, r.json()["id"], lambda s: s["cursor"] == 12)
    finally:
        receiver.stop()
    assert [i["event"]["seq"] for i in received] == list(range(1, 13))
    first = received[0]
    assert first["index"] == "audit" and first["sourcetype"] == "auditkeep:event"
    assert first["fields"] == {
        "tenant": "acme",
        "action": "user.login",
        "outcome": "success",
        "seq": 1,
    }
    assert first["time"] == 1795428000.0  # 2026-11-23T10:00:00Z


async def test_splunk_error_answers_are_failures(dapp: App) -> None:
    receiver = HTTPReceiver(lambda req: (200, {}, b'{"text":"Invalid token","code":4}'))
    receiver.start()
    try:
        body = {"name": "s", "kind": "splunk_hec", "config": {"url": receiver.url}, "secret": "tok"}
        r = await dapp.client.post(BASE, json=body, headers=dapp.auth("acme_admin"))
        await _ingest(dapp, 0, 1)
        status = await _until(dapp, r.json()["id"], lambda s: s["attempts"] >= 1)
        assert "Invalid token" in status["last_error"] and status["cursor"] == 0
    finally:
        receiver.stop()


async def test_metrics_show_lag_and_attempts(
    dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]
) -> None:
    receiver, log = webhook
    created = (await _create(dapp, receiver.url)).json()
    log.secret = created["secret"]
    await _ingest(dapp, 0, 3)
    await _until(dapp, created["id"], lambda s: s["cursor"] == 3)
    text = (await dapp.client.get("/metrics")).text
    labels = {"tenant": "acme", "destination": created["id"], "kind": "webhook"}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **extra: str) -> float:
        return samples[(name, tuple(sorted({**labels, **extra}.items())))]

    assert value("auditkeep_delivery_lag_events") == 0
    assert value("auditkeep_delivery_lag_seconds") == 0
    assert value("auditkeep_delivery_paused") == 0
    assert value("auditkeep_delivery_events_total") == 3
    assert value("auditkeep_delivery_attempts_total", result="success") >= 1


def _series(text: str) -> list[dict[str, str]]:
    """The labels of every delivery sample that names a destination."""
    return [
        s.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "destination" in s.labels
    ]


async def test_metrics_drop_the_series_of_a_deleted_destination(
    dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]
) -> None:
    """The attack: /metrics keeps naming a customer's destination (and tenant) after it is
    deleted, for as long as the process runs."""
    receiver, log = webhook
    created = (await _create(dapp, receiver.url)).json()
    log.secret = created["secret"]
    await _ingest(dapp, 0, 3)
    await _until(dapp, created["id"], lambda s: s["cursor"] == 3)
    before = _series((await dapp.client.get("/metrics")).text)
    assert {s["destination"] for s in before} == {created["id"]}
    assert {s["tenant"] for s in before} == {"acme"}  # (metrics_tenant_label: slug)
    r = await dapp.client.delete(f"{BASE}/{created['id']}", headers=dapp.auth("acme_admin"))
    assert r.status_code == 204
    text = (await dapp.client.get("/metrics")).text
    assert created["id"] not in text and _series(text) == []
    assert "auditkeep_delivery_batch_seconds" in text  # (by kind only: kept)


@pytest.mark.parametrize(("how", "expected"), [("id", "tenant id"), ("none", "")])
async def test_metrics_need_not_name_tenants(
    tmp_path: Path, webhook: tuple[HTTPReceiver, WebhookLog], how: str, expected: str
) -> None:
    receiver, log = webhook
    core = make_core(tmp_path / "data", metrics_tenant_label=how, **FAST_DELIVERY)
    core.start()
    try:
        transport = httpx.ASGITransport(app=create_app(core, manage_core=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            app = App(core, client)
            app.keys["acme"] = _key(core, "acme", {"events:write", "events:read"})
            app.keys["acme_admin"] = _key(core, "acme", {"admin"})
            created = (await _create(app, receiver.url)).json()
            log.secret = created["secret"]
            await _ingest(app, 0, 2)
            await _until(app, created["id"], lambda s: s["cursor"] == 2)
            text = (await client.get("/metrics")).text
            series = _series(text)
            assert series and all(s["destination"] == created["id"] for s in series)
            label = str(core.tenant("acme").tenant_id) if expected else ""
            assert {s["tenant"] for s in series} == {label}
            assert "acme" not in text
    finally:
        core.close()


# -- management and bad input ------------------------------------------------------------------


async def test_list_update_delete(dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]) -> None:
    receiver, _ = webhook
    headers = dapp.auth("acme_admin")
    created = (await _create(dapp, receiver.url)).json()
    listed = (await dapp.client.get(BASE, headers=headers)).json()["data"]
    assert [d["id"] for d in listed] == [created["id"]]
    r = await dapp.client.patch(
        f"{BASE}/{created['id']}",
        json={"name": "renamed", "config": {"url": receiver.url + "/hooks"}},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert r.json()["config"] == {"url": receiver.url + "/hooks"}
    assert (await dapp.client.delete(f"{BASE}/{created['id']}", headers=headers)).status_code == 204
    assert (await dapp.client.get(f"{BASE}/{created['id']}", headers=headers)).status_code == 404
    # the operator key manages any tenant
    r = await _create(dapp, receiver.url, key="operator")
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"name": "x", "kind": "ftp", "config": {}}, 422, "unknown destination kind"),
        ({"name": "x", "kind": "webhook", "config": {}}, 422, "config.url: required"),
        ({"name": "x", "kind": "webhook", "config": {"url": 7}}, 422, "must be a string"),
        (
            {"name": "x", "kind": "webhook", "config": {"url": "http://127.0.0.1:1", "x": 1}},
            422,
            "config.x: unknown field",
        ),
        ({"name": "x", "kind": "webhook", "config": {"url": "ftp://h"}}, 422, "http://"),
        (
            {"name": "x", "kind": "webhook", "config": {"url": "http://u:p@127.0.0.1:1"}},
            422,
            "credentials",
        ),
        ({"name": "", "kind": "webhook", "config": {"url": "http://127.0.0.1:1"}}, 422, "name"),
        ({"name": "x", "kind": "webhook", "config": []}, 422, "JSON object"),
        ({"name": "x", "kind": "webhook"}, 400, "missing field(s): config"),
        ({"name": "x", "kind": "webhook", "config": {}, "colour": 1}, 400, "unknown field"),
        (
            {
                "name": "x",
                "kind": "webhook",
                "config": {"url": "http://127.0.0.1:1"},
                "secret": "whsec_short",
            },
            422,
            "secret",
        ),
        (
            {"name": "x", "kind": "splunk_hec", "config": {"url": "http://127.0.0.1:1"}},
            422,
            "HEC token",
        ),
        (
            {
                "name": "x",
                "kind": "webhook",
                "config": {"url": "http://127.0.0.1:1"},
                "start": "yesterday",
            },
            422,
            "start",
        ),
    ],
)
async def test_bad_input_is_a_clear_problem(
    dapp: App, body: dict[str, Any], status: int, needle: str
) -> None:
    r = await dapp.client.post(BASE, json=body, headers=dapp.auth("acme_admin"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"], r.json()
    assert dapp.core.store.destinations(1).list() == [] or all(
        d.name != "x" for d in dapp.core.store.destinations(1).list()
    )


async def test_malformed_bodies(dapp: App) -> None:
    headers = {**dapp.auth("acme_admin"), "Content-Type": "application/json"}
    r = await dapp.client.post(BASE, content=b"{nope", headers=headers)
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = await dapp.client.post(BASE, content=b'{"name": "\xff"}', headers=headers)
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
    r = await dapp.client.post(BASE, content=b"[" * 2000 + b"]" * 2000, headers=headers)
    assert r.status_code == 400
    r = await dapp.client.post(BASE, content=b"x" * 70_000, headers=headers)
    assert r.status_code == 413
    r = await dapp.client.post(BASE, content=b"{}", headers=dapp.auth("acme_admin"))
    assert r.status_code == 415


async def test_duplicate_name_is_a_conflict(
    dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]
) -> None:
    receiver, _ = webhook
    assert (await _create(dapp, receiver.url)).status_code == 201
    r = await _create(dapp, receiver.url)
    assert r.status_code == 409 and "already exists" in r.json()["detail"]


async def test_private_addresses_are_refused_by_default(app: App) -> None:
    # the default server: no delivery_allow_networks
    r = await app.client.post(
        BASE,
        json={"name": "x", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x"}},
        headers=app.auth("acme_admin"),
    )
    assert r.status_code == 422
    assert "delivery_allow_networks" in r.json()["detail"]
    for host in ("10.1.2.3", "169.254.169.254", "[::1]", "192.168.0.1", "0.0.0.0"):
        r = await app.client.post(
            BASE,
            json={"name": "x", "kind": "webhook", "config": {"url": f"http://{host}/"}},
            headers=app.auth("acme_admin"),
        )
        assert r.status_code == 422, host


def test_netguard_rules() -> None:
    import ipaddress

    g = NetGuard()
    assert g.permitted(ipaddress.ip_address("93.184.216.34"))
    assert g.permitted(ipaddress.ip_address("2606:2800:220:1::1"))
    assert g.permitted(ipaddress.ip_address("::ffff:93.184.216.34"))
    for a in (
        "127.0.0.1",
        "10.0.0.1",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "240.0.0.1",
        "255.255.255.255",
        "169.254.169.254",
        "64:ff9b::a00:5",
        "64:ff9b:1::1",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "::127.0.0.1",
        "::ffff:0:7f00:1",
        "fec0::1",
        "fc00::1",
        "ff02::1",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    ):
        assert not g.permitted(ipaddress.ip_address(a)), a
    assert NetGuard.from_setting("127.0.0.0/8").permitted(ipaddress.ip_address("127.0.0.9"))
    assert NetGuard.from_setting("*").permitted(ipaddress.ip_address("10.0.0.1"))
    with pytest.raises(ValueError, match="CIDR"):
        NetGuard.from_setting("not-a-net")


async def test_scopes_and_tenant_isolation(
    dapp: App, webhook: tuple[HTTPReceiver, WebhookLog]
) -> None:
    receiver, _ = webhook
    created = (await _create(dapp, receiver.url)).json()
    # a read/write key without admin cannot manage destinations
    r = await dapp.client.get(BASE, headers=dapp.auth("acme"))
    assert r.status_code == 404  # may not manage acme: it looks absent
    # another tenant's admin neither sees nor touches acme's destinations
    for method, path in [
        ("GET", BASE),
        ("GET", f"{BASE}/{created['id']}"),
        ("POST", f"{BASE}/{created['id']}/pause"),
        ("DELETE", f"{BASE}/{created['id']}"),
    ]:
        r = await dapp.client.request(method, path, headers=dapp.auth("globex_admin"))
        assert r.status_code == 404, (method, path)
    # nor by naming the id under its own tenant
    r = await dapp.client.get(
        f"/v1/tenants/globex/destinations/{created['id']}", headers=dapp.auth("globex_admin")
    )
    assert r.status_code == 404
    r = await dapp.client.get(BASE, headers={"Authorization": "Bearer ak_nope_nope"})
    assert r.status_code == 401
    assert (await _status(dapp, created["id"]))["state"] == "active"


async def test_secrets_never_reach_logs(dapp: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = "super-secret-hec-token-value"
    down = HTTPReceiver(lambda req: (500, {}, b"no"))
    down.start()
    try:
        body = {"name": "s", "kind": "splunk_hec", "config": {"url": down.url}, "secret": token}
        r = await dapp.client.post(BASE, json=body, headers=dapp.auth("acme_admin"))
        await _ingest(dapp, 0, 1)
        await _until(dapp, r.json()["id"], lambda s: s["attempts"] >= 2)
    finally:
        down.stop()
    assert token not in caplog.text
    assert "delivery to" in caplog.text  # the failures were logged, without the token


def test_one_dispatcher_at_a_time_holds_a_destination(tmp_path: Path) -> None:
    core = make_core(tmp_path / "d", delivery_allow_networks="127.0.0.0/8")
    try:
        tenant = core.create_tenant("acme")
        created = core.destinations.create(
            tenant, {"name": "w", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/"}}
        )
        dests = core.store.destinations(tenant.tenant_id)
        assert dests.claim(created["id"], "node-a", 100, 200)
        assert dests.claim(created["id"], "node-a", 150, 250)  # renewed by its holder
        assert not dests.claim(created["id"], "node-b", 200, 300)  # held
        assert dests.claim(created["id"], "node-b", 251, 400)  # expired: taken over
        assert not dests.claim(created["id"], "node-a", 300, 500)
        assert not core.store.destinations(99).claim(created["id"], "node-a", 900, 999)
        # the node that lost the lease can no longer move the destination
        assert not dests.advance(created["id"], 0, 5, 300, held_by="node-a")
        assert dests.update(created["id"], held_by="node-a", attempts=9) is None
        assert dests.advance(created["id"], 0, 5, 300, held_by="node-b")
        assert dests.get(created["id"]).cursor == 5  # type: ignore[union-attr]
    finally:
        core.close()


async def test_a_pasted_token_with_a_newline_is_refused(dapp: App) -> None:
    body = {
        "name": "s",
        "kind": "splunk_hec",
        "config": {"url": "http://127.0.0.1:9"},
        "secret": "0f1e2d3c-token\n",
    }
    r = await dapp.client.post(BASE, json=body, headers=dapp.auth("acme_admin"))
    assert r.status_code == 422 and "line breaks" in r.json()["detail"]
    assert "0f1e2d3c" not in r.text


async def test_huge_answers_are_read_only_in_part(dapp: App) -> None:
    answers = iter([(500, {}, b"x" * 5_000_000)])
    log = WebhookLog(secret="")

    def handle(req: Received) -> tuple[int, dict[str, str], bytes]:
        return next(answers, None) or log.handle(req)

    receiver = HTTPReceiver(handle)
    receiver.start()
    try:
        created = (await _create(dapp, receiver.url)).json()
        log.secret = created["secret"]
        await _ingest(dapp, 0, 2)
        status = await _until(dapp, created["id"], lambda s: s["cursor"] == 2)
        assert status["attempts"] == 0 and len(log.events()) == 2
    finally:
        receiver.stop()


def test_the_delivery_key_exists_once_the_server_started(tmp_path: Path) -> None:
    core = make_core(tmp_path / "d")
    core.start()
    try:
        key = tmp_path / "d" / "keys" / "delivery.key"
        assert key.exists() and len(key.read_bytes()) == 32
        assert key.stat().st_mode & 0o777 == 0o600
    finally:
        core.close()
