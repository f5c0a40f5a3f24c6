"""The syslog destination: RFC 5424 formatting (checked by a strict parser written here) and
delivery to a real rsyslogd over TCP (RFC 6587 octet counting) and TLS (RFC 5425)."""

from __future__ import annotations

import datetime
import re
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.delivery.base import Batch, DeliveryFailed, Secrets, SenderContext
from auditkeep.delivery.netguard import NetGuard
from auditkeep.delivery.syslog import (
    BOM,
    SD_ID,
    SyslogKind,
    SyslogSender,
    format_message,
    frame,
)
from auditkeep.errors import ValidationFailed
from auditkeep.model import prepare_event
from auditkeep.store.base import StoredEvent
from auditkeep_client.schema import format_timestamp, parse_timestamp
from tests.conftest import event
from tests.delivery.rsyslog import (
    Rsyslog,
    TlsFiles,
    free_port,
    make_tls_files,
    requires_rsyslog,
    requires_rsyslog_tls,
)

KIND = SyslogKind()
LOOPBACK = NetGuard.from_setting("127.0.0.0/8")
RECEIVED_AT = 1_790_000_000_123_456

# -- a strict RFC 5424 parser -----------------------------------------------------------------

HEADER_RE = re.compile(
    rb"<(?P<pri>0|[1-9][0-9]{0,2})>(?P<version>[1-9][0-9]{0,2}) "
    rb"(?P<timestamp>-|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    rb"(?:Z|[+-][0-9]{2}:[0-9]{2})) "
    rb"(?P<hostname>[!-~]{1,255}) (?P<app_name>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    rb"(?P<msgid>[!-~]{1,32}) "
)
SD_NAME_RE = re.compile(rb'(?:(?![=\]"])[!-~]){1,32}')


@dataclass
class Message:
    pri: int
    version: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: list[tuple[str, list[tuple[str, str]]]]
    sd_raw: bytes
    msg: bytes


def parse_sd(data: bytes, pos: int) -> tuple[list[tuple[str, list[tuple[str, str]]]], int]:
    if data[pos : pos + 1] == b"-":
        return [], pos + 1
    elements: list[tuple[str, list[tuple[str, str]]]] = []
    while data[pos : pos + 1] == b"[":
        m = SD_NAME_RE.match(data, pos + 1)
        assert m, f"bad SD-ID at {pos}: {data[pos : pos + 40]!r}"
        sd_id, pos = m.group().decode("ascii"), m.end()
        params: list[tuple[str, str]] = []
        while data[pos : pos + 1] == b" ":
            m = SD_NAME_RE.match(data, pos + 1)
            assert m, f"bad PARAM-NAME at {pos}: {data[pos : pos + 40]!r}"
            name, pos = m.group().decode("ascii"), m.end()
            assert data[pos : pos + 2] == b'="', f'expected =" at {pos}'
            pos += 2
            value = bytearray()
            while True:
                c = data[pos : pos + 1]
                assert c, "unterminated PARAM-VALUE"
                if c == b"\\" and data[pos + 1 : pos + 2] in (b'"', b"\\", b"]"):
                    value += data[pos + 1 : pos + 2]
                    pos += 2
                elif c == b'"':
                    pos += 1
                    break
                else:
                    assert c != b"]", f"unescaped ] in PARAM-VALUE at {pos}"
                    value += c
                    pos += 1
            params.append((name, value.decode("utf-8")))  # strict: must be valid UTF-8
        assert data[pos : pos + 1] == b"]", f"expected ] at {pos}: {data[pos : pos + 40]!r}"
        pos += 1
        elements.append((sd_id, params))
    assert elements, f"expected - or [ at {pos}"
    return elements, pos


def parse_message(data: bytes) -> Message:
    m = HEADER_RE.match(data)
    assert m, f"not an RFC 5424 header: {data[:200]!r}"
    pri = int(m["pri"])
    assert 0 <= pri <= 191
    ts = m["timestamp"].decode()
    if ts != "-":
        datetime.datetime.fromisoformat(ts)  # a real date and time
    sd, end = parse_sd(data, m.end())
    rest = data[end:]
    if rest:
        assert rest.startswith(b" "), "SP before MSG"
        rest = rest[1:]
    if rest.startswith(BOM):
        rest[len(BOM) :].decode("utf-8")  # MSG-UTF8 must be valid UTF-8
    return Message(
        pri=pri,
        version=int(m["version"]),
        timestamp=ts,
        hostname=m["hostname"].decode(),
        app_name=m["app_name"].decode(),
        procid=m["procid"].decode(),
        msgid=m["msgid"].decode(),
        sd=sd,
        sd_raw=data[m.end() : end],
        msg=rest,
    )


