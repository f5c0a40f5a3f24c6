"""Syslog destinations: RFC 5424 messages over TCP (RFC 6587) or TLS (RFC 5425).

Each event is one RFC 5424 message::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [auditkeep@32473 tenant="acme" seq="7"
        id="evt-1" actor="user_42" outcome="success"] BOM{"action":"user.login",...}

* PRI is ``facility * 8 + severity``. The facility is configured (default 13, "log audit");
  the severity comes from the event, the most severe that applies: category ``error`` ->
  err (3), outcome ``failure`` -> warning (4), category ``security`` -> notice (5), anything
  else -> informational (6).
* TIMESTAMP is the event's ``occurred_at`` in UTC with microseconds (``...T10:00:00.250000Z``),
  not the time of sending; HOSTNAME is the configured ``hostname`` (default: this server's
  name), APP-NAME the configured ``app_name`` (default ``auditkeep``), PROCID is ``-`` and MSGID
  is the event's action (its first 32 characters, RFC 5424's limit).
* The structured data element ``auditkeep@32473`` carries the tenant, seq, event id, actor id and
  outcome, so a receiver can filter without parsing the message body. (32473 is the private
  enterprise number that RFC 5612 reserves for documentation; values are escaped as RFC 5424
  section 6.3.3 says: ``"``, ``\\`` and ``]`` get a backslash.)
* MSG is a UTF-8 byte order mark followed by the event object exactly as the API returns it
  (the stored event plus ``seq`` and ``hash``), as compact JSON on one line.

Messages are framed by octet counting (``LEN SP MSG``, RFC 6587 section 3.4.1, the only framing
RFC 5425 allows over TLS), so an event may contain any character. One connection is kept open
and reused; it is checked before each batch (a receiver never sends anything, so a readable
socket means it closed or reset the connection) and replaced after any error. Every new
connection is checked by the delivery network guard first. TLS verifies the receiver's
certificate against ``ca_pem`` (default: the system CAs) and ``server_name`` (default: the
host); TLS 1.2 is the minimum. Client certificates (mutual TLS) are not supported.

Delivery is at least once, and weaker than for the HTTP kinds. Syslog over TCP has no
acknowledgement at the application level: ``send`` returns when the whole batch has been
handed to the kernel, which means the receiver's TCP stack has (or will have) the bytes, not
that the receiver has parsed or stored them. If the receiver crashes or drops the connection
after that, the batch is lost without an error (the stale-connection check before each batch
narrows that window but cannot close it). If a send fails halfway, the dispatcher retries the
whole batch, so the receiver may see some events twice (deduplicate by the event id or the
``seq`` in the structured data). RELP (Reliable Event Logging Protocol) would give per-message
acknowledgements; it is not implemented.

Receivers must accept messages as large as the largest event: metadata alone may be 16 KiB,
and with 20 targets, a long reason and user agent an event can approach 40 KiB. rsyslog's
default ``maxMessageSize`` is 8 KiB and it truncates longer messages, so set e.g.
``global(maxMessageSize="64k")``. Control characters are sent as they are inside SD-PARAM
values (RFC 5424 allows them); rsyslog by default shows them as ``#ooo`` escapes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import ssl
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from auditkeep.delivery.base import Batch, DeliveryFailed, Kind, Secrets, SenderContext
from auditkeep.delivery.netguard import BlockedAddress, IPAddress, NetGuard
from auditkeep_client.schema import format_timestamp, parse_timestamp

SD_ID = "auditkeep@32473"
BOM = b"\xef\xbb\xbf"
NILVALUE = "-"

FACILITY_LOG_AUDIT = 13
SEVERITY_ERR = 3
SEVERITY_WARNING = 4
SEVERITY_NOTICE = 5
SEVERITY_INFO = 6

# RFC 5424 section 6: header field lengths
MAX_HOSTNAME = 255
MAX_APP_NAME = 48
MAX_MSGID = 32
MAX_SERVER_NAME = 253


def severity(event: Mapping[str, Any]) -> int:
    """The syslog severity of an event (see the module docstring)."""
    if event.get("category") == "error":
        return SEVERITY_ERR
    if event.get("outcome") == "failure":
        return SEVERITY_WARNING
    if event.get("category") == "security":
        return SEVERITY_NOTICE
    return SEVERITY_INFO


def is_printable_ascii(value: str) -> bool:
    """PRINTUSASCII of RFC 5424: characters 33-126 (no space, no control characters)."""
    return bool(value) and all("!" <= c <= "~" for c in value)


def header_field(value: object, limit: int) -> str:
    """A header field: printable ASCII only, at most ``limit`` characters, ``-`` when empty."""
    if not isinstance(value, str):
        return NILVALUE
    text = "".join(c for c in value if "!" <= c <= "~")[:limit]
    return text or NILVALUE


def param_value(value: object) -> str:
    """An SD-PARAM value, escaped as RFC 5424 section 6.3.3 says."""
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def timestamp(value: object) -> str:
    """The TIMESTAMP field: an RFC 3339 time in UTC with microseconds, or ``-``."""
    if not isinstance(value, str):
        return NILVALUE
    try:
        return format_timestamp(parse_timestamp(value))
    except (ValueError, OverflowError, OSError):
        return NILVALUE


def format_message(
    event_json: dict[str, Any], *, tenant: str, facility: int, hostname: str, app_name: str
) -> bytes:
    """One event (the API object: stored event plus ``seq`` and ``hash``) as an RFC 5424
    message, without framing."""
    if not 0 <= facility <= 23:
        raise ValueError(f"facility must be 0-23, not {facility}")
    pri = facility * 8 + severity(event_json)
    actor = event_json.get("actor")
    params: list[tuple[str, object]] = [
        ("tenant", tenant),
        ("seq", event_json.get("seq")),
        ("id", event_json.get("id")),
        ("actor", actor.get("id") if isinstance(actor, dict) else None),
        ("outcome", event_json.get("outcome")),
    ]
    sd = (
        "["
        + SD_ID
        + "".join(f' {name}="{param_value(v)}"' for name, v in params if v is not None)
        + "]"
    )
    header = " ".join(
        (
            f"<{pri}>1",
            timestamp(event_json.get("occurred_at")),
            header_field(hostname, MAX_HOSTNAME),
            header_field(app_name, MAX_APP_NAME),
            NILVALUE,  # PROCID
            header_field(event_json.get("action"), MAX_MSGID),
            sd,
        )
    )
    # errors="replace": SD-PARAM values must be valid UTF-8, even if a string held a lone
    # surrogate (stored events cannot; the schema rejects them).
    return header.encode("utf-8", errors="replace") + b" " + BOM + orjson.dumps(event_json)


def frame(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode("ascii") + b" " + message


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the receiver has closed (or reset) an idle connection.

    Syslog receivers never send application data, so a readable socket means end of file or
    an error; with TLS it may also be post-handshake records (TLS 1.3 session tickets), which a
    non-blocking read consumes without returning data.
    """
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        data = sock.recv(4096)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return not data


