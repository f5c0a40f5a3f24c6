"""The client and its sender against real loopback HTTP peers speaking the ingest contract."""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditkeep_client import AuditKeep, ClientClosed, EventValidationError, OutboxFull, context
from auditkeep_client.sender import RetryPolicy, parse_retry_after
from tests.sdk._support import FakeAuditServer, Scripted, free_port
from tests.sdk.conftest import ev_kwargs

MakeClient = Callable[..., AuditKeep]


def test_log_validates_at_the_call_site(
    make_client: MakeClient, fake_server: FakeAuditServer
) -> None:
    client = make_client(fake_server.url)
    with pytest.raises(EventValidationError) as info:
        client.log("Bad Action", actor={"id": "u1"}, targets=[{"id": "x"}], category="nope")
    paths = {e.path for e in info.value.errors}
    assert {"action", "targets[0].type", "category"} <= paths
    with pytest.raises(EventValidationError, match="actor"):
        client.log("user.login")
    with pytest.raises(EventValidationError, match="timezone"):
        client.log("user.login", actor="u1", occurred_at=datetime(2026, 1, 1))
    assert client.outbox_stats().pending == 0


def test_log_returns_id_and_event_arrives(
    make_client: MakeClient, fake_server: FakeAuditServer
) -> None:
    client = make_client(fake_server.url)
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    eid = client.log(
        "document.deleted",
        actor="user_1",
        targets=[{"id": "doc_9", "type": "document", "name": "Plan"}],
        outcome="failure",
        reason="locked",
        context={"ip": "198.51.100.7"},
        metadata={"size": 3},
        category="audit",
        occurred_at=when,
    )
    assert len(eid) == 36 and eid[14] == "7"  # a UUIDv7
    assert client.log("user.login", actor="u2", id="my-own-id") == "my-own-id"
    assert client.flush(10)
    stored = {e["id"]: e for e in fake_server.events()}
    ev = stored[eid]
    assert ev["actor"] == {"id": "user_1", "type": "user"}
    assert ev["targets"][0]["name"] == "Plan"
    assert ev["outcome"] == "failure" and ev["reason"] == "locked"
    assert ev["occurred_at"] == "2026-03-01T12:00:00.000000Z"
    assert ev["context"] == {"ip": "198.51.100.7"}
    assert "my-own-id" in stored
    assert client.outbox_stats().pending == 0
    st = client.status()
    assert st.delivered == 2 and st.state in ("idle", "sending")


def test_batches_respect_size_limits(make_client: MakeClient, fake_server: FakeAuditServer) -> None:
    client = make_client(fake_server.url, start_sender=False, batch_size=100, batch_bytes=20_000)
    for i in range(450):
        client.log("user.login", **ev_kwargs(i))
    client.start()
    assert client.flush(15)
    assert len(fake_server.stored) == 450
    sizes = [len(r.ids) for r in fake_server.requests]
    assert max(sizes) <= 100 and sum(sizes) == 450
    # every event body is ~200 bytes, so 20 kB batches hold fewer than 100 events
    assert len(sizes) > 5


def test_context_is_merged(make_client: MakeClient, fake_server: FakeAuditServer) -> None:
    client = make_client(fake_server.url)
    with context.scope(ip="203.0.113.5", request_id="req-1", user_agent="ua/1"):
        context.bind(actor={"id": "alice", "type": "user"}, session_id="s1")
        a = client.log("user.login")
        b = client.log("user.logout", actor="bob", context={"request_id": "req-2"})
    assert context.current() is None
    assert client.flush(10)
    stored = {e["id"]: e for e in fake_server.events()}
    assert stored[a]["actor"]["id"] == "alice"
    assert stored[a]["context"] == {
        "ip": "203.0.113.5",
        "request_id": "req-1",
        "user_agent": "ua/1",
        "session_id": "s1",
    }
    assert stored[b]["actor"]["id"] == "bob"
    assert stored[b]["context"]["request_id"] == "req-2"