def unframe(data: bytes) -> list[bytes]:
    """Split an RFC 6587 octet-counted stream into messages."""
    out = []
    while data:
        length, sep, rest = data.partition(b" ")
        assert sep and re.fullmatch(rb"[1-9][0-9]*", length), data[:20]
        n = int(length)
        assert len(rest) >= n
        out.append(rest[:n])
        data = rest[n:]
    return out


def expected_severity(ev: dict[str, Any]) -> int:
    if ev.get("category") == "error":
        return 3
    if ev.get("outcome") == "failure":
        return 4
    if ev.get("category") == "security":
        return 5
    return 6


def check_message(
    msg: Message,
    ev: dict[str, Any],
    *,
    tenant: str,
    facility: int = 13,
    hostname: str = "auditkeep-test",
    app_name: str = "auditkeep",
) -> None:
    assert msg.version == 1
    assert msg.pri == facility * 8 + expected_severity(ev)
    assert msg.timestamp == format_timestamp(parse_timestamp(ev["occurred_at"]))
    assert msg.hostname == hostname
    assert msg.app_name == app_name
    assert msg.procid == "-"
    assert msg.msgid == ev["action"][:32]
    assert msg.sd == [
        (
            SD_ID,
            [
                ("tenant", tenant),
                ("seq", str(ev["seq"])),
                ("id", ev["id"]),
                ("actor", ev["actor"]["id"]),
                ("outcome", ev["outcome"]),
            ],
        )
    ]
    assert msg.msg.startswith(BOM)
    assert orjson.loads(msg.msg[len(BOM) :]) == ev


# -- format_message -----------------------------------------------------------------------------

unicode_text = st.text(st.characters(codec="utf-8"), max_size=30)
tricky_text = st.text(st.sampled_from('"]\\[= =a\u00e9\u20ac\U0001f600'), min_size=1) | unicode_text
printable = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1)


@st.composite
def rfc3339(draw: st.DrawFn) -> tuple[str, int]:
    """An RFC 3339 time with a random offset and 0-9 fraction digits; its UTC microseconds."""
    micros = draw(st.integers(0, 253_402_000_000 * 1_000_000))  # 1970 .. 9999-12-29
    offset = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    digits = draw(st.integers(0, 9))
    utc = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        microseconds=micros
    )
    local = utc.astimezone(datetime.timezone(datetime.timedelta(minutes=offset)))
    if local.year < 1970 or local.year > 9999:
        local = utc
        offset = 0
    frac = (f"{local.microsecond:06d}" + "123")[:digits]
    sign = "+" if offset >= 0 else "-"
    zone = draw(st.sampled_from(["Z", "+00:00"])) if offset == 0 else ""
    if not zone:
        zone = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + zone
    kept = int((frac + "000000")[:6]) if frac else 0
    return text, micros - utc.microsecond + kept


