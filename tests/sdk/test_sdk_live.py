"""The SDK against real `auditkeep serve` processes (the live_server fixture) on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from flask import Flask
from flask import request as flask_request

from auditkeep_client import REDACTED, AuditKeep, context
from auditkeep_client.cli import main as cli_main
from auditkeep_client.middleware import AuditKeepASGIMiddleware, instrument_flask
from tests.conftest import LiveServer
from tests.sdk._support import FaultProxy, Scripted, free_port
from tests.sdk.conftest import FAST, ev_kwargs

pytestmark = pytest.mark.timeout(120)


def client_for(
    server: LiveServer | str | list[str], outbox: Path, key: str, **options: Any
) -> AuditKeep:
    if isinstance(server, list):
        endpoints = server
    else:
        endpoints = [server] if isinstance(server, str) else [server.url]
    return AuditKeep(key, endpoints=endpoints, outbox=outbox, **{**FAST, **options})


def stored_ids(server: LiveServer) -> list[str]:
    return [e["id"] for e in server.events()]


def test_roundtrip(live_server: LiveServer, outbox_path: Path) -> None:
    with client_for(live_server, outbox_path, live_server.write_key) as client:
        eid = client.log(
            "document.shared",
            actor={"id": "user_1", "type": "user", "name": "Ada"},
            targets=[{"id": "doc_1", "type": "document"}],
            context={"ip": "203.0.113.9"},
            metadata={"via": "link", "password": "hunter2"},
        )
        assert client.flush(15)
    events = live_server.events()
    assert [e["id"] for e in events] == [eid]
    ev = events[0]
    assert ev["action"] == "document.shared" and ev["actor"]["name"] == "Ada"
    assert ev["metadata"] == {"via": "link", "password": REDACTED}


def test_server_killed_mid_stream_every_event_arrives_once(
    live_server: LiveServer, outbox_path: Path
) -> None:
    client = client_for(live_server, outbox_path, live_server.write_key, batch_size=50)
    logged: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set() and i < 4000:
            logged.append(client.log("user.login", **ev_kwargs(i)))
            i += 1
            if i % 50 == 0:
                time.sleep(0.005)

    t = threading.Thread(target=produce)
    t.start()
    for _ in range(2):
        time.sleep(0.4)
        live_server.kill()  # SIGKILL, mid-stream
        time.sleep(0.3)
        live_server.start()
    stop.set()
    t.join()
    assert client.flush(60), client.status()
    ids = stored_ids(live_server)
    counts = Counter(ids)
    assert len(logged) > 100
    assert set(ids) == set(logged)
    assert max(counts.values()) == 1  # exactly once
    client.close(5)


CLIENT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from auditkeep_client import AuditKeep
    url, key, outbox, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = AuditKeep(key, endpoints=[url], outbox=outbox, poll_interval=0.05)
    ids = [c.log("user.login", actor={"id": f"u{i}"}, metadata={"i": i}) for i in range(n)]
    sys.stdout.write(" ".join(ids) + "\\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # right after log() returned
    """
)


