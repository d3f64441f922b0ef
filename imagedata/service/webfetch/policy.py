"""Which URLs a web download may fetch: one resolution, every address checked, one target.

``FetchPolicy.check(url)`` reads the URL, resolves its host once and checks every address
the name resolved to; the returned ``Target`` carries exactly those addresses, and the
connection is made to one of them (never to a second answer of the resolver). Each hop of a
redirect and each reconnection goes through ``check`` again.
"""
from __future__ import annotations

import base64
import dataclasses
import ipaddress
import socket
import ssl
from typing import Callable
from urllib.parse import quote, unquote, urlsplit

from imagedata.config import AllowedHost, Settings
from imagedata.service.webfetch.addresses import IPAddress, parse_host, refusal
from imagedata.service.webfetch.errors import HostNotFound, URLRefused
from imagedata.service.webfetch.redact import redact_url

DEFAULT_PORTS = {"http": 80, "https": 443}
PRINTABLE = "".join(map(chr, range(33, 127)))  # sent as they are; other characters percent-encoded (UTF-8)
Resolver = Callable[[str, int], list]


def resolve(name: str, port: int) -> list[str]:
    """The addresses ``name`` resolves to for a TCP connection, in the resolver's order."""
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


@dataclasses.dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (only these addresses) and what to ask for."""

    url: str  # the URL as given (may hold credentials: never log it; see ``shown``)
    scheme: str
    host: str  # the name (or address) sent as Host and TLS server name
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple  # the checked addresses, in the resolver's order
    authorization: str | None = dataclasses.field(default=None, repr=False)

    @property
    def origin(self) -> tuple:
        """Scheme, host and port: credentials are sent only while this stays the same."""
        return self.scheme, self.host, self.port

    @property
    def shown(self) -> str:
        """The URL as it may appear in messages."""
        return redact_url(self.url)


@dataclasses.dataclass(frozen=True)
class FetchPolicy:
    """The SSRF rules of web-download, and the TLS trust it uses.

    Without ``allowed_hosts``: schemes in ``schemes``, ports in ``ports``, and only globally
    routable addresses. With ``allowed_hosts``: only the hosts and networks listed, whether
    internal or not. ``resolver`` is injectable for tests (name, port -> address strings).
    """

    schemes: tuple = ("http", "https")
    ports: tuple = (80, 443)
    allowed_hosts: tuple = ()  # AllowedHost entries
    resolver: Resolver = resolve
    max_redirects: int = 5
    tls_context: ssl.SSLContext | None = None  # None: the system's CAs, hostnames checked

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> FetchPolicy:
        """The policy the service's settings describe."""
        values = dict(ports=settings.web_download_allowed_ports, allowed_hosts=settings.web_download_allowed_hosts)
        values.update(overrides)
        return cls(**values)

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for https URLs: certificates verified by default."""
        return self.tls_context or _default_context()

    def check(self, url: str) -> Target:
        """Check ``url`` and resolve its host once; raises URLRefused naming the rule."""
        shown = redact_url(url)
        scheme, host, port, path, authorization = _read_url(url, shown, self.schemes)
        if self.allowed_hosts:
            addresses = self._check_listed(shown, host, port)
        else:
            addresses = self._check_public(shown, host, port)
        return Target(url, scheme, str(host), port, path, tuple(addresses), authorization)

    def _check_public(self, shown: str, host: IPAddress | str, port: int) -> list:
        if port not in self.ports:
            raise _refused(shown, f"the port {port} is not allowed (allowed: {', '.join(map(str, self.ports))}; "
                                  "see IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS)", "port")
        addresses = self._addresses(shown, host, port)
        for address in addresses:
            why = refusal(address)
            if why:
                subject = f"{address} is" if address == host else f"{host} resolves to {address}, which is"
                raise _refused(shown, f"{subject} {why}; only globally routable addresses may be fetched",
                               "address")
        return addresses

    def _check_listed(self, shown: str, host: IPAddress | str, port: int) -> list:
        def port_fits(entry: AllowedHost) -> bool:
            return port == entry.port if entry.port is not None else port in self.ports

        if any(entry.name == host and port_fits(entry) for entry in self.allowed_hosts):
            return self._addresses(shown, host, port)
        networks = [entry.network for entry in self.allowed_hosts if entry.network is not None and port_fits(entry)]
        if networks:
            addresses = self._addresses(shown, host, port)
            if all(any(address in net for net in networks) for address in addresses):
                return addresses
        where = f"[{host}]:{port}" if isinstance(host, ipaddress.IPv6Address) else f"{host}:{port}"
        raise _refused(shown, f"{where} is not in IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS, the only hosts "
                              "this service may fetch from", "allowed-hosts")

    def _addresses(self, shown: str, host: IPAddress | str, port: int) -> list:
        if not isinstance(host, str):
            return [host]
        try:
            answers = self.resolver(host, port)
            addresses = [ipaddress.ip_address(answer) for answer in answers]
        except (OSError, UnicodeError, ValueError) as exc:
            raise HostNotFound(f"The host name {host!r} of {shown} does not resolve "
                               f"({getattr(exc, 'strerror', None) or exc}).") from None
        if not addresses:
            raise HostNotFound(f"The host name {host!r} of {shown} resolves to no address.")
        return addresses


def _refused(shown: str, why: str, rule: str) -> URLRefused:
    return URLRefused(f"The URL {shown} is refused: {why}.", rule, why)


def _read_url(url: str, shown: str, schemes: tuple) -> tuple:
    """Scheme, host, port, request path and Basic credentials of ``url``."""
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise _refused(shown, "it contains spaces or control characters", "syntax")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refused(shown, f"it cannot be read ({exc})", "syntax") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise _refused(shown, f"the scheme {scheme or '(none)'!r} is not allowed (allowed: {', '.join(schemes)})",
                       "scheme")
    try:
        host = parse_host(parts.hostname or "")
    except ValueError as exc:
        raise _refused(shown, str(exc), "host") from None
    if port is None:
        port = DEFAULT_PORTS.get(scheme, 0)
    path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=PRINTABLE)
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return scheme, host, port, path, authorization


_CONTEXT: list = []


def _default_context() -> ssl.SSLContext:
    if not _CONTEXT:  # loading the system CA store costs ~20 ms: once per process
        _CONTEXT.append(ssl.create_default_context())
    return _CONTEXT[0]