MAX_CA_PEM = 65536


class SyslogSender:
    """Sends batches to one syslog receiver over one kept-open connection."""

    def __init__(self, config: Mapping[str, Any], ctx: SenderContext) -> None:
        self.host: str = config["host"]
        self.port: int = config["port"]
        self.tls: bool = bool(config.get("tls", False))
        self.ca_pem: str | None = config.get("ca_pem")
        self.server_name: str = config.get("server_name") or self.host
        self.facility: int = config.get("facility", FACILITY_LOG_AUDIT)
        self.app_name: str = config.get("app_name") or "auditkeep"
        self.hostname: str = config.get("hostname") or ctx.hostname
        self.guard = ctx.guard
        self.timeout = ctx.timeout
        self._ssl_context: ssl.SSLContext | None = None
        self._sock: socket.socket | None = None

    @property
    def where(self) -> str:
        return f"syslog{'+tls' if self.tls else ''} receiver {self.host}:{self.port}"

    def encode(self, batch: Batch) -> bytes:
        return b"".join(
            frame(
                format_message(
                    ev.to_json(),
                    tenant=batch.tenant_slug,
                    facility=self.facility,
                    hostname=self.hostname,
                    app_name=self.app_name,
                )
            )
            for ev in batch.events
        )

    def send(self, batch: Batch) -> None:
        if not batch.events:
            return
        payload = self.encode(batch)
        sock = self._connection()
        try:
            sock.sendall(payload)
        except TimeoutError as exc:
            self.close()
            raise DeliveryFailed(
                f"{self.where} did not take the batch within {self.timeout:g} s "
                "(connection closed; part of the batch may have been received)"
            ) from exc
        except OSError as exc:
            self.close()
            raise DeliveryFailed(
                f"sending to {self.where} failed: {exc} "
                "(connection closed; part of the batch may have been received)"
            ) from exc

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if isinstance(sock, ssl.SSLSocket):
            # send close_notify without waiting for the receiver's (so it sees a clean end)
            with contextlib.suppress(OSError, ValueError):
                sock.setblocking(False)
                sock.unwrap()
        with contextlib.suppress(OSError):
            sock.close()

    # -- connections ----------------------------------------------------------------------

    def _connection(self) -> socket.socket:
        if self._sock is not None and _peer_closed(self._sock):
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        return self._sock

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            try:
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca_pem)
            except (OSError, ValueError) as exc:
                raise DeliveryFailed(f"cannot load ca_pem for {self.where}: {exc}") from exc
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._ssl_context = context
        return self._ssl_context

    def _connect(self) -> socket.socket:
        try:
            addresses = self.guard.check_host(self.host, self.port)
        except BlockedAddress as exc:
            raise DeliveryFailed(f"not connecting to {self.where}: {exc}") from exc
        context = self._context() if self.tls else None
        problems: list[str] = []
        for address in dict.fromkeys(addresses):  # getaddrinfo repeats addresses
            try:
                return self._connect_to(address, context)
            except TimeoutError:
                problems.append(f"{address}: timed out after {self.timeout:g} s")
            except ssl.SSLCertVerificationError as exc:
                problems.append(f"{address}: TLS certificate not accepted: {exc.verify_message}")
            except OSError as exc:
                problems.append(f"{address}: {exc}")
        raise DeliveryFailed(f"cannot connect to {self.where}: " + "; ".join(problems))

    def _connect_to(self, address: IPAddress, context: ssl.SSLContext | None) -> socket.socket:
        family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.connect((str(address), self.port))
            if context is not None:
                # the handshake (and certificate check) happens here
                return context.wrap_socket(sock, server_hostname=self.server_name)
            return sock
        except BaseException:
            sock.close()
            raise