def test_client_killed_after_log_a_new_process_delivers(
    live_server: LiveServer, outbox_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing delivered before the kill
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT, down, live_server.write_key, str(outbox_path), "300"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ids = proc.stdout.split()
    assert len(ids) == 300
    # A second victim: pointed at the live server, killed while its sender may be mid-batch.
    proc2 = subprocess.run(
        [
            sys.executable,
            "-c",
            CLIENT_SCRIPT,
            live_server.url,
            live_server.write_key,
            str(outbox_path),
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc2.returncode == -signal.SIGKILL, proc2.stderr
    ids += proc2.stdout.split()
    with client_for(live_server, outbox_path, live_server.write_key) as client:
        assert client.outbox_stats().pending > 0
        deadline = time.monotonic() + 30
        while client.outbox_stats().pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.outbox_stats().pending == 0
    got = stored_ids(live_server)
    assert sorted(got) == sorted(ids)


def test_failover_and_failback_without_duplicates(
    live_server: LiveServer, outbox_path: Path
) -> None:
    proxy = FaultProxy(live_server.url)  # the first endpoint: down until started
    client = client_for(
        [proxy.url, live_server.url], outbox_path, live_server.write_key, failback_after=0.3
    )
    first = [client.log("user.login", **ev_kwargs(i)) for i in range(100)]
    assert client.flush(15)
    assert client.status().endpoint == live_server.url
    proxy.start()
    try:
        time.sleep(0.4)
        second = [client.log("user.login", **ev_kwargs(i)) for i in range(100, 200)]
        assert client.flush(15)
        assert proxy.accepted > 0  # the first endpoint is used again
        assert proxy.duplicates == 0
        assert client.status().duplicates == 0
    finally:
        proxy.stop()
        client.close(5)
    ids = stored_ids(live_server)
    assert sorted(ids) == sorted(first + second)


def test_429_retry_after_and_poison_event_to_dead_letter(
    live_server: LiveServer, outbox_path: Path
) -> None:
    proxy = FaultProxy(live_server.url)
    proxy.script.append(Scripted(429, {"Retry-After": "1"}, {"title": "Too Many Requests"}))
    proxy.start()
    try:
        # The poison: an id the server already holds with other content (a conflict).
        seed = AuditKeep(testing=True).prepare("user.login", actor="someone", id="poison-1")
        r = httpx.post(
            live_server.url + "/v1/events",
            json={"events": [seed]},
            headers={"Authorization": f"Bearer {live_server.write_key}"},
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1
        client = client_for(proxy.url, outbox_path, live_server.write_key, start_sender=False)
        good = [client.log("user.login", **ev_kwargs(i)) for i in range(20)]
        client.log("user.login", actor="someone-else", id="poison-1")
        good += [client.log("user.login", **ev_kwargs(i)) for i in range(20, 40)]
        client.start()
        assert client.flush(20)
        first, second = proxy.requests[0], proxy.requests[1]
        assert first.status == 429 and second.status == 200
        assert second.at - first.at >= 0.95
        stats = client.outbox_stats()
        assert stats.pending == 0 and stats.dead == 1
        assert client._outbox is not None
        dead = list(client._outbox.dead_letters())
        assert dead[0].id == "poison-1" and dead[0].event()["actor"]["id"] == "someone-else"
        assert dead[0].error["result"] == "rejected" and dead[0].error["status"] == 409
        assert "different content" in dead[0].error["detail"]
        client.close(5)
    finally:
        proxy.stop()
    ids = stored_ids(live_server)
    assert sorted(ids) == sorted([*good, "poison-1"])
    stored_poison = next(e for e in live_server.events() if e["id"] == "poison-1")
    assert stored_poison["actor"]["id"] == "someone"


SECRETS = ("hunter2-pw", "sekrit-bearer-token", "cookie-val-99", "apikey-xyz")


def _framework_apps(client: AuditKeep) -> tuple[Any, Any]:
    api = FastAPI()

    @api.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        body = await request.json()
        ok = body.get("password") == "right"
        context.bind(actor={"id": body.get("user", "?"), "type": "user"})
        client.log("user.login", outcome="success" if ok else "failure")
        return {"ok": ok}

    api.add_middleware(AuditKeepASGIMiddleware, client=client)

    web = Flask("flask-under-test")

    @web.post("/session")
    def session() -> dict[str, bool]:
        body = flask_request.get_json()
        return {"ok": body.get("password") == "right"}

    instrument_flask(web, client)
    return api, web


def test_fastapi_and_flask_against_the_real_server_leave_no_secrets(
    live_server: LiveServer, outbox_path: Path
) -> None:
    client = client_for(live_server, outbox_path, live_server.write_key)
    api, web = _framework_apps(client)
    headers = {
        "Authorization": f"Bearer {SECRETS[1]}",
        "Cookie": f"sid={SECRETS[2]}",
        "X-API-Key": SECRETS[3],
        "X-Request-ID": "req-fastapi-1",
    }
    body = {"user": "ada", "password": SECRETS[0]}

    async def call_fastapi() -> int:
        transport = httpx.ASGITransport(app=api, client=("198.51.100.20", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            resp = await http.post(f"/login?password={SECRETS[0]}&x=1", json=body, headers=headers)
            return resp.status_code

    assert asyncio.run(call_fastapi()) == 200
    flask_headers = {**headers, "X-Request-ID": "req-flask-1"}
    resp = web.test_client().post(
        f"/session?password={SECRETS[0]}&token={SECRETS[1]}",
        json=body,
        headers=flask_headers,
        buffered=True,
    )
    assert resp.status_code == 200
    assert client.flush(15)
    client.close(5)

    events = live_server.events()
    by_action = Counter(e["action"] for e in events)
    assert by_action == {"user.login": 1, "http.request": 2}
    fastapi_access = next(
        e for e in events if e["action"] == "http.request" and e["metadata"]["route"] == "/login"
    )
    assert fastapi_access["category"] == "access"
    assert fastapi_access["actor"]["id"] == "ada"
    assert fastapi_access["context"]["request_id"] == "req-fastapi-1"
    assert fastapi_access["context"]["ip"] == "198.51.100.20"
    assert fastapi_access["metadata"]["query"] == {"password": REDACTED, "x": "1"}
    assert fastapi_access["metadata"]["status"] == 200
    flask_access = next(
        e for e in events if e["action"] == "http.request" and e["metadata"]["route"] == "/session"
    )
    assert flask_access["metadata"]["query"] == {"password": REDACTED, "token": REDACTED}
    assert flask_access["context"]["request_id"] == "req-flask-1"
    login = next(e for e in events if e["action"] == "user.login")
    assert login["outcome"] == "failure" and login["context"]["request_id"] == "req-fastapi-1"

    dump = json.dumps(events)
    for secret in SECRETS:
        assert secret not in dump
    # ... and not in any byte the server or the SDK wrote to disk.
    live_server.stop()
    files = [p for p in live_server.data_dir.rglob("*") if p.is_file()]
    files += [p for p in outbox_path.parent.iterdir() if p.is_file()]
    assert files
    for path in files:
        raw = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in raw, f"{secret} found in {path}"


FORK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from auditkeep_client import AuditKeep
    url, key, outbox = sys.argv[1], sys.argv[2], sys.argv[3]
    c = AuditKeep(key, endpoints=[url], outbox=outbox, poll_interval=0.05, batch_size=20)
    ids = [c.log("user.login", actor={"id": f"parent{i}"}) for i in range(150)]
    children = []
    for k in range(2):  # gunicorn-style: fork workers from a process whose sender runs
        pid = os.fork()
        if pid == 0:
            mine = [c.log("user.login", actor={"id": f"child{k}-{i}"}) for i in range(150)]
            ok = c.flush(30)
            dups = c.status().duplicates
            c.close(30)  # a worker's normal exit: in-flight batches finish, leases are released
            with open(f"{outbox}.child{k}", "w") as f:
                json.dump({"ids": mine, "ok": ok, "dups": dups}, f)
            os._exit(0 if ok else 3)
        children.append(pid)
    ids += [c.log("user.login", actor={"id": f"parent-late{i}"}) for i in range(150)]
    ok = c.flush(30)
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in children]
    print(json.dumps({"ids": ids, "ok": ok, "codes": codes, "dups": c.status().duplicates}))
    c.close(5)
    """
)

SHARED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from auditkeep_client import AuditKeep
    url, key, outbox, tag = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    c = AuditKeep(key, endpoints=[url], outbox=outbox, poll_interval=0.02, batch_size=10)
    ids = [c.log("user.login", actor={"id": f"{tag}-{i}"}) for i in range(400)]
    ok = c.flush(60)
    print(json.dumps({"ids": ids, "ok": ok, "dups": c.status().duplicates}))
    c.close(5)
    """
)


def test_fork_and_processes_sharing_one_outbox_send_nothing_twice(
    live_server: LiveServer, outbox_path: Path
) -> None:
    proxy = FaultProxy(live_server.url)  # counts the server's accepted/duplicate results
    proxy.start()
    try:
        key = live_server.write_key
        fork = subprocess.run(
            [sys.executable, "-c", FORK_SCRIPT, proxy.url, key, str(outbox_path)],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert fork.returncode == 0, fork.stderr
        parent = json.loads(fork.stdout)
        assert parent["ok"] and parent["codes"] == [0, 0], parent
        ids = list(parent["ids"])
        for k in range(2):
            child = json.loads(Path(f"{outbox_path}.child{k}").read_text())
            assert child["ok"]
            ids += child["ids"]

        shared = outbox_path.parent / "shared.sqlite3"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", SHARED_SCRIPT, proxy.url, key, str(shared), f"p{n}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(3)
        ]
        for p in procs:
            out, err = p.communicate(timeout=90)
            assert p.returncode == 0, err
            res = json.loads(out)
            assert res["ok"]
            ids += res["ids"]
    finally:
        proxy.stop()
    assert len(ids) == 600 + 1200
    assert proxy.duplicates == 0, "a row was sent twice"
    assert proxy.accepted == len(ids)
    got = stored_ids(live_server)
    assert sorted(got) == sorted(ids)


def test_revoked_key_keeps_events_until_fixed(live_server: LiveServer, outbox_path: Path) -> None:
    client = client_for(live_server, outbox_path, "ak_not_a_real_key")
    ids = [client.log("user.login", **ev_kwargs(i)) for i in range(10)]
    assert client.flush(1.0) is False
    assert client.status().state == "config_error"
    assert client.outbox_stats().pending == 10 and client.outbox_stats().dead == 0
    client.set_api_key(live_server.write_key)
    assert client.flush(15)
    client.close(5)
    assert sorted(stored_ids(live_server)) == sorted(ids)


def test_dropped_response_after_store_is_not_a_duplicate(
    live_server: LiveServer, outbox_path: Path
) -> None:
    """The server stores a batch but the answer is lost: the retry comes back 'duplicate'."""
    proxy = FaultProxy(live_server.url)
    proxy.drop_after_forward = 1
    proxy.start()
    try:
        client = client_for(proxy.url, outbox_path, live_server.write_key)
        ids = [client.log("user.login", **ev_kwargs(i)) for i in range(25)]
        assert client.flush(15)
        client.close(5)
    finally:
        proxy.stop()
    assert proxy.duplicates >= 1
    got = stored_ids(live_server)
    assert sorted(got) == sorted(ids)


def test_cli_on_a_real_outbox(live_server: LiveServer, outbox_path: Path, tmp_path: Path) -> None:
    proxy = FaultProxy(live_server.url)
    proxy.start()
    try:
        seed = AuditKeep(testing=True).prepare("user.login", actor="a", id="dup-1")
        httpx.post(
            live_server.url + "/v1/events",
            json={"events": [seed]},
            headers={"Authorization": f"Bearer {live_server.write_key}"},
        ).raise_for_status()
        client = client_for(proxy.url, outbox_path, live_server.write_key)
        client.log("user.login", actor="b", id="dup-1")
        assert client.flush(15)
        client.close(5)
    finally:
        proxy.stop()
    # the console script as a user runs it, once; the rest in-process (fast)
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditkeep_client.cli",
            "outbox",
            "status",
            "--outbox",
            str(outbox_path),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert json.loads(status.stdout)["dead"] == 1

    def run(*args: str) -> str:
        out = io.StringIO()
        assert cli_main(["outbox", *args, "--outbox", str(outbox_path)], out) == 0
        return out.getvalue()

    line = json.loads(run("export").splitlines()[0])
    assert line["id"] == "dup-1" and line["event"]["actor"]["id"] == "b"
    assert line["error"]["result"] == "rejected" and line["http_status"] == 200
    exported = tmp_path / "dead.ndjson"
    assert "exported 1" in run("export", "--output", str(exported))
    assert json.loads(exported.read_text())["id"] == "dup-1"
    assert "dead letters        1" in run("status")
    assert "re-queued 1" in run("retry")
    assert json.loads(run("export", "--pending"))["id"] == "dup-1"
    assert "purged 0" in run("purge-dead", "--yes")
    assert os.path.exists(outbox_path)


def test_cli_drain_sends_an_outbox_left_behind(
    live_server: LiveServer, outbox_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    app = client_for(down, outbox_path, live_server.write_key)
    ids = [app.log("user.login", **ev_kwargs(i)) for i in range(30)]
    assert app.close(0.2) is False  # the application stopped with everything pending
    monkeypatch.delenv("AUDITKEEP_API_KEY", raising=False)
    out = io.StringIO()
    assert cli_main(["outbox", "drain", "--outbox", str(outbox_path)], out) == 2
    assert "AUDITKEEP_API_KEY" in out.getvalue()
    # a key the server refuses: exit 1 at once (not after the timeout), events kept
    monkeypatch.setenv("AUDITKEEP_API_KEY", "ak_wrong_wrongwrongwrong")
    out = io.StringIO()
    started = time.monotonic()
    args = ["outbox", "drain", "--outbox", str(outbox_path), "--endpoint", live_server.url]
    assert cli_main([*args, "--timeout", "30"], out) == 1
    assert time.monotonic() - started < 20
    assert "refuses the key" in out.getvalue() and "30 pending" in out.getvalue()
    # the console script as a cron job runs it
    done = subprocess.run(
        [sys.executable, "-m", "auditkeep_client.cli", *args, "--timeout", "30"],
        capture_output=True,
        text=True,
        env={**os.environ, "AUDITKEEP_API_KEY": live_server.write_key},
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sent 30 event(s)" in done.stdout and "0 pending" in done.stdout
    assert sorted(stored_ids(live_server)) == sorted(ids)
