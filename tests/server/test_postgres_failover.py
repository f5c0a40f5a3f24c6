"""Several API nodes over one PostgreSQL, a primary failover under load, and bad database URLs.

Real processes only: `auditkeep serve` nodes (tests/conftest.py LiveServer) over clusters of
tests/pg.py on loopback. The nodes share the database and a copy of the first node's keys/
(checkpoint signing keys, delivery key); each has its own data directory.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkeep_client import AuditKeep
from tests import pg
from tests.conftest import AUDITKEEP, LiveServer, cli, create_tenant_key, event, free_port
from tests.pg import PgCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# The harness's fixtures, bound here by name (an import would trip ruff's F811 on the args).
pg_server = pg.pg_server
pg_database_url = pg.pg_database_url
pg_pair = pg.pg_pair

DB_ENV = "AUDITKEEP_DATABASE_URL"
# A readiness probe must answer, 200 or 503, within this (generous: the store answers 503
# within about 2 s while no server is reachable).
READYZ_TIMEOUT = 30.0
FAST_SDK: dict[str, Any] = {
    "retry_base": 0.02,
    "retry_cap": 0.2,
    "poll_interval": 0.05,
    "timeout": 5.0,
    "flush_on_exit": 0.0,
    "batch_size": 50,
}


# -- nodes ----------------------------------------------------------------------------------


def start_nodes(tmp_path: Path, url: str, count: int = 2, **settings: str) -> list[LiveServer]:
    """``count`` API nodes over ``url``: the first makes the tenant, its key and the signing key;
    the others get a copy of its keys/ before they start."""
    first = tmp_path / "node-1"
    key = create_tenant_key(first, "acme", "events:write,events:read")
    opts = {"database_url": url, **settings}
    nodes = [LiveServer(data_dir=first, port=free_port(), write_key=key, settings=opts)]
    nodes[0].start()
    for n in range(2, count + 1):
        data_dir = tmp_path / f"node-{n}"
        data_dir.mkdir()
        shutil.copytree(first / "keys", data_dir / "keys")
        nodes.append(LiveServer(data_dir=data_dir, port=free_port(), write_key=key, settings=opts))
        nodes[-1].start()
    return nodes


def stop_nodes(nodes: list[LiveServer]) -> None:
    for node in nodes:
        try:
            node.stop()
        except subprocess.TimeoutExpired:
            node.kill()


def feed_seqs(node: LiveServer) -> list[int]:
    seqs: list[int] = []
    headers = {"Authorization": f"Bearer {node.write_key}"}
    while True:
        page = httpx.get(
            node.url + "/v1/feed",
            params={"after": len(seqs), "limit": 1000},
            headers=headers,
            timeout=30,
        )
        page.raise_for_status()
        data = page.json()["data"]
        if not data:
            return seqs
        seqs += [e["seq"] for e in data]


def run_verify(node: LiveServer) -> list[dict[str, Any]]:
    out = cli("verify", "--json", data_dir=node.data_dir, check=False)
    assert out.returncode == 0, f"verify failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    reports: list[dict[str, Any]] = json.loads(out.stdout)
    assert all(r["ok"] for r in reports), reports
    return reports


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; returns the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def probe_readyz(nodes: list[LiveServer]) -> list[tuple[int, float]]:
    """``GET /readyz`` on every node at once: (status or -1 on no answer, seconds taken)."""

    def probe(node: LiveServer) -> tuple[int, float]:
        started = time.monotonic()
        try:
            status = httpx.get(node.url + "/readyz", timeout=READYZ_TIMEOUT).status_code
        except httpx.HTTPError:
            status = -1
        return status, round(time.monotonic() - started, 2)

    with ThreadPoolExecutor(len(nodes)) as pool:
        return list(pool.map(probe, nodes))


def wait_for_readyz(nodes: list[LiveServer], status: int, timeout: float) -> list[float]:
    """Until every node answers ``status``; the probes' latencies of the last round."""
    deadline = time.monotonic() + timeout
    seen: list[list[tuple[int, float]]] = []
    while time.monotonic() < deadline:
        seen.append(probe_readyz(nodes))
        if all(s == status for s, _ in seen[-1]):
            return [t for _, t in seen[-1]]
        time.sleep(0.1)
    raise AssertionError(f"/readyz never {status} on every node in {timeout}s: {seen[-5:]}")


