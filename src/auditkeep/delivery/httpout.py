"""Outbound HTTP for delivery: a client that connects only to checked addresses, and one POST
of a batch with the outcome mapped for the dispatcher.

Shared by the HTTP-based kinds (webhook, Splunk HEC, S3). Every new connection resolves the
host once, through the NetGuard, and connects to an address that check permitted
(:class:`GuardedTransport`): a DNS answer that changes after the destination was created, or
between a check and a connection (DNS rebinding), cannot reach an internal address. TLS still
verifies the certificate for the URL's host name (SNI too), and the Host header is the URL's.
Redirects are not followed, and proxies from the environment (HTTP_PROXY, ...) are not used:
a proxy would connect to addresses the guard never saw.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Iterable, Mapping

import httpcore
import httpx

from auditkeep.delivery.base import DeliveryFailed, SenderContext
from auditkeep.delivery.netguard import BlockedAddress, NetGuard

USER_AGENT = "auditkeep-delivery/1"
MAX_ANSWER = 64 * 1024  # bytes of a receiver's answer that are read


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to addresses the NetGuard permitted: the
    host is resolved once per connection, by the guard, and the socket is opened to one of
    the returned addresses (never to the name, which a second lookup could resolve to
    something else). Raises BlockedAddress when the guard refuses."""

    def __init__(self, guard: NetGuard) -> None:
        self.guard = guard
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.guard.check_host(host, port)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in dict.fromkeys(addresses):  # getaddrinfo repeats addresses
            try:
                return self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next address, as a connection by name would
        raise failure or httpcore.ConnectError(f"{host!r} has no address")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("delivery does not connect to Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport (TLS, HTTP/1.1, keep-alive, error mapping) over a connection
    pool whose connections go through :class:`GuardedBackend`."""

    def __init__(self, guard: NetGuard, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify)
        # (the only way httpx 0.28+ takes a network backend: the pool it would have made,
        # with ours; tests/delivery/test_rebinding.py holds this to the connections made.
        # SSL_CERT_FILE / SSL_CERT_DIR are honoured, as by httpx's own transport.)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            network_backend=GuardedBackend(guard),
        )


def guarded_client(
    ctx: SenderContext, *, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """The HTTP client of a delivery sender: checked addresses only (``transport`` replaces
    that in tests that fake the receiver), no redirects, no proxies, the receiver timeout."""
    return httpx.Client(
        timeout=ctx.timeout,
        follow_redirects=False,
        trust_env=False,
        transport=transport or GuardedTransport(ctx.guard),
    )


def post(
    client: httpx.Client,
    guard: NetGuard,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> httpx.Response:
    """POST; return the 2xx response, or raise DeliveryFailed saying what went wrong. The
    client (:func:`guarded_client`) checks the address of every connection it opens."""
    try:
        guard.check_scheme(url)
    except BlockedAddress as exc:
        raise DeliveryFailed(f"refused to connect: {exc}") from None
    deadline = time.monotonic() + deadline_seconds(client)
    try:
        with client.stream(
            "POST", url, content=body, headers={"User-Agent": USER_AGENT, **headers}
        ) as response:
            # read at most MAX_ANSWER bytes, within the deadline: a receiver that answers
            # without end, or a byte at a time, must not hold a worker (or the lease)
            answer = bytearray()
            for chunk in response.iter_bytes():
                answer += chunk
                if len(answer) >= MAX_ANSWER:
                    break
                if time.monotonic() > deadline:
                    raise DeliveryFailed("the receiver's answer took too long to arrive")
            response._content = bytes(answer[:MAX_ANSWER])  # what .text and .json() read
    except BlockedAddress as exc:
        raise DeliveryFailed(f"refused to connect: {exc}") from None
    except httpx.TimeoutException as exc:
        raise DeliveryFailed(f"timed out: {type(exc).__name__}") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"cannot reach the receiver: {exc}") from None
    if response.is_success:
        return response
    snippet = response.text[:200].strip().replace("\n", " ")
    raise DeliveryFailed(
        f"the receiver answered {response.status_code}" + (f": {snippet}" if snippet else ""),
        status=response.status_code,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
    )


def deadline_seconds(client: httpx.Client) -> float:
    """The longest reading a whole answer may take: twice the client's read timeout."""
    read = client.timeout.read
    return 2 * (read if read is not None else 10.0)
