"""DNS rebinding: the HTTP kinds (webhook, Splunk HEC, S3) connect to the address the SSRF
guard checked, never to the host name resolved a second time.

The attack: a name that resolves to a permitted address when the guard looks, and to an
internal one when the connection is made. Name resolution cannot be steered on this machine,
so the guard's resolver is a stand-in (``NetGuard(resolve=...)``) while the system keeps
resolving ``localhost`` to 127.0.0.1, where a receiver listens: a client that resolved the
name again would reach it.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import pytest

from auditkeep.delivery.base import Batch, DeliveryFailed, Secrets, SenderContext
from auditkeep.delivery.kinds import get_kind
from auditkeep.delivery.netguard import NetGuard
from auditkeep.model import prepare_event
from auditkeep.store.base import StoredEvent
from tests.conftest import event, free_port
from tests.delivery.rsyslog import make_tls_files


class Receiver:
    """An HTTP(S) server on 127.0.0.1 that records every request and answers 200 (in the
    form Splunk HEC confirms a batch; the other kinds need only the status)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.requests: list[tuple[str, str]] = []  # (method, Host header)
        self.server_names: list[str | None] = []  # TLS SNI
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.requests.append((self.command, self.headers.get("host", "")))
                body = b'{"text":"Success","code":0}'  # (what HEC confirms a batch with)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


class Resolver:
    """A stand-in for getaddrinfo: each call answers the next address (the last repeats)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        self.calls.append(host)
        address = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


def batch() -> Batch:
    prepared = prepare_event(event(1), "acme", 1_764_000_000_000_000)
    ev = StoredEvent(1, prepared.occurred_at, prepared.leaf_hash, prepared.leaf_data)
    return Batch(1, "acme", "dst_test", [ev])


def sender_for(kind: str, base_url: str, guard: NetGuard) -> Any:
    configs: dict[str, tuple[dict[str, Any], Secrets]] = {
        "webhook": ({"url": base_url + "/hook"}, Secrets("whsec_" + "A" * 32)),
        "splunk_hec": ({"url": base_url}, Secrets("00000000-0000-0000-0000-000000000000")),
        "s3": (
            {"endpoint": base_url, "bucket": "audit", "access_key_id": "AKIAEXAMPLE123"},
            Secrets("secret-access-key-example"),
        ),
    }
    config, secrets = configs[kind]
    # (checked as when it was created; names resolve, through a resolver of its own)
    config = get_kind(kind).check_config(config, NetGuard(allow_any=True, resolve=Resolver("::1")))
    return get_kind(kind).make_sender(config, secrets, SenderContext(guard, timeout=5.0))


KINDS = ["webhook", "splunk_hec", "s3"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_rebound_name_does_not_reach_the_internal_receiver(kind: str, receiver: Receiver) -> None:
    # the guard permits only 127.0.0.2 and sees localhost resolve there; the system resolves
    # localhost to 127.0.0.1, where the receiver listens (and nothing listens on 127.0.0.2)
    resolver = Resolver("127.0.0.2")
    guard = NetGuard.from_setting("127.0.0.2/32")
    guard = NetGuard(guard.allow, resolve=resolver)
    sender = sender_for(kind, f"http://localhost:{receiver.port}", guard)
    try:
        with pytest.raises(DeliveryFailed, match=r"cannot reach|refused"):
            sender.send(batch())
    finally:
        sender.close()
    assert receiver.requests == [], "the batch went to an address the guard never checked"
    assert resolver.calls == ["localhost"]  # resolved once, by the guard


@pytest.mark.parametrize("kind", KINDS)
def test_the_checked_address_is_the_one_connected_to(kind: str, receiver: Receiver) -> None:
    """The control: when the guard's answer is where the receiver listens, it is delivered
    there (with the URL's name in the Host header), over one guarded lookup per connection."""
    resolver = Resolver("127.0.0.1")
    guard = NetGuard(NetGuard.from_setting("127.0.0.1/32").allow, resolve=resolver)
    sender = sender_for(kind, f"http://rebind.invalid:{receiver.port}", guard)
    try:
        sender.send(batch())
        sender.send(batch())  # the kept-alive connection: no new lookup needed
    finally:
        sender.close()
    assert [m for m, _ in receiver.requests] == ["PUT" if kind == "s3" else "POST"] * 2
    assert {h for _, h in receiver.requests} == {f"rebind.invalid:{receiver.port}"}
    assert 1 <= len(resolver.calls) <= 2 and set(resolver.calls) == {"rebind.invalid"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_that_turns_internal_is_refused_at_the_next_connection(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public when checked the first time, loopback afterwards. No connection leaves this
    machine: the socket layer is replaced by one that records where it was asked to go."""
    asked: list[str] = []

    def connect_tcp(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        raise httpcore.ConnectError("(test) not connecting")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    resolver = Resolver("8.8.8.8", "127.0.0.1")
    sender = sender_for(kind, "http://rebind.invalid:8443", NetGuard(resolve=resolver))
    try:
        with pytest.raises(DeliveryFailed, match="cannot reach"):
            sender.send(batch())
        assert asked == ["8.8.8.8"]  # the checked address, not the name to resolve again
        with pytest.raises(DeliveryFailed, match="refused to connect") as refused:
            sender.send(batch())
    finally:
        sender.close()
    assert "127.0.0.1" in refused.value.message
    assert asked == ["8.8.8.8"]  # nothing was attempted towards loopback


def test_tls_verifies_the_url_host_when_connecting_to_the_checked_address(
    tmp_path: Path,
) -> None:
    """Connecting to an address must not weaken TLS: the certificate is verified for the
    URL's host name, which is also sent as SNI."""
    files = make_tls_files(tmp_path / "tls", dns_name="receiver.test", ip="192.0.2.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.server_cert, files.server_key)
    tls_receiver = Receiver(context)
    try:
        resolver = Resolver("127.0.0.1")
        guard = NetGuard(NetGuard.from_setting("127.0.0.1/32").allow, resolve=resolver)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SSL_CERT_FILE", str(files.ca_cert))  # trust the test CA
            good = sender_for("webhook", f"https://receiver.test:{tls_receiver.port}", guard)
            # the same receiver under a name its certificate does not carry
            wrong = sender_for("webhook", f"https://other.test:{tls_receiver.port}", guard)
        try:
            good.send(batch())
            with pytest.raises(DeliveryFailed, match=r"(?i)certificate"):
                wrong.send(batch())
        finally:
            good.close()
            wrong.close()
    finally:
        tls_receiver.stop()
    assert tls_receiver.requests == [("POST", f"receiver.test:{tls_receiver.port}")]
    assert "receiver.test" in tls_receiver.server_names
