"""Outbound address checks for delivery (SSRF protection).

A destination is configured by a tenant, but the request is made by the server, from inside the
operator's network. So every outbound connection is checked: the host is resolved and *every*
address it resolves to must be a public unicast address, unless the operator allows private
networks (``delivery_allow_networks``, a list of CIDRs such as ``127.0.0.0/8``, or ``*`` for
any address). The check runs when a destination is created or changed (a clear error then) and
again for each new connection, and the connection goes to an address that check returned: the
name is resolved once, so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot send it elsewhere. syslog connects to the checked addresses itself; the HTTP
kinds (webhook, Splunk HEC, S3) use :class:`auditkeep.delivery.httpout.GuardedTransport`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(Exception):
    """The host resolves to an address that delivery may not connect to."""


def parse_networks(spec: str) -> tuple[bool, tuple[IPNetwork, ...]]:
    """``"127.0.0.0/8, ::1/128"`` -> networks; ``"*"`` -> allow any address."""
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if "*" in items:
        return True, ()
    nets = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a network in CIDR form (e.g. 10.0.0.0/8)") from exc
    return False, tuple(nets)


# IPv6 prefixes that carry an IPv4 address a gateway may forward to (NAT64, RFC 6052/8215) or
# that are not routable on the public internet whatever ``is_global`` says.
_NON_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "64:ff9b::/96",  # NAT64 well-known prefix: 64:ff9b::a00:5 is 10.0.0.5 behind a gateway
        "64:ff9b:1::/48",  # local-use NAT64
        "::/96",  # IPv4-compatible (deprecated): ::127.0.0.1
        "::ffff:0:0:0/96",  # SIIT translated
        "fec0::/10",  # site-local (deprecated)
    )
)


def is_public(address: IPAddress) -> bool:
    """A public unicast address: not private, loopback, link-local, multicast, reserved or
    shared, and (IPv6) not one that embeds an IPv4 address that is not public (IPv4-mapped,
    6to4, Teredo) or that a NAT64 gateway would translate."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
        if any(v4 is not None and not is_public(v4) for v4 in embedded):
            return False
        if address.ipv4_mapped is not None:
            return True  # the IPv4 address decided
        if any(address in net for net in _NON_PUBLIC_V6) or address.is_site_local:
            return False
    return bool(
        address.is_global
        and not (
            address.is_multicast
            or address.is_reserved
            or address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_unspecified
        )
    )


def _example_network(address: IPAddress) -> str:
    """The single-address network to allow ``address`` (what the error message suggests)."""
    return f"{address}/{address.max_prefixlen}"


Resolver = Callable[..., Sequence[tuple[Any, ...]]]
"""``socket.getaddrinfo``, or a stand-in with its signature (tests)."""


class NetGuard:
    """Decides whether delivery may connect to a host."""

    def __init__(
        self,
        allow: Iterable[IPNetwork] = (),
        *,
        allow_any: bool = False,
        resolve: Resolver | None = None,
    ) -> None:
        self.allow = tuple(allow)
        self.allow_any = allow_any
        self._resolve = resolve or socket.getaddrinfo

    @classmethod
    def from_setting(cls, spec: str) -> NetGuard:
        allow_any, nets = parse_networks(spec)
        return cls(nets, allow_any=allow_any)

    def permitted(self, address: IPAddress) -> bool:
        if self.allow_any or any(address in net for net in self.allow):
            return True
        return is_public(address)

    def check_host(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` (once); raise BlockedAddress unless every address is permitted.
        Connect only to the addresses returned, never to ``host`` by name."""
        if not host:
            raise BlockedAddress("the URL has no host")
        try:
            infos = self._resolve(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise BlockedAddress(f"cannot resolve {host!r}: {exc}") from exc
        addresses: list[IPAddress] = []
        for info in infos:
            raw = str(info[4][0]).split("%", 1)[0]
            addresses.append(ipaddress.ip_address(raw))
        for address in addresses:
            if not self.permitted(address):
                raise BlockedAddress(
                    f"{host!r} resolves to {address}, a private, loopback or reserved address; "
                    "delivery only connects to public addresses unless the server's operator "
                    f"allows the network: setting delivery_allow_networks, e.g. "
                    f"--delivery-allow-networks {_example_network(address)} or "
                    f"AUDITKEEP_DELIVERY_ALLOW_NETWORKS={_example_network(address)}, and "
                    "restart the server"
                )
        return addresses

    def check_url(self, url: str, *, schemes: tuple[str, ...] = ("https", "http")) -> None:
        """:meth:`check_scheme`, then :meth:`check_host` on the URL's host and port."""
        host, port = self.check_scheme(url, schemes=schemes)
        self.check_host(host, port)

    def check_scheme(
        self, url: str, *, schemes: tuple[str, ...] = ("https", "http")
    ) -> tuple[str, int]:
        """The URL's ``(host, port)``; BlockedAddress for another scheme, credentials in the
        URL, or a bad port (nothing is resolved)."""
        parts = urlsplit(url)
        if parts.scheme not in schemes:
            raise BlockedAddress(
                f"the URL must start with {' or '.join(s + '://' for s in schemes)}"
            )
        if parts.username or parts.password:
            raise BlockedAddress("put credentials in the destination's secret, not in the URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise BlockedAddress(f"the URL's port is invalid: {exc}") from exc
        return parts.hostname or "", port