# -- load -----------------------------------------------------------------------------------


class Senders:
    """Threads that each post batches with fresh ids and resend a batch — same ids, same
    content, to either node — until it is acknowledged; every ack (id -> seq) is recorded."""

    def __init__(self, nodes: list[LiveServer], workers: int, retry_for: float = 60.0) -> None:
        self.nodes = nodes
        self.retry_for = retry_for
        self.acked: dict[str, int] = {}
        self.sent: dict[str, dict[str, Any]] = {}
        self.acks_by_node: Counter[int] = Counter()
        self.transient: Counter[str] = Counter()
        self.duplicates = 0  # resent events the server already had: a lost answer, not a loss
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(workers)
        ]

    def __enter__(self) -> Senders:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.aborting.set()  # the test failed: do not wait for retries
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(self.retry_for + 30)
        assert not any(t.is_alive() for t in self.threads), "a sender thread is stuck"

    def _run(self, worker: int) -> None:
        headers = {"Authorization": f"Bearer {self.nodes[0].write_key}"}
        clients = [
            httpx.Client(base_url=node.url, headers=headers, timeout=10) for node in self.nodes
        ]
        try:
            n = 0
            while not self.stopping.is_set():
                size = 1 + (worker * 7 + n) % 40
                batch = [event(f"w{worker}-{n + i}", metadata={"w": worker}) for i in range(size)]
                n += size
                if not self._deliver(worker, clients, batch):
                    return
        finally:
            for c in clients:
                c.close()

    def _deliver(
        self, worker: int, clients: list[httpx.Client], batch: list[dict[str, Any]]
    ) -> bool:
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while time.monotonic() < deadline and not self.aborting.is_set():
            which = (worker + attempt) % len(clients)  # alternate nodes on retries
            attempt += 1
            try:
                r = clients[which].post("/v1/events", json={"events": batch})
            except httpx.HTTPError as exc:
                self._note(type(exc).__name__)
                time.sleep(0.05)
                continue
            if r.status_code != 200:
                self._note(str(r.status_code))
                if r.status_code not in (429, 500, 502, 503, 504):
                    self.failures.append(f"{r.status_code}: {r.text[:300]}")
                    return False
                time.sleep(0.05)
                continue
            results = r.json()["results"]
            bad = [x for x in results if x["status"] not in ("accepted", "duplicate")]
            if bad:
                self.failures.append(f"rejected: {bad[:3]}")
                return False
            with self.lock:
                for x in results:
                    self.acked[x["id"]] = x["seq"]
                self.sent.update((e["id"], e) for e in batch)
                self.duplicates += sum(x["status"] == "duplicate" for x in results)
                self.acks_by_node[which] += 1
            return True
        self.failures.append(f"batch {batch[0]['id']} not acknowledged in {self.retry_for}s")
        return False

    def _note(self, what: str) -> None:
        with self.lock:
            self.transient[what] += 1