@st.composite
def api_events(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    occurred_at, micros = draw(rfc3339())
    ev: dict[str, Any] = {
        "id": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", fullmatch=True)),
        "action": draw(st.from_regex(r"[a-z0-9_-]{1,30}(\.[a-z0-9_-]{1,30}){1,3}", fullmatch=True)),
        "occurred_at": occurred_at,
        "actor": {"id": draw(tricky_text), "type": "user", "name": draw(unicode_text)},
        "targets": [],
        "outcome": draw(st.sampled_from(["success", "failure"])),
        "category": draw(
            st.sampled_from(["audit", "access", "error", "security", "performance", "system"])
        ),
        "metadata": draw(
            st.dictionaries(
                unicode_text, st.integers(-(2**53) + 1, 2**53 - 1) | unicode_text, max_size=3
            )
        ),
        "tenant": draw(tricky_text),
        "received_at": format_timestamp(RECEIVED_AT),
        "seq": draw(st.integers(1, 2**53)),
        "hash": draw(st.binary(min_size=32, max_size=32)).hex(),
    }
    return ev, micros


@given(
    api_events(),
    st.integers(0, 23),
    printable.map(lambda s: s[:255]),
    printable.map(lambda s: s[:48]),
)
@settings(max_examples=300, deadline=None)
def test_format_message_is_strict_rfc5424(
    drawn: tuple[dict[str, Any], int], facility: int, hostname: str, app_name: str
) -> None:
    ev, micros = drawn
    data = format_message(
        ev, tenant=ev["tenant"], facility=facility, hostname=hostname, app_name=app_name
    )
    msg = parse_message(data)
    check_message(
        msg, ev, tenant=ev["tenant"], facility=facility, hostname=hostname, app_name=app_name
    )
    # the timestamp is the event's time in UTC, truncated to microseconds
    assert msg.timestamp.endswith("Z")
    assert parse_timestamp(msg.timestamp) == micros
    assert unframe(frame(data) + frame(data)) == [data, data]


def test_sd_escaping_and_severities() -> None:
    ev = {
        "id": "e1",
        "action": "a." + "x" * 40,
        "occurred_at": "2026-11-23T19:20:19.2500001+01:00",
        "actor": {"id": 'a"b]c\\d\\"', "type": "user"},
        "outcome": "failure",
        "category": "security",
        "seq": 7,
    }
    data = format_message(ev, tenant="t]", facility=13, hostname="h", app_name="app")
    assert data.startswith(
        b"<108>1 2026-11-23T18:20:19.250000Z h app - a.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx "
        b'[auditkeep@32473 tenant="t\\]" seq="7" id="e1" actor="a\\"b\\]c\\\\d\\\\\\"" '
        b'outcome="failure"] \xef\xbb\xbf{'
    )
    assert parse_message(data).sd[0][1][3] == ("actor", 'a"b]c\\d\\"')
    cases = [
        ({"category": "error", "outcome": "failure"}, 3),
        ({"category": "audit", "outcome": "failure"}, 4),
        ({"category": "security", "outcome": "success"}, 5),
        ({"category": "access", "outcome": "success"}, 6),
        ({}, 6),
    ]
    for fields, sev in cases:
        out = format_message(fields, tenant="t", facility=0, hostname="h", app_name="a")
        assert parse_message(out).pri == sev
        out = format_message(fields, tenant="t", facility=23, hostname="h", app_name="a")
        assert parse_message(out).pri == 23 * 8 + sev
    # missing or unusable header values become NILVALUE, never an invalid header
    nil = parse_message(
        format_message(
            {"occurred_at": "yesterday"},
            tenant="t",
            facility=1,
            hostname="a b\n",
            app_name="\u00e9",
        )
    )
    assert (nil.timestamp, nil.hostname, nil.app_name, nil.msgid) == ("-", "ab", "-", "-")
    with pytest.raises(ValueError, match="facility"):
        format_message({}, tenant="t", facility=24, hostname="h", app_name="a")


# -- configuration ---------------------------------------------------------------------------


def config_errors(config: dict[str, Any], guard: NetGuard = LOOPBACK) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        KIND.check_config(config, guard)
    return {e["path"]: e["message"] for e in info.value.errors or []}


def test_check_config(tmp_path: Path) -> None:
    ok = {"host": "127.0.0.1", "port": 6514, "tls": True, "facility": 0, "app_name": "a.b-c"}
    assert KIND.check_config(ok, LOOPBACK) == ok
    errors = config_errors(
        {
            "host": "127.0.0.1",
            "port": 0,
            "facility": 24,
            "app_name": "x" * 49,
            "hostname": "has space",
            "server_name": "example.com",
            "ca_pem": "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n",
        }
    )
    assert set(errors) == {
        "config.port",
        "config.facility",
        "config.app_name",
        "config.hostname",
        "config.server_name",
        "config.ca_pem",
    }
    assert "tls" in errors["config.ca_pem"]
    errors = config_errors({"host": "127.0.0.1", "port": 514, "tls": True, "ca_pem": "/etc/x"})
    assert set(errors) == {"config.ca_pem"}
    assert set(config_errors({"host": "bad host", "port": 514})) == {"config.host"}
    assert set(config_errors({"host": "127.0.0.1", "port": True})) == {"config.port"}
    assert set(config_errors({"port": 514, "colour": "red"})) == {"config.host", "config.colour"}


# -- helpers for delivery ----------------------------------------------------------------------


def stored(n: int, tenant: str = "acme", **overrides: Any) -> StoredEvent:
    p = prepare_event(event(n, **overrides), tenant, RECEIVED_AT + n)
    return StoredEvent(
        seq=n, occurred_at=p.occurred_at, leaf_hash=p.leaf_hash, leaf_data=p.leaf_data
    )


def batch(events: list[StoredEvent], tenant: str = "acme") -> Batch:
    return Batch(tenant_id=1, tenant_slug=tenant, destination_id="dst_syslog", events=events)


def varied(first: int, last: int) -> list[StoredEvent]:
    """Events with every severity, characters that need escaping, non-ASCII, a big one."""
    out = []
    for n in range(first, last + 1):
        kind = n % 5
        if kind == 0:
            out.append(stored(n, outcome="failure", reason="denied"))
        elif kind == 1:
            out.append(stored(n, category="security"))
        elif kind == 2:
            actor = {"id": 'ev"il]\\\u00fc\u20ac\U0001f600', "type": "user", "name": "Zo\u00eb"}
            out.append(stored(n, category="error", actor=actor))
        elif kind == 3:
            out.append(stored(n, metadata={"blob": "\u00e9" * 7000}))  # ~14 KiB of JSON
        else:
            out.append(stored(n, action="document.shared.with_an_external_collaborator"))
    return out


def make_sender(port: int, *, guard: NetGuard = LOOPBACK, **config: Any) -> SyslogSender:
    checked = KIND.check_config({"host": "127.0.0.1", "port": port, **config}, guard)
    ctx = SenderContext(guard=guard, timeout=2.0, hostname="auditkeep-test")
    return KIND.make_sender(checked, Secrets(), ctx)


def check_received(
    rsyslog: Rsyslog, events: list[StoredEvent], tenant: str = "acme", timeout: float = 10.0
) -> None:
    """rsyslog wrote exactly these events, in order, as valid RFC 5424 with their content,
    and its own parser read the same header fields."""
    raw, fields = rsyslog.wait_for(len(events), timeout)
    assert len(raw) == len(fields) == len(events)
    for line, parsed_by_rsyslog, ev in zip(raw, fields, events, strict=True):
        msg = parse_message(line)
        check_message(msg, ev.to_json(), tenant=tenant)
        expected = b"\t".join(
            [
                str(msg.pri).encode(),
                msg.hostname.encode(),
                msg.app_name.encode(),
                msg.procid.encode(),
                msg.msgid.encode(),
                msg.sd_raw,
            ]
        )
        assert parsed_by_rsyslog == expected


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path / "rsyslog")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


