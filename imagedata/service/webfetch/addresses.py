"""Which IP addresses a web download may connect to, and how a URL's host is read.

Only globally routable unicast addresses are fetched by default. The tables below follow
the IANA special-purpose address registries; Python's ``is_global`` is not used alone
because it calls multicast, 6to4 and NAT64 addresses global.
"""
from __future__ import annotations

import ipaddress
import re

from imagedata.config import HOST_NAME_RE

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4 = [
    ("0.0.0.0/8", "an unspecified ('this network') address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address, where cloud metadata services answer"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
]
_V6 = [
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::ffff:0:0/96", "an IPv4-mapped IPv6 address"),
    ("::/96", "an IPv4-compatible IPv6 address"),
    ("::ffff:0:0:0/96", "an IPv4-translated IPv6 address"),
    ("64:ff9b::/96", "a NAT64 address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address"),
    ("2001:db8::/32", "a documentation address"),
    ("2001::/23", "an IETF protocol assignment"),
    ("2002::/16", "a 6to4 address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique-local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
]
REFUSED_NETWORKS = tuple((ipaddress.ip_network(net), what) for net, what in _V4 + _V6)
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")

# WHATWG URL: a host whose last label is a number is an IPv4 address in some spelling.
_NUMBER_RE = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched by default (e.g. "a loopback address (127.0.0.0/8)"),
    or None for a globally routable unicast address."""
    for network, what in REFUSED_NETWORKS:
        if address.version == network.version and address in network:
            return f"{what} ({network})"
    if address.version == 6 and address not in GLOBAL_UNICAST_V6:
        return f"outside the global unicast range ({GLOBAL_UNICAST_V6})"
    if not address.is_global:
        return "not a globally routable address"
    return None


def parse_host(host: str) -> IPAddress | str:
    """An IP address, or a normalised DNS name (lower case, ASCII); ValueError says why not.

    IPv4 addresses are accepted only in the standard dotted-decimal form: decimal
    (``2130706433``), hexadecimal (``0x7f000001``), octal (``0177.0.0.1``) and short
    (``127.1``) spellings, which resolvers quietly turn into addresses, are refused.
    """
    if not host:
        raise ValueError("the URL has no host")
    if ":" in host:
        if "%" in host:
            raise ValueError("IPv6 zone identifiers are not allowed")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from None
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("the host name is not a valid internationalised name") from None
    if not HOST_NAME_RE.match(name):
        raise ValueError("the host name has characters a host name cannot have")
    if _NUMBER_RE.match(name.rstrip(".").rsplit(".", 1)[-1]):
        try:
            return ipaddress.IPv4Address(name)
        except ValueError:
            raise ValueError(f"{host!r} spells an IPv4 address in a non-standard form "
                             "(only dotted decimal such as 192.0.2.1 is accepted)") from None
    return name.rstrip(".")