class SdkProducer:
    """An SDK client (durable outbox, both nodes as endpoints) logging continuously."""

    def __init__(self, endpoints: list[str], key: str, outbox: Path, tag: str) -> None:
        self.client = AuditKeep(key, endpoints=endpoints, outbox=outbox, **FAST_SDK)
        self.tag = tag
        self.logged: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            self.logged.append(
                self.client.log(
                    "user.login",
                    actor={"id": f"{self.tag}-{i % 17}", "type": "user"},
                    targets=[{"id": f"doc_{i % 5}", "type": "document"}],
                    metadata={"i": i},
                )
            )
            i += 1
            if i % 5 == 0:
                time.sleep(0.02)  # ~250 events/s

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def check_log(nodes: list[LiveServer], expected: dict[str, int | None]) -> list[dict[str, Any]]:
    """Every expected id stored exactly once (at its acknowledged seq where known), nothing
    else, seqs 1..N without a gap, and every node serving the same log."""
    stored = nodes[0].events()
    counts = Counter(e["id"] for e in stored)
    twice = [i for i, c in counts.items() if c > 1]
    assert not twice, f"{len(twice)} ids stored more than once, e.g. {twice[:5]}"
    missing = set(expected) - set(counts)
    assert not missing, f"{len(missing)} acknowledged ids missing, e.g. {sorted(missing)[:5]}"
    extra = set(counts) - set(expected)
    assert not extra, f"{len(extra)} ids nobody sent, e.g. {sorted(extra)[:5]}"
    by_id = {e["id"]: e["seq"] for e in stored}
    moved = {i: (s, by_id[i]) for i, s in expected.items() if s is not None and by_id[i] != s}
    assert not moved, f"acknowledged seqs changed (acked, stored): {list(moved.items())[:5]}"
    seqs = feed_seqs(nodes[0])
    assert seqs == list(range(1, len(stored) + 1)), "seqs are not gap-free 1..N"
    for other in nodes[1:]:
        assert feed_seqs(other) == seqs
    return stored


# -- tests ----------------------------------------------------------------------------------


def test_two_nodes_one_database_concurrent_writers(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DB_ENV, pg_database_url)  # for the CLI (tenant, key, verify)
    nodes = start_nodes(tmp_path, pg_database_url, checkpoint_interval="0.5")
    try:
        with Senders(nodes, workers=6) as senders:
            time.sleep(4)
        assert not senders.failures, senders.failures
        assert all(senders.acks_by_node[i] > 0 for i in range(len(nodes))), senders.acks_by_node
        assert len(senders.acked) > 500
        # A retry of acknowledged events through the other node: duplicates, same seqs.
        some = sorted(senders.acked)[:50]
        again = httpx.post(
            nodes[1].url + "/v1/events",
            json={"events": [senders.sent[i] for i in some]},
            headers={"Authorization": f"Bearer {nodes[1].write_key}"},
            timeout=30,
        ).json()
        assert again["duplicates"] == len(some), again
        assert {r["id"]: r["seq"] for r in again["results"]} == {i: senders.acked[i] for i in some}
        check_log(nodes, dict(senders.acked))
    finally:
        stop_nodes(nodes)  # each signs a final checkpoint over the same tree
    reports = run_verify(nodes[0])
    acme = next(r for r in reports if r["tenant"] == "acme")
    assert acme["checked"] == len(senders.acked)
    assert acme["checkpoints_checked"] >= 1


