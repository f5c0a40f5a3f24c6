"""Slow and vanishing clients against a real server process: headers or bodies trickled in,
connections held open past the cap, uploads abandoned halfway. Each is written as the attack,
then what the server must do (time the client out, answer 503 past the cap, count a vanished
client apart from server errors) while /healthz keeps answering."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from auditkeep.api.protocol import FD_RESERVE, OVERFLOW
from tests.conftest import AUDITKEEP, LiveServer, event, start_live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    s = start_live_server(tmp_path, header_timeout="1", body_timeout="2", max_connections="20")
    try:
        yield s
    finally:
        s.kill()


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(10)
    return sock


def read_until_closed(sock: socket.socket, trickle: bytes = b"", every: float = 0.2) -> bytes:
    """Everything the server sends until it closes the connection, while sending ``trickle``
    one byte at a time (a slow client); at most 10 s."""
    sock.setblocking(False)
    out = b""
    deadline = time.monotonic() + 10
    sent = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
        if sent < len(trickle):
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.send(trickle[sent : sent + 1])
            sent += 1
        time.sleep(every)
    raise AssertionError(f"the server kept the connection open for 10 s; got {out[:200]!r}")


def status_and_problem(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/problem+json" in head.lower(), head
    return status, orjson.loads(body)


def metric(server: LiveServer, pattern: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    m = re.search(pattern + r" ([0-9.e+]+)", text)
    return float(m.group(1)) if m else 0.0


def healthz_ok(server: LiveServer) -> bool:
    return httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def test_headers_trickled_in_are_cut_off_with_408(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        raw = read_until_closed(sock, trickle=b"X-Slow: " + b"a" * 100)
    elapsed = time.monotonic() - started
    assert 0.8 < elapsed < 4, elapsed  # header_timeout is 1 s
    status, problem = status_and_problem(raw)
    assert status == 408 and "header_timeout" in str(problem["detail"])
    assert healthz_ok(server)
    assert metric(server, r'auditkeep_connections_refused_total\{reason="header_timeout"\}') >= 1


def test_a_connection_that_sends_nothing_is_closed(server: LiveServer) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        raw = read_until_closed(sock)
    assert time.monotonic() - started < 4
    assert status_and_problem(raw)[0] == 408


def test_a_body_trickled_in_is_cut_off_with_408(server: LiveServer) -> None:
    body = orjson.dumps(event(1))
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + server.write_key.encode() + b"\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
        )
        started = time.monotonic()
        raw = read_until_closed(sock, trickle=body[10:])
    elapsed = time.monotonic() - started
    assert 1.8 < elapsed < 5, elapsed  # body_timeout is 2 s
    status, problem = status_and_problem(raw)
    assert status == 408 and "body_timeout" in str(problem["detail"])
    assert server.events() == []
    route = r'auditkeep_http_requests_total\{method="POST",route="/v1/events",status="408"\}'
    assert metric(server, route) == 1
    assert '"level":"error"' not in server.log()


def test_a_slow_but_steady_client_within_the_limits_is_served(server: LiveServer) -> None:
    """Headers over 0.5 s (limit 1 s), then the body over 1 s (limit 2 s): served."""
    body = orjson.dumps(event(2))
    head = (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + server.write_key.encode() + b"\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    with connect(server) as sock:
        for part in (head, body):
            for i in range(10):
                sock.sendall(part[i * len(part) // 10 : (i + 1) * len(part) // 10])
                time.sleep(0.05 if part is head else 0.1)
        raw = read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 201"), raw[:200]
    assert [e["id"] for e in server.events()] == ["evt-2"]


def test_connections_past_the_cap_get_503_and_the_server_recovers(tmp_path: Path) -> None:
    server = start_live_server(tmp_path, header_timeout="60", max_connections="10")
    try:
        with contextlib.ExitStack() as held:
            for _ in range(10):  # idle: they hold the cap
                held.enter_context(connect(server))
            # liveness is still answered (the process is alive)...
            assert healthz_ok(server)
            # ...but every other request is refused until connections free up
            r = httpx.get(server.url + "/readyz", timeout=10)
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["retry-after"] == "1"
            assert "max_connections" in r.json()["detail"]
            # past the cap by more than OVERFLOW: closed at once, without an answer
            for _ in range(OVERFLOW):
                held.enter_context(connect(server))
            for _ in range(3):
                with connect(server) as sock:
                    assert read_until_closed(sock) == b""
        deadline = time.monotonic() + 10
        while not healthz_ok(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert healthz_ok(server)
        assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
        refused = r'auditkeep_connections_refused_total\{reason="%s"\}'
        assert metric(server, refused % "over_capacity") >= 1
        assert metric(server, refused % "dropped") >= 3
    finally:
        server.kill()


def test_a_client_gone_mid_upload_is_a_quiet_499(server: LiveServer) -> None:
    """The probe: such a client was logged as an unhandled ERROR and counted as a 500."""
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + server.write_key.encode() + b"\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"{" + b" " * 999
        )
    route = r'auditkeep_http_requests_total\{method="POST",route="/v1/events",status="%s"\}'
    deadline = time.monotonic() + 10
    while metric(server, route % 499) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, route % 499) == 1
    assert metric(server, route % 500) == 0
    log = server.log()
    assert '"level":"error"' not in log and "Traceback" not in log
    assert "client disconnected during POST /v1/events" in log


def test_the_cap_is_lowered_to_fit_the_open_file_limit(tmp_path: Path) -> None:
    """With `ulimit -n 600`, 1,000 connections (plus the overflow and a reserve for the store)
    cannot fit: the server says so and caps at what fits, so descriptors never run out."""
    server = start_live_server(tmp_path)
    server.stop()
    script = (
        f"ulimit -n 600 && exec {' '.join(AUDITKEEP)} serve --data-dir {server.data_dir} "
        f"--port {server.port} --max-connections 1000"
    )
    assert server.log_path is not None
    with open(server.log_path, "ab") as log:
        proc = subprocess.Popen(["bash", "-c", script], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        assert f"using {600 - OVERFLOW - FD_RESERVE}" in server.log(), server.log()[-2000:]
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_flood_of_trickling_connections_cannot_exhaust_descriptors(tmp_path: Path) -> None:
    """The probe held 2,000 trickling connections for 90 s until descriptors ran out. Here 200
    against max_connections=50: the server never holds more than the cap plus the overflow,
    cuts every one off within header_timeout, and then serves ingest as before."""
    from tests.server.test_resource_bounds import open_fds

    server = start_live_server(tmp_path, header_timeout="2", max_connections="50")
    try:
        assert server.proc is not None
        baseline = open_fds(server.proc.pid)
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(connect(server)) for _ in range(200)]
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            peak = open_fds(server.proc.pid)
            for sock in socks:
                sock.setblocking(False)
            deadline = time.monotonic() + 10
            open_socks = set(range(len(socks)))
            while open_socks and time.monotonic() < deadline:
                peak = max(peak, open_fds(server.proc.pid))
                for i in list(open_socks):
                    try:
                        if not socks[i].recv(65536):
                            open_socks.discard(i)
                    except BlockingIOError:
                        with contextlib.suppress(OSError):
                            socks[i].send(b"a")  # keep trickling
                    except OSError:
                        open_socks.discard(i)  # reset: dropped at once
                time.sleep(0.2)
            assert not open_socks, f"{len(open_socks)} still open after 10 s"
        assert peak <= baseline + 50 + OVERFLOW + 5, (baseline, peak)
        r = httpx.post(
            server.url + "/v1/events",
            json=event(1),
            headers={"Authorization": f"Bearer {server.write_key}"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
    finally:
        server.kill()
