"""One GET to a checked target, over a socket connected to a checked address.

The socket is connected by address (no name lookup here), then handed to ``http.client``
with the URL's host name, which it sends as ``Host``; for https the same name is the TLS
server name and the name the certificate must match. Redirects are followed up to the
policy's limit, each hop checked like the first URL before anything connects to it.
"""
from __future__ import annotations

import dataclasses
import http.client
import socket
import ssl
from urllib.parse import urljoin

from imagedata.service.webfetch.errors import IdleTimeout, RemoteHTTPError, TLSFailed, TooManyRedirects, URLRefused
from imagedata.service.webfetch.policy import FetchPolicy, Target
from imagedata.service.webfetch.redact import redact_url

REDIRECTS = frozenset((301, 302, 303, 307, 308))


def idle_timeout(shown: str, seconds: float, doing: str) -> IdleTimeout:
    """The error for a server that sent nothing for ``seconds``."""
    return IdleTimeout(f"The web server of {shown} sent nothing for {seconds:g} seconds {doing}: the idle "
                       "timeout (IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT) expired.")


def connect(target: Target, policy: FetchPolicy, timeout: float) -> http.client.HTTPConnection:
    """A connection to the first of the target's checked addresses that answers.

    Raises OSError when none does (the caller may retry), IdleTimeout, TLSFailed.
    """
    error: OSError = OSError(f"no address to connect to for {target.host}")
    for address in target.addresses:
        sock = socket.socket(socket.AF_INET6 if address.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((str(address), target.port))
        except TimeoutError:
            sock.close()
            raise idle_timeout(target.shown, timeout, "while connecting") from None
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _http_connection(sock, target, policy, timeout)
    raise error


def _http_connection(sock: socket.socket, target: Target, policy: FetchPolicy, timeout: float):
    if target.scheme != "https":
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        conn.sock = sock
        return conn
    context = policy.ssl_context()
    try:
        sock = context.wrap_socket(sock, server_hostname=target.host)
    except TimeoutError:
        sock.close()
        raise idle_timeout(target.shown, timeout, "during the TLS handshake") from None
    except ssl.SSLError as exc:
        sock.close()
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = f"its certificate could not be verified ({exc.verify_message})"
        else:
            why = exc.reason or str(exc)
        raise TLSFailed(f"The TLS connection to {target.host}:{target.port} for {target.shown} failed: "
                        f"{why}.") from None
    conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=context)
    conn.sock = sock
    return conn


def get(url: str, policy: FetchPolicy, headers: dict, timeout: float) -> Exchange:
    """GET ``url``, following redirects; the final exchange, headers read, body not yet.

    Every hop is checked by ``policy`` before it is connected to. Raises URLRefused,
    HostNotFound, TooManyRedirects, RemoteHTTPError (a redirect without Location),
    IdleTimeout, TLSFailed; OSError or http.client.HTTPException for a failed connection.
    """
    first = target = policy.check(url)
    for hop in range(policy.max_redirects + 1):
        exchange = _get_once(target, policy, headers, timeout)
        response = exchange.response
        if response.status not in REDIRECTS:
            return exchange
        exchange.close()
        location = response.getheader("Location")
        if not location:
            raise RemoteHTTPError(f"The web server answered {response.status} {response.reason} without a "
                                  f"Location for {target.shown}.", response.status)
        if hop == policy.max_redirects:
            raise TooManyRedirects(f"The URL {redact_url(url)} redirected more than {policy.max_redirects} "
                                   f"times (the last hop was to {redact_url(urljoin(target.url, location))}).")
        target = _check_hop(policy, target, urljoin(target.url, location))
        if target.authorization is None and target.origin == first.origin:  # back home: the URL's own credentials
            target = dataclasses.replace(target, authorization=first.authorization)
    raise AssertionError("unreachable")


def _check_hop(policy: FetchPolicy, previous: Target, url: str) -> Target:
    try:
        return policy.check(url)
    except URLRefused as exc:
        raise URLRefused(f"The redirect from {previous.shown} to {redact_url(url)} is refused: {exc.why}.",
                         exc.rule, exc.why) from None


@dataclasses.dataclass
class Exchange:
    """A response with its connection (closing the connection closes both)."""

    target: Target
    conn: http.client.HTTPConnection
    response: http.client.HTTPResponse

    def close(self) -> None:
        """Close the response and its socket."""
        self.conn.close()
        self.response.close()

    def interrupt(self) -> None:
        """From another thread: shut the socket down, so that a read waiting on it returns now
        (the reading thread still closes it). Done on the plain socket under any TLS layer."""
        sock = self.conn.sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:  # already closed or never connected
                pass


def _get_once(target: Target, policy: FetchPolicy, headers: dict, timeout: float) -> Exchange:
    conn = connect(target, policy, timeout)
    if target.authorization:
        headers = {**headers, "Authorization": target.authorization}
    try:
        conn.request("GET", target.path, headers=headers)
        return Exchange(target, conn, conn.getresponse())
    except TimeoutError:
        conn.close()
        raise idle_timeout(target.shown, timeout, "before answering") from None
    except BaseException:
        conn.close()
        raise