# -- against rsyslog over TCP ------------------------------------------------------------------


@requires_rsyslog
def test_tcp_batches_arrive_in_order(rsyslog: Rsyslog) -> None:
    sender = make_sender(rsyslog.port)
    try:
        events = varied(1, 30)
        sender.send(batch(events[:1]))
        first_connection = sender._sock
        assert first_connection is not None
        sender.send(batch(events[1:10]))
        sender.send(batch(events[10:]))
        assert sender._sock is first_connection  # one connection, kept open
        check_received(rsyslog, events)
    finally:
        sender.close()


@requires_rsyslog
def test_receiver_down_then_up(tmp_path: Path) -> None:
    server = Rsyslog(tmp_path / "rsyslog")
    server.start()
    sender = make_sender(server.port)
    try:
        events = varied(1, 9)
        sender.send(batch(events[:3]))
        server.wait_for(3)
        server.stop()
        # the closed connection is noticed before writing, so the batch is not written into a
        # dead connection (which would "succeed"); the reconnect is refused
        with pytest.raises(DeliveryFailed, match=r"cannot connect to syslog receiver .*refused"):
            sender.send(batch(events[3:6]))
        with pytest.raises(DeliveryFailed, match="refused"):
            sender.send(batch(events[3:6]))
        server.start()
        sender.send(batch(events[3:6]))  # the dispatcher's retry: the same batch
        # Wait until rsyslog has written it: a receiver stopped right after a send drops what
        # is still in its socket buffer although the send succeeded (no acknowledgement in
        # syslog over TCP; see the module docstring). With that, a receiver restart between
        # two batches loses nothing: the closed connection is noticed and replaced.
        server.wait_for(6)
        server.stop()
        server.start()
        sender.send(batch(events[6:]))
        check_received(server, events)
    finally:
        sender.close()
        server.stop()


