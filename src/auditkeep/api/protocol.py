"""The HTTP/1.1 connection guard: uvicorn's httptools protocol with time limits and a cap.

uvicorn alone waits forever for a client that trickles its headers or its body (h11 and
httptools have no such timeout), and accepts connections until the process runs out of file
descriptors, after which the store cannot open files and health checks fail. So every
connection gets:

- ``header_timeout``: from connecting (or from the end of the previous response on a kept-alive
  connection) to the end of the request's headers. Beyond it: ``408`` and the connection is
  closed. A connection that sends nothing is closed the same way.
- ``body_timeout``: from the end of the headers to the end of the body. Beyond it: ``408``
  (problem+json) and closed; the handler reading the body sees the client gone, and the request
  is counted as a 408. Time during which the server itself stopped reading (flow control, or a
  ``100-continue`` not yet sent) does not count against the client.
- ``max_connections``: connections beyond it are answered ``503`` (problem+json, with
  ``Retry-After``) as soon as their headers arrive, and closed (``/healthz`` is still answered:
  the process is alive); beyond it by more than ``OVERFLOW`` they are closed at once without
  reading, so descriptors never run out.

Refusals are counted in ``auditkeep_connections_refused_total{reason}``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from auditkeep.errors import PROBLEM_BASE

log = logging.getLogger("auditkeep.http")

OVERFLOW = 64
LINGER = 1.0
"""Seconds a timed-out connection stays half-closed after its 408, reading and dropping."""
"""Connections past ``max_connections`` that still get a 503 answer; past these, closed at once."""
FD_RESERVE = 256
"""Descriptors kept for the store, the delivery senders, logs and the like."""

Refused = Callable[[str], None]


def _problem(status: int, slug: str, title: str, detail: str, *headers: bytes) -> bytes:
    body = orjson.dumps(
        {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    )
    phrase = {408: b"Request Timeout", 503: b"Service Unavailable"}[status]
    head = [
        b"HTTP/1.1 %d %s" % (status, phrase),
        b"content-type: application/problem+json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def connection_limit(configured: int) -> int:
    """``configured``, lowered if the process's descriptor limit cannot hold it plus the
    overflow and a reserve. Raises the soft limit towards the hard one first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = configured + OVERFLOW + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= want:
        return configured
    fitted = max(1, soft - OVERFLOW - FD_RESERVE)
    log.warning(
        "max_connections=%d does not fit the open-file limit of %d (ulimit -n); using %d. "
        "Raise the limit (e.g. LimitNOFILE= in the systemd unit) to allow more.",
        configured,
        soft,
        fitted,
    )
    return fitted


def guarded_protocol(
    *,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    refused: Refused,
) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn (``http=``), with these limits."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None
        _lingering = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            count = len(self.connections)
            if count > max_connections + OVERFLOW:
                refused("dropped")
                transport.abort()
                return
            if count > max_connections:
                self.app = _over_capacity(self.app, max_connections, refused)
            self._arm(header_timeout, self._headers_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            self._arm(body_timeout, self._body_late)

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            cycle = self.cycle  # a pipelined request may have started: it has its headers
            if not self.transport.is_closing() and (cycle is None or cycle.response_complete):
                self._arm(header_timeout, self._headers_late)

        def _arm(self, seconds: float, fn: Callable[[], None]) -> None:
            if self._lingering:  # answered and half-closed: only the linger timer runs
                return
            self._disarm()
            if seconds > 0:
                self._timer = self.loop.call_later(seconds, fn)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _headers_late(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            refused("header_timeout")
            self.transport.write(
                _problem(
                    408,
                    "request-timeout",
                    "Request timeout",
                    f"the request line and headers did not arrive within {header_timeout:g} s "
                    "(header_timeout)",
                )
            )
            self._linger_then_close()

        def _body_late(self) -> None:
            self._timer = None
            cycle = self.cycle
            if self.transport.is_closing():
                return
            if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
                self._arm(body_timeout, self._body_late)  # the server is not reading: not late
                return
            refused("body_timeout")
            if cycle is not None and not cycle.response_started:
                cycle.scope["auditkeep.timeout"] = "body"  # type: ignore[typeddict-unknown-key]
                self.transport.write(
                    _problem(
                        408,
                        "request-timeout",
                        "Request timeout",
                        f"the request body did not arrive within {body_timeout:g} s of its "
                        "headers (body_timeout)",
                    )
                )
                cycle.disconnected = True  # the handler sees the client gone and answers no more
                cycle.message_event.set()
            self._linger_then_close()

        def _linger_then_close(self) -> None:
            """Half-close after the 408 and discard what the client still sends, for at most
            LINGER seconds or until it closes: closing a socket with unread data makes the
            kernel send a reset, which can destroy the 408 before the client reads it (the
            lingering close of Apache and nginx)."""
            self._lingering = True
            self._disarm()
            try:
                self.transport.write_eof()
            except (OSError, RuntimeError, NotImplementedError):
                self.transport.close()
                return
            self._timer = self.loop.call_later(LINGER, self.transport.close)

        def data_received(self, data: bytes) -> None:
            if not self._lingering:  # (while lingering, what arrives is read and dropped)
                super().data_received(data)

    return GuardedHttpToolsProtocol


def _over_capacity(inner: Any, max_connections: int, refused: Refused) -> Any:
    """The app of a connection past the cap: 503 and close, except for /healthz, which is
    answered as long as there is a descriptor for it (a liveness probe failing under a flood
    of connections would get a working process restarted)."""
    body = _problem(
        503,
        "unavailable",
        "Service unavailable",
        f"the server holds its limit of {max_connections} connections (max_connections); "
        "retry shortly",
        b"retry-after: 1",
    )
    head, _, payload = body.partition(b"\r\n\r\n")
    headers = [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n")[1:]]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("path") == "/healthz":
            await inner(scope, receive, send)
            return
        refused("over_capacity")
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


__all__ = ["FD_RESERVE", "OVERFLOW", "connection_limit", "guarded_protocol"]