def test_primary_crash_and_promotion_lose_no_acknowledged_event(
    tmp_path: Path, pg_pair: tuple[PgCluster, PgCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, standby = pg_pair
    primary.create_database("auditkeep")
    url = pg.multi_host_url(primary, standby, db="auditkeep")
    monkeypatch.setenv(DB_ENV, url)
    nodes = start_nodes(tmp_path, url, checkpoint_interval="1")
    key = nodes[0].write_key
    urls = [n.url for n in nodes]
    sdks = [
        SdkProducer(urls, key, tmp_path / "outbox-a" / "outbox.sqlite3", "a"),
        SdkProducer(urls[::-1], key, tmp_path / "outbox-b" / "outbox.sqlite3", "b"),
    ]
    timeline: dict[str, Any] = {}
    try:
        with Senders(nodes, workers=4) as senders:
            for p in sdks:
                p.start()
            time.sleep(1.5)
            before = len(senders.acked)
            assert before > 0 and not senders.failures, senders.failures

            primary.kill()  # SIGKILL mid-stream: in-flight commits have no answer
            killed = time.monotonic()
            timeline["readyz latency in the outage"] = wait_for_readyz(nodes, 503, 45)
            timeline["503 on every node"] = time.monotonic() - killed

            pg.promote(standby)
            promoted = time.monotonic()
            timeline["outage"] = promoted - killed
            wait_for_readyz(nodes, 200, 60)
            timeline["200 on every node"] = time.monotonic() - promoted
            acked_at_promotion = len(senders.acked)
            timeline["first ack after promotion"] = wait_until(
                lambda: len(senders.acked) > acked_at_promotion, 30, "a write after promotion"
            )
            time.sleep(1.5)
            for p in sdks:
                p.stop()
        assert not senders.failures, senders.failures
        for p in sdks:
            assert p.client.flush(60), p.client.status()
        assert len(senders.acked) > before
        expected: dict[str, int | None] = dict(senders.acked)
        for p in sdks:
            assert len(p.logged) > 50
            expected.update(dict.fromkeys(p.logged))
        check_log(nodes, expected)
    finally:
        for p in sdks:
            p.stop()
            p.client.close(5)
        stop_nodes(nodes)
    print(
        f"failover timeline (s): {timeline}; raw senders: {len(senders.acked)} acked, "
        f"{senders.duplicates} duplicates, transient answers {dict(senders.transient)}; "
        f"SDK: {[len(p.logged) for p in sdks]} logged"
    )
    reports = run_verify(nodes[0])
    acme = next(r for r in reports if r["tenant"] == "acme")
    assert acme["checked"] == len(expected)


def test_no_acknowledgement_while_the_standby_is_down(
    tmp_path: Path, pg_pair: tuple[PgCluster, PgCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ack means the event is on both servers: with the standby down, a write waits (no
    ack); the primary then dies with the event only in its own WAL; the standby, promoted,
    never had it, and the client's retry stores it once."""
    primary, standby = pg_pair
    primary.create_database("auditkeep")
    url = pg.multi_host_url(primary, standby, db="auditkeep")
    monkeypatch.setenv(DB_ENV, url)
    (node,) = start_nodes(tmp_path, url, count=1, ready_commit_timeout="1")
    headers = {"Authorization": f"Bearer {node.write_key}"}
    first = httpx.post(node.url + "/v1/events", json=event(1), headers=headers, timeout=30)
    assert first.status_code == 201, first.text
    standby.stop()
    answer: dict[str, Any] = {}

    def post() -> None:
        try:
            r = httpx.post(node.url + "/v1/events", json=event(2), headers=headers, timeout=60)
            answer["status"] = r.status_code
        except httpx.HTTPError as exc:
            answer["error"] = repr(exc)

    waiting = threading.Thread(target=post, daemon=True)
    try:
        waiting.start()
        waiting.join(2.0)
        assert waiting.is_alive(), f"acknowledged without a standby: {answer}"
        # the node still reaches its database, but no commit finishes: not ready
        ready = httpx.get(node.url + "/readyz", timeout=READYZ_TIMEOUT)
        assert ready.status_code == 503 and "synchronous standby" in ready.text, ready.text
        primary.kill()  # the commit is in the dead primary's WAL only
        waiting.join(30)
        assert not waiting.is_alive()
        assert answer.get("status") != 201 and answer.get("status", 503) >= 500, answer
        standby.start()
        pg.promote(standby)
        wait_for_readyz([node], 200, 60)
        retry = httpx.post(node.url + "/v1/events", json=event(2), headers=headers, timeout=30)
        assert retry.status_code == 201, retry.text  # new here, not a duplicate
        assert retry.json()["seq"] == 2
        check_log([node], {"evt-1": 1, "evt-2": 2})
    finally:
        stop_nodes([node])
    run_verify(node)


def test_serve_makes_a_missing_data_directory(tmp_path: Path, pg_database_url: str) -> None:
    """With PostgreSQL the data directory holds only keys/; a first start must create it."""
    node = LiveServer(
        data_dir=tmp_path / "fresh-data",
        port=free_port(),
        settings={"database_url": pg_database_url},
    )
    try:
        node.start()
        assert any((node.data_dir / "keys").glob("*.key"))
    finally:
        node.kill()


@pytest.mark.parametrize("problem", ["closed port", "wrong password"])
def test_serve_with_an_unusable_database_exits_with_a_clear_message(
    tmp_path: Path, pg_server: PgCluster, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DB_ENV, raising=False)
    secret = "Sekr1t-pw-do-not-print"
    port = free_port() if problem == "closed port" else pg_server.port
    url = f"postgresql://{pg.APP_USER}:{secret}@127.0.0.1:{port}/postgres"
    started = time.monotonic()
    out = subprocess.run(
        [
            *AUDITKEEP,
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(free_port()),
            "--database-url",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert out.returncode != 0, out.stderr
    assert took < 15, f"took {took:.1f}s to give up"
    assert "127.0.0.1" in out.stderr and str(port) in out.stderr, out.stderr
    if problem == "wrong password":
        assert "password" in out.stderr.lower() or "authentication" in out.stderr.lower()
    assert secret not in out.stderr + out.stdout
    assert "Traceback" not in out.stderr, out.stderr


# -- the last ways an acknowledged event could be lost, hidden or stuck (issue 17) -----------


def wait_for_sync_rep_wait(primary: PgCluster, timeout: float = 10.0) -> int:
    """The pid of the backend whose COMMIT waits for the synchronous standby."""
    found: list[int] = []

    def waiting() -> bool:
        rows = primary.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = %s",
            ["auditkeep"],
        )
        found[:] = [int(r[0]) for r in rows]
        return bool(found)

    wait_until(waiting, timeout, "a COMMIT waiting for the synchronous standby")
    return found[0]


def post_in_thread(
    node: LiveServer, body: dict[str, Any]
) -> tuple[threading.Thread, dict[str, Any]]:
    """POST ``body`` from a thread; the answer (status, headers, body) lands in the dict."""
    answer: dict[str, Any] = {}

    def post() -> None:
        try:
            r = httpx.post(
                node.url + "/v1/events",
                json=body,
                headers={"Authorization": f"Bearer {node.write_key}"},
                timeout=90,
            )
            answer.update(status=r.status_code, headers=r.headers, text=r.text)
        except httpx.HTTPError as exc:
            answer["error"] = repr(exc)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, answer


def assert_problem_503(answer: dict[str, Any], *words: str) -> dict[str, Any]:
    assert answer.get("status") == 503, answer
    assert answer["headers"]["content-type"] == "application/problem+json", answer
    assert int(answer["headers"]["retry-after"]) >= 1, answer
    problem: dict[str, Any] = json.loads(answer["text"])
    assert problem["status"] == 503
    for word in words:
        assert word in problem["detail"], problem
    return problem


def timed_post(node: LiveServer, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    r = httpx.post(
        node.url + "/v1/events",
        json=body,
        headers={"Authorization": f"Bearer {node.write_key}"},
        timeout=30,
    )
    answer = {"status": r.status_code, "headers": r.headers, "text": r.text}
    return answer, time.monotonic() - started


def test_a_cancelled_synchronous_wait_is_not_acknowledged_and_no_primary_answers_fast(
    tmp_path: Path, pg_pair: tuple[PgCluster, PgCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMMIT whose wait for the synchronous standby is cancelled is committed on the
    primary only: the node answers 503 "not replicated", the primary dies, the promoted standby
    never had the event, and the client's retry stores it once. While no primary exists,
    POSTs answer 503 with Retry-After within 3 s."""
    primary, standby = pg_pair
    primary.create_database("auditkeep")
    url = pg.multi_host_url(primary, standby, db="auditkeep")
    monkeypatch.setenv(DB_ENV, url)
    # a long write timeout: the cancel, not the watchdog, must be what ends the wait
    (node,) = start_nodes(tmp_path, url, count=1, database_write_timeout="60")
    headers = {"Authorization": f"Bearer {node.write_key}"}
    try:
        first = httpx.post(node.url + "/v1/events", json=event(1), headers=headers, timeout=30)
        assert first.status_code == 201, first.text
        standby.stop()
        waiting, answer = post_in_thread(node, event(2))
        backend = wait_for_sync_rep_wait(primary)
        assert primary.scalar("SELECT pg_cancel_backend(%s)", [backend]) is True
        waiting.join(30)
        assert not waiting.is_alive()
        assert_problem_503(answer, "not replicated")
        # the event is committed on the primary alone; then the primary is lost
        assert primary.scalar("SELECT count(*) FROM event_ids", db="auditkeep") == 2
        primary.kill()
        standby.start()  # in recovery, its primary gone: no primary at all
        latencies = []
        for n in range(3):
            answer, took = timed_post(node, event(f"none-{n}"))
            assert_problem_503(answer)
            latencies.append(round(took, 2))
        assert max(latencies) < 3.0, latencies
        pg.promote(standby)
        promoted = time.monotonic()
        wait_for_readyz([node], 200, 30)
        gone = httpx.get(node.url + "/v1/events/evt-2", headers=headers, timeout=30)
        assert gone.status_code == 404, gone.text  # it never reached the standby
        retry = httpx.post(node.url + "/v1/events", json=event(2), headers=headers, timeout=30)
        assert retry.status_code == 201, retry.text  # stored now, once
        assert retry.json()["seq"] == 2
        print(
            f"no-primary POST latencies (s): {latencies}; promotion to first ack "
            f"{time.monotonic() - promoted:.2f} s"
        )
        again = httpx.post(node.url + "/v1/events", json=event(2), headers=headers, timeout=30)
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
        check_log([node], {"evt-1": 1, "evt-2": 2})
    finally:
        stop_nodes([node])


def test_a_hung_primary_is_abandoned_and_writes_resume_after_promotion(
    tmp_path: Path, pg_pair: tuple[PgCluster, PgCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGSTOP of every PostgreSQL process of the primary under load (a hung machine: TCP
    still accepted, nothing answers), then promotion: through a plain multi-host URL, writes
    resume within 10 s of the promotion; the old primary, woken up later, is not used."""
    primary, standby = pg_pair
    primary.create_database("auditkeep")
    url = pg.multi_host_url(primary, standby, db="auditkeep")
    monkeypatch.setenv(DB_ENV, url)
    (node,) = start_nodes(tmp_path, url, count=1)
    timeline: dict[str, float] = {}
    try:
        with Senders([node], workers=3, retry_for=60) as senders:
            wait_until(lambda: len(senders.acked) > 100, 30, "acks before the hang")
            primary.pause()
            paused = time.monotonic()
            time.sleep(0.5)  # answers to commits made before the hang are in; the rest is stuck
            acked_at_pause = len(senders.acked)
            pg.promote(standby)
            promoted = time.monotonic()
            timeline["hang to promotion"] = promoted - paused
            timeline["promotion to first ack"] = wait_until(
                lambda: len(senders.acked) > acked_at_pause, 10, "a write after promotion"
            )
            wait_until(lambda: len(senders.acked) > acked_at_pause + 200, 30, "more writes")
            # the old primary wakes up read-write: new connections try it first; it is on the
            # old timeline and behind, so it is refused and writes keep going to the new one
            primary.resume()
            resumed = len(senders.acked)
            wait_until(lambda: len(senders.acked) > resumed + 200, 30, "writes after SIGCONT")
        assert not senders.failures, senders.failures
        primary.kill()
        check_log([node], dict(senders.acked))
    finally:
        with contextlib.suppress(pg.PgError):
            primary.kill()
        stop_nodes([node])
    print(
        f"hung primary timeline (s): {timeline}; {len(senders.acked)} acked, transient "
        f"answers {dict(senders.transient)}"
    )
    run_verify(node)


def test_sigterm_while_a_commit_hangs_answers_problem_json(
    tmp_path: Path, pg_pair: tuple[PgCluster, PgCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, standby = pg_pair
    primary.create_database("auditkeep")
    url = pg.multi_host_url(primary, standby, db="auditkeep")
    monkeypatch.setenv(DB_ENV, url)
    (node,) = start_nodes(tmp_path, url, count=1, database_write_timeout="0")  # wait for ever
    try:
        standby.stop()
        waiting, answer = post_in_thread(node, event(1))
        wait_for_sync_rep_wait(primary)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        waiting.join(30)  # uvicorn's graceful shutdown gives up after 10 s
        assert not waiting.is_alive()
        assert_problem_503(answer, "shutting down")
    finally:
        primary.kill()  # ends the commit, so the node can finish stopping
        stop_nodes([node])


def test_a_stale_former_primary_is_refused_by_a_restarting_node(
    tmp_path: Path, pg_pair: tuple[PgCluster, PgCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old primary comes back read-write after a failover: a node that restarts (and the
    CLI on its data directory) refuses it instead of serving a stale log. Alone in the URL it
    is an error; first of several hosts it is skipped for the current primary, loudly."""
    primary, standby = pg_pair
    primary.create_database("auditkeep")
    url = pg.multi_host_url(primary, standby, db="auditkeep")
    monkeypatch.setenv(DB_ENV, url)
    (node,) = start_nodes(tmp_path, url, count=1)
    headers = {"Authorization": f"Bearer {node.write_key}"}
    batch = [event(f"a{i}") for i in range(100)]
    try:
        r = httpx.post(node.url + "/v1/events", json={"events": batch}, headers=headers, timeout=30)
        assert r.json()["accepted"] == 100, r.text
        primary.kill()
        pg.promote(standby)
        wait_for_readyz([node], 200, 30)
        batch = [event(f"b{i}") for i in range(200)]
        r = httpx.post(node.url + "/v1/events", json={"events": batch}, headers=headers, timeout=30)
        assert r.json()["accepted"] == 200, r.text
    finally:
        stop_nodes([node])
    state = json.loads((node.data_dir / "postgres-state.json").read_text())
    assert state["timeline"] == 2 and 300 in state["log_sizes"].values(), state
    primary.start()  # the former primary, read-write on timeline 1, with 100 events
    assert not primary.is_in_recovery()

    stale_url = pg.multi_host_url(primary, db="auditkeep")
    monkeypatch.setenv(DB_ENV, stale_url)
    out = subprocess.run(
        [*AUDITKEEP, "serve", "--data-dir", str(node.data_dir), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0, out.stderr
    assert f"refusing PostgreSQL at 127.0.0.1:{primary.port}" in out.stderr, out.stderr
    assert "timeline 1" in out.stderr and "Traceback" not in out.stderr, out.stderr
    verify = cli("verify", data_dir=node.data_dir, check=False)
    assert verify.returncode != 0 and "refusing PostgreSQL" in verify.stderr, verify.stderr

    monkeypatch.setenv(DB_ENV, url)  # the stale one first, then the current primary
    node.settings["database_url"] = url
    node.start()
    try:
        assert len(node.events()) == 300
        assert f"refusing PostgreSQL at 127.0.0.1:{primary.port}" in node.log()
    finally:
        stop_nodes([node])


def test_readyz_reports_commits_that_keep_timing_out(
    tmp_path: Path, pg_pair: tuple[PgCluster, PgCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the standby gone each commit is abandoned after database_write_timeout (503), so
    no single commit runs long; /readyz still goes 503 once none has succeeded for
    ready_commit_timeout, and back to 200 when writes succeed again."""
    primary, standby = pg_pair
    primary.create_database("auditkeep")
    url = pg.multi_host_url(primary, standby, db="auditkeep")
    monkeypatch.setenv(DB_ENV, url)
    (node,) = start_nodes(
        tmp_path, url, count=1, database_write_timeout="1", ready_commit_timeout="2"
    )
    try:
        standby.stop()
        answers: list[int] = []

        def unready() -> bool:
            answer, _ = timed_post(node, event(f"x{len(answers)}"))
            answers.append(answer["status"])
            return httpx.get(node.url + "/readyz", timeout=READYZ_TIMEOUT).status_code == 503

        wait_until(unready, 20, "/readyz 503 while every commit times out")
        assert set(answers) == {503}, answers
        ready = httpx.get(node.url + "/readyz", timeout=READYZ_TIMEOUT)
        assert "no commit has succeeded" in ready.json()["detail"], ready.text
        standby.start()
        pg.wait_for_standby(primary, standby)
        wait_until(lambda: timed_post(node, event("after"))[0]["status"] in (200, 201), 20, "ack")
        wait_for_readyz([node], 200, 10)
    finally:
        stop_nodes([node])