def test_never_up_and_timeout() -> None:
    port = free_port()
    sender = make_sender(port)
    with pytest.raises(DeliveryFailed, match="refused"):
        sender.send(batch([stored(1)]))
    # a receiver that accepts but never reads: sendall times out, the connection is dropped
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        checked = KIND.check_config(
            {"host": "127.0.0.1", "port": listener.getsockname()[1]}, LOOPBACK
        )
        ctx = SenderContext(guard=LOOPBACK, timeout=0.3, hostname="h")
        sender = KIND.make_sender(checked, Secrets(), ctx)
        big = stored(1, metadata={"blob": "x" * 15000})
        with pytest.raises(DeliveryFailed, match=r"did not take the batch within 0\.3 s"):
            sender.send(batch([big] * 1500))
        assert sender._sock is None
        sender.close()


def test_netguard_refuses_loopback() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        errors = config_errors({"host": "127.0.0.1", "port": port}, NetGuard())
        assert set(errors) == {"config.host"}
        assert "delivery_allow_networks" in errors["config.host"]
        config = KIND.check_config({"host": "127.0.0.1", "port": port}, LOOPBACK)
        # allowed when the destination was saved, no longer when sending: not even a connect
        sender = KIND.make_sender(config, Secrets(), SenderContext(guard=NetGuard()))
        with pytest.raises(DeliveryFailed, match=r"not connecting .*loopback"):
            sender.send(batch([stored(1)]))
        assert select.select([listener], [], [], 0.05)[0] == []  # no connection was made
        sender.close()


# -- against rsyslog over TLS ------------------------------------------------------------------


@pytest.fixture
def rsyslog_tls(tmp_path: Path, tls_files: TlsFiles) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path / "rsyslog-tls", tls=tls_files)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@requires_rsyslog_tls
def test_tls_verified_delivery(rsyslog_tls: Rsyslog, tls_files: TlsFiles) -> None:
    events = varied(1, 12)
    # the certificate names localhost and 127.0.0.1: by default the host is the name checked
    by_ip = make_sender(rsyslog_tls.port, tls=True, ca_pem=tls_files.ca_cert.read_text())
    by_name = make_sender(
        rsyslog_tls.port, tls=True, ca_pem=tls_files.ca_cert.read_text(), server_name="localhost"
    )
    try:
        by_ip.send(batch(events[:3]))
        connection = by_ip._sock
        rsyslog_tls.wait_for(3)  # (with TLS 1.3 the receiver has sent session tickets by now)
        by_ip.send(batch(events[3:5]))
        assert by_ip._sock is connection  # kept open
        rsyslog_tls.wait_for(5)
        by_name.send(batch(events[5:]))
        check_received(rsyslog_tls, events)
    finally:
        by_ip.close()
        by_name.close()


@requires_rsyslog_tls
def test_tls_refuses_unverified_receiver(
    rsyslog_tls: Rsyslog, tls_files: TlsFiles, tmp_path: Path
) -> None:
    other_ca = make_tls_files(tmp_path / "other", ca_name="other-ca").ca_cert
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ca_pem": other_ca.read_text()}, "TLS certificate not accepted"),
        (
            {"ca_pem": tls_files.ca_cert.read_text(), "server_name": "syslog.example.com"},
            "[Hh]ostname mismatch",
        ),
        ({}, "TLS certificate not accepted"),  # the system CAs
    ]
    for config, message in cases:
        sender = make_sender(rsyslog_tls.port, tls=True, **config)
        with pytest.raises(DeliveryFailed, match=message):
            sender.send(batch([stored(1)]))
        assert sender._sock is None
        sender.close()
    # nothing got through as an event
    assert rsyslog_tls.lines() == []
