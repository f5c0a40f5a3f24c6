"""One outbound HTTP POST of a batch, with the outcome mapped for the dispatcher.

Shared by the HTTP-based kinds (webhook, Splunk HEC). The URL is checked by the NetGuard before
every request (a DNS answer can change after the destination was created); redirects are not
followed (a redirect to an internal address would bypass that check).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import httpx

from auditkeep.delivery.base import DeliveryFailed
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


def post(
    client: httpx.Client,
    guard: NetGuard,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> httpx.Response:
    """POST; return the 2xx response, or raise DeliveryFailed saying what went wrong."""
    try:
        guard.check_url(url)
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