class SyslogKind(Kind):
    name = "syslog"
    fields: ClassVar[Mapping[str, tuple[type, bool, str]]] = {
        "host": (str, True, "Receiver host name or address."),
        "port": (int, True, "Receiver TCP port (commonly 514 for TCP, 6514 for TLS)."),
        "tls": (bool, False, "Use TLS (RFC 5425); default false (plain TCP, RFC 6587)."),
        "ca_pem": (
            str,
            False,
            "PEM text of the CA certificate(s) that sign the receiver's certificate (default: "
            "the system CAs). Needs tls. (Given as text, not a path: a tenant has no business "
            "naming files on the server.)",
        ),
        "server_name": (
            str,
            False,
            "Name the receiver's certificate must carry, also sent as SNI (default: host). "
            "Needs tls.",
        ),
        "facility": (int, False, "Syslog facility 0-23 (default 13, log audit)."),
        "app_name": (
            str,
            False,
            "APP-NAME header field, 1-48 printable ASCII (default auditkeep).",
        ),
        "hostname": (
            str,
            False,
            "HOSTNAME header field, 1-255 printable ASCII (default: this server's hostname).",
        ),
    }

    def check_values(self, config: dict[str, Any], guard: NetGuard) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []

        def error(key: str, message: str) -> None:
            errors.append({"path": f"config.{key}", "message": message})

        host: str = config["host"]
        port: int = config["port"]
        host_ok = 0 < len(host) <= MAX_SERVER_NAME and is_printable_ascii(host)
        if not host_ok:
            error("host", "must be a host name or IP address (1-253 printable ASCII characters)")
        port_ok = 1 <= port <= 65535
        if not port_ok:
            error("port", "must be 1-65535")
        facility = config.get("facility")
        if facility is not None and not 0 <= facility <= 23:
            error("facility", "must be 0-23 (13 is log audit)")
        app_name = config.get("app_name")
        if app_name is not None and not (
            len(app_name) <= MAX_APP_NAME and is_printable_ascii(app_name)
        ):
            error("app_name", "must be 1-48 printable ASCII characters, without spaces")
        hostname = config.get("hostname")
        if hostname is not None and not (
            len(hostname) <= MAX_HOSTNAME and is_printable_ascii(hostname)
        ):
            error("hostname", "must be 1-255 printable ASCII characters, without spaces")
        tls = config.get("tls", False)
        server_name = config.get("server_name")
        if server_name is not None:
            if not tls:
                error("server_name", "only used with tls: true")
            elif not (len(server_name) <= MAX_SERVER_NAME and is_printable_ascii(server_name)):
                error("server_name", "must be a host name (1-253 printable ASCII characters)")
        ca_pem = config.get("ca_pem")
        if ca_pem is not None:
            if not tls:
                error("ca_pem", "only used with tls: true")
            elif len(ca_pem) > MAX_CA_PEM:
                error("ca_pem", f"at most {MAX_CA_PEM} characters")
            else:
                try:
                    ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
                except (OSError, ValueError, ssl.SSLError):
                    error("ca_pem", "is not PEM text of one or more CA certificates")
        if host_ok and port_ok:
            try:
                guard.check_host(host, port)
            except BlockedAddress as exc:
                error("host", str(exc))
        return errors

    def make_sender(
        self, config: Mapping[str, Any], secrets: Secrets, ctx: SenderContext
    ) -> SyslogSender:
        return SyslogSender(config, ctx)