def test_failover_to_the_second_endpoint(
    make_client: MakeClient, fake_server: FakeAuditServer
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = make_client([dead, fake_server.url], failback_after=3600)
    ids = [client.log("user.login", **ev_kwargs(i)) for i in range(20)]
    assert client.flush(10)
    assert set(ids) == set(fake_server.stored)
    assert client.status().endpoint == fake_server.url


def test_failback_to_the_primary_without_duplicates(
    make_client: MakeClient, fake_server: FakeAuditServer
) -> None:
    primary = FakeAuditServer(port=free_port())
    client = make_client([primary.url, fake_server.url], failback_after=0.2)
    first = [client.log("user.login", **ev_kwargs(i)) for i in range(10)]
    assert client.flush(10)
    primary.start()
    try:
        time.sleep(0.3)
        second = [client.log("user.login", **ev_kwargs(i)) for i in range(10, 20)]
        assert client.flush(10)
        assert set(first) <= set(fake_server.stored)
        assert set(second) <= set(primary.stored)
        assert not set(primary.stored) & set(fake_server.stored)
    finally:
        primary.stop()


def test_429_retry_after_is_honoured(make_client: MakeClient, fake_server: FakeAuditServer) -> None:
    fake_server.script.append(Scripted(429, {"Retry-After": "1"}))
    client = make_client(fake_server.url)
    eid = client.log("user.login", actor="u1")
    assert client.flush(10)
    first, second = fake_server.requests[0], fake_server.requests[1]
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95
    assert eid in fake_server.stored


def test_503_fails_over_then_honours_retry_after(make_client: MakeClient) -> None:
    a, b = FakeAuditServer(), FakeAuditServer()
    a.start()
    b.start()
    try:
        a.script.append(Scripted(503, {"Retry-After": "1"}))
        b.script.append(Scripted(503, {"Retry-After": "1"}))
        client = make_client([a.url, b.url])
        eid = client.log("user.login", actor="u1")
        assert client.flush(10)
        assert a.requests[0].status == 503 and b.requests[0].status == 503
        retry = max(a.requests + b.requests, key=lambda r: r.at)
        assert retry.status == 200 and retry.at - b.requests[0].at >= 0.95
        assert eid in a.stored or eid in b.stored
    finally:
        a.stop()
        b.stop()


def test_5xx_and_dropped_connections_retry_without_duplicates(
    make_client: MakeClient, fake_server: FakeAuditServer
) -> None:
    fake_server.script += [Scripted(500), Scripted(0, drop=True), Scripted(502)]
    client = make_client(fake_server.url)
    ids = [client.log("user.login", **ev_kwargs(i)) for i in range(30)]
    assert client.flush(10)
    assert sorted(ids) == sorted(fake_server.stored)
    assert client.status().consecutive_failures == 0


def test_401_is_a_configuration_error_not_a_dead_letter(
    make_client: MakeClient, fake_server: FakeAuditServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="auditkeep_client")
    client = make_client(fake_server.url, api_key="wrong-key-abc123")
    ids = [client.log("user.login", **ev_kwargs(i)) for i in range(5)]
    assert client.flush(0.5) is False
    st = client.status()
    assert st.state == "config_error" and st.config_error and "401" in st.config_error
    assert client.config_error is not None
    stats = client.outbox_stats()
    assert stats.pending == 5 and stats.dead == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "configuration" in errors[0].getMessage()
    assert all("wrong-key-abc123" not in r.getMessage() for r in caplog.records)
    client.set_api_key("test-key")
    assert client.flush(10)
    assert set(ids) == set(fake_server.stored)
    assert client.config_error is None and client.status().state != "config_error"


def test_403_also_keeps_events(make_client: MakeClient, fake_server: FakeAuditServer) -> None:
    fake_server.script += [Scripted(403)] * 3
    client = make_client(fake_server.url)
    eid = client.log("user.login", actor="u1")
    assert client.flush(10)
    assert eid in fake_server.stored and client.outbox_stats().dead == 0


def test_413_splits_the_batch(make_client: MakeClient) -> None:
    server = FakeAuditServer(max_events_per_request=7)
    server.start()
    try:
        client = make_client(server.url, start_sender=False)
        ids = [client.log("user.login", **ev_kwargs(i)) for i in range(40)]
        client.start()
        assert client.flush(10)
        assert sorted(ids) == sorted(server.stored)
        assert any(r.status == 413 for r in server.requests)
        assert client.outbox_stats().dead == 0
    finally:
        server.stop()


def test_rejected_event_is_dead_lettered_while_the_rest_flow(
    make_client: MakeClient, fake_server: FakeAuditServer
) -> None:
    client = make_client(fake_server.url, start_sender=False)
    ids = [client.log("user.login", **ev_kwargs(i)) for i in range(10)]
    fake_server.reject_ids.add(ids[3])
    client.start()
    assert client.flush(10)
    assert set(fake_server.stored) == set(ids) - {ids[3]}
    stats = client.outbox_stats()
    assert stats.pending == 0 and stats.dead == 1
    assert client._outbox is not None
    dead = list(client._outbox.dead_letters())
    assert dead[0].id == ids[3] and dead[0].error["detail"] == "scripted rejection"
    assert client.status().dead_lettered == 1


def test_a_whole_request_422_is_bisected_to_the_poison_event(
    make_client: MakeClient, fake_server: FakeAuditServer
) -> None:
    """A 4xx for a whole batch (not 401/403/408/413/429) splits it until the culprit is alone."""
    client = make_client(fake_server.url, start_sender=False)
    ids = [client.log("user.login", **ev_kwargs(i)) for i in range(8)]
    poison = ids[5]

    def on_request(batch: list[str]) -> None:
        if poison in batch:
            fake_server.script.insert(0, Scripted(422, body={"title": "Unprocessable"}))

    fake_server.on_request = on_request
    client.start()
    assert client.flush(10)
    assert set(fake_server.stored) == set(ids) - {poison}
    assert client._outbox is not None
    dead = list(client._outbox.dead_letters())
    assert [d.id for d in dead] == [poison] and dead[0].http_status == 422


def test_events_persist_across_clients(make_client: MakeClient, outbox_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    first = make_client(down)
    ids = [first.log("user.login", **ev_kwargs(i)) for i in range(5)]
    assert first.close(timeout=0.3) is False
    server = FakeAuditServer()
    server.start()
    try:
        # The sender starts only after the count, which a running sender could change.
        second = make_client(server.url, start_sender=False)
        assert second.outbox_stats().pending == 5
        second.start()
        # flush() waits for what is pending, although this client logged nothing itself
        assert second.flush(10) is True
        assert sorted(server.stored) == sorted(ids)
        assert second.outbox_stats().pending == 0
    finally:
        server.stop()
    with pytest.raises(ClientClosed):
        first.log("user.login", actor="u1")


def test_flush_of_a_fresh_client_drains_older_events(
    make_client: MakeClient, outbox_path: Path
) -> None:
    """A process opened only to drain an outbox (cron job, deploy hook): flush, then close."""
    first = make_client(f"http://127.0.0.1:{free_port()}")
    ids = [first.log("user.login", **ev_kwargs(i)) for i in range(20)]
    assert first.close(timeout=0.2) is False
    server = FakeAuditServer()
    server.start()
    try:
        drainer = make_client(server.url)
        assert drainer.flush(10) is True
        assert sorted(server.stored) == sorted(ids)
        assert drainer.close(5) is True
    finally:
        server.stop()


def test_a_client_closed_mid_request_gives_its_leases_back(
    make_client: MakeClient, outbox_path: Path
) -> None:
    """close() while the sender waits on a server that never answers: the rows it leased are
    released, so the next client of the outbox sends them now, not after lease_seconds."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections are accepted by the kernel and never answered
    try:
        first = make_client(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=30.0)
        ids = [first.log("user.login", **ev_kwargs(i)) for i in range(5)]
        deadline = time.monotonic() + 10
        while first.outbox_stats().leased == 0:  # the sender has taken them and is waiting
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert first.close(timeout=0.2) is False
        server = FakeAuditServer()
        server.start()
        try:
            drainer = make_client(server.url)
            assert drainer.flush(10) is True  # leases last 60 s: only a release makes this
            assert sorted(server.stored) == sorted(ids)
        finally:
            server.stop()
    finally:
        silent.close()


def test_flush_times_out_while_no_sender_runs(
    make_client: MakeClient, fake_server: FakeAuditServer
) -> None:
    client = make_client(fake_server.url, start_sender=False)
    client.log("user.login", **ev_kwargs(0))
    # nothing can be delivered (no sender): flush gives up after its timeout, saying so
    assert client.flush(0.2) is False
    client.start()
    assert client.flush(10) is True
    assert client.flush(0) is True  # nothing pending: at once


def test_context_manager_closes(fake_server: FakeAuditServer, outbox_path: Path) -> None:
    with AuditKeep("test-key", endpoints=fake_server.url, outbox=outbox_path) as client:
        eid = client.log("user.login", actor="u1")
    assert client.closed and eid in fake_server.stored


def test_configuration_errors_at_construction(outbox_path: Path) -> None:
    with pytest.raises(ValueError, match="API key"):
        AuditKeep(None, endpoints="http://127.0.0.1:1", outbox=outbox_path)
    with pytest.raises(ValueError, match="endpoint"):
        AuditKeep("k", endpoints=[], outbox=outbox_path)
    with pytest.raises(ValueError, match="http"):
        AuditKeep("k", endpoints="127.0.0.1:1", outbox=outbox_path)
    with pytest.raises(ValueError, match="on_full"):
        AuditKeep("k", endpoints="http://x", outbox=outbox_path, on_full="drop")  # type: ignore[arg-type]


def test_backoff_is_full_jitter_and_capped() -> None:
    random.seed(1)
    policy = RetryPolicy(base=0.5, cap=4.0)
    samples = [policy.delay(a) for a in range(1, 12) for _ in range(50)]
    assert all(0 <= s <= 4.0 for s in samples)
    assert max(policy.delay(1) for _ in range(200)) <= 1.0
    assert max(samples) > 3.0  # reaches the cap region
    assert min(samples) < 0.1  # full jitter goes down to zero


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = datetime.now(UTC).timestamp() + 30
    from email.utils import formatdate

    assert 25 < (parse_retry_after(formatdate(later, usegmt=True)) or 0) <= 30


def test_on_full_block_waits_for_the_sender_to_make_room(make_client: MakeClient) -> None:
    server = FakeAuditServer(delay=0.05)
    server.start()
    try:
        client = make_client(
            server.url, max_pending_events=5, on_full="block", full_timeout=10, batch_size=5
        )
        start = time.monotonic()
        ids = [client.log("user.login", **ev_kwargs(i)) for i in range(30)]
        assert time.monotonic() - start > 0.1  # some log() calls had to wait
        assert client.flush(10)
        assert sorted(ids) == sorted(server.stored)
    finally:
        server.stop()


def test_on_full_raise_with_a_stalled_server(make_client: MakeClient) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    client = make_client(down, max_pending_events=3)
    for i in range(3):
        client.log("user.login", **ev_kwargs(i))
    with pytest.raises(OutboxFull):
        client.log("user.login", **ev_kwargs(3))
    assert client.outbox_stats().pending == 3


def test_cli_refuses_to_purge_everything_without_yes(outbox_path: Path) -> None:
    import io

    from auditkeep_client.cli import main as cli_main
    from auditkeep_client.outbox import Outbox

    ob = Outbox(outbox_path)
    ob.append("e1", b'{"id":"e1"}')
    rows = ob.claim("A", limit=1, max_bytes=1 << 20, lease_seconds=5)
    ob.settle([], [(rows[0].seq, 200, {"result": "rejected"})])
    ob.close()
    out = io.StringIO()
    assert cli_main(["outbox", "purge-dead", "--outbox", str(outbox_path)], out) == 2
    assert "--yes" in out.getvalue()
    out = io.StringIO()
    assert cli_main(["outbox", "status", "--outbox", str(outbox_path), "--json"], out) == 0
    assert '"dead": 1' in out.getvalue()
    with pytest.raises(SystemExit):
        cli_main(["outbox", "status", "--outbox", str(outbox_path) + ".missing"])
