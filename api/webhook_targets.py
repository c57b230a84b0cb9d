"""Where a webhook may be delivered: public addresses only, unless the operator allows a network.

A webhook URL is the producer's, but the worker that POSTs to it sits inside the network, so a
URL naming ``169.254.169.254`` (cloud metadata), ``localhost:6379`` or ``10.0.0.1`` would make
it a proxy into places the producer cannot reach. ``WebhookTargets.target`` is therefore asked
both when a job is submitted (``POST /jobs``: 422 naming ``Webhook-URL``) and at each delivery
attempt, and refuses:

- a scheme other than http/https, a URL without a host, user name or password in the URL, a
  port outside 1-65535;
- any address that is loopback, link-local, private, shared (100.64.0.0/10), reserved,
  multicast, unspecified or otherwise not globally routable, for IPv4 and IPv6 alike; an
  IPv4-mapped, 6to4, Teredo or NAT64 IPv6 address is judged by the IPv4 address inside it.
  Numeric hosts in any spelling ``inet_aton`` reads (``127.1``, ``2130706433``,
  ``0x7f.0.0.1``, ``0177.0.0.1``) are read as the address they spell; a name is resolved and
  refused when any of its addresses is;

unless an address lies in a network of ``KMOP_WEBHOOK_ALLOWED_NETWORKS`` (comma-separated CIDR
networks, e.g. ``10.20.0.0/16,127.0.0.1/32``; empty by default). The delivery connects to the
very address that was checked (``WebhookTarget.connect_url``, with the URL's host in ``Host``
and as the TLS server name), so a name that resolves to a public address when checked and to
an internal one a moment later (DNS rebinding) gains nothing; redirects are never followed and
no proxy from the environment is used. See docs/webhooks.md.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from kmop.settings import SettingsError

ALLOWED_NETWORKS_ENV = "KMOP_WEBHOOK_ALLOWED_NETWORKS"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
"""A host name and port to the addresses it resolves to (``socket.getaddrinfo`` by default)."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class WebhookTargetRefused(Exception):
    """A webhook URL that may not be delivered to; the message says why."""


class WebhookTargetUnresolved(Exception):
    """A webhook URL whose host does not resolve now (may be transient)."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookTargetUnresolved(f"{host} does not resolve: {exc}") from None
    return [str(info[4][0]) for info in infos]


def numeric_host(host: str) -> Address | None:
    """The address a numeric host spells, in any form ``inet_aton`` reads; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c in "0123456789abcdefxABCDEFX." for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: Address) -> str | None:
    """Why deliveries to ``address`` are refused, None when it is a public address."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        why = address_refusal(inner)
        return f"{why} (inside {address})" if why else None
    for name, flagged in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                          ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                          ("reserved", address.is_reserved), ("private", address.is_private)):
        if flagged:
            return f"{address} is a {name} address"
    if not address.is_global:
        return f"{address} is not a globally routable address"
    return None


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL and the address to connect to."""

    url: httpx.URL
    address: Address

    @property
    def connect_url(self) -> httpx.URL:
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        host = self.url.host
        shown = f"[{host}]" if ":" in host else host
        return shown if self.url.port is None else f"{shown}:{self.url.port}"

    @property
    def server_name(self) -> str | None:
        """The TLS server name (SNI, and the name the certificate must carry); None for an address."""
        return None if numeric_host(self.url.host) is not None else self.url.host


@dataclass(frozen=True)
class WebhookTargets:
    allowed: tuple[Network, ...] = ()
    resolve: Resolver = field(default=system_resolver)

    def is_allowed(self, address: Address) -> bool:
        candidates = [address]
        inner = _embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        return any(c.version == n.version and c in n for c in candidates for n in self.allowed)

    def parse(self, url: str) -> httpx.URL:
        """The URL, once its form is acceptable; ``WebhookTargetRefused`` otherwise."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise WebhookTargetRefused(f"is not a URL ({exc})") from None
        if parsed.scheme not in ("http", "https"):
            raise WebhookTargetRefused("must be an absolute http or https URL")
        if not parsed.host:
            raise WebhookTargetRefused("must name a host")
        if parsed.userinfo:
            raise WebhookTargetRefused("must not carry a user name or password")
        if parsed.port is not None and not 1 <= parsed.port <= 65_535:
            raise WebhookTargetRefused(f"port {parsed.port} is not between 1 and 65535")
        return parsed

    def target(self, url: str) -> WebhookTarget:
        """The URL and the checked address to deliver to; ``WebhookTargetRefused`` or
        ``WebhookTargetUnresolved`` otherwise."""
        parsed = self.parse(url)
        literal = numeric_host(parsed.host)
        if literal is not None:
            addresses: list[Address] = [literal]
        else:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            addresses = []
            for text in self.resolve(parsed.host, port):
                try:
                    addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
                except ValueError:
                    raise WebhookTargetRefused(f"{parsed.host} resolves to {text!r}, not an address") from None
            if not addresses:
                raise WebhookTargetUnresolved(f"{parsed.host} resolves to no address")
        for address in addresses:
            why = None if self.is_allowed(address) else address_refusal(address)
            if why:
                named = f"{parsed.host} resolves to {address}: " if literal is None else ""
                raise WebhookTargetRefused(f"{named}{why}; only public addresses, or networks named in "
                                           f"{ALLOWED_NETWORKS_ENV}, receive webhooks")
        return WebhookTarget(parsed, addresses[0])


def allowed_networks(env: Mapping[str, str]) -> tuple[Network, ...]:
    networks = []
    for text in (env.get(ALLOWED_NETWORKS_ENV) or "").split(","):
        if not text.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError as exc:
            raise SettingsError(f"{ALLOWED_NETWORKS_ENV}: {text.strip()!r} is not a network ({exc})") from None
    return tuple(networks)


def targets_from_env(env: Mapping[str, str] | None = None, resolve: Resolver = system_resolver) -> WebhookTargets:
    return WebhookTargets(allowed_networks(os.environ if env is None else env), resolve)
