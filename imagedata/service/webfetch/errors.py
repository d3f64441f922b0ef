"""Why a web download failed, each reason a domain error whose message names it.

Every message that mentions a URL shows it through ``redact_url``: credentials and
token-like query values never reach a log line, a task message or an error body.
"""
from __future__ import annotations

from imagedata.errors import ImageDataError


class FetchError(ImageDataError):
    """The image data could not be fetched from the URL."""

    status, title = 502, "Bad Gateway"


class URLRefused(FetchError):
    """The URL is not one the service may fetch (SSRF rules)."""

    status, title = 400, "Bad Request"

    def __init__(self, message: str, rule: str, why: str):
        super().__init__(message)
        self.rule = rule  # scheme, port, host, address, allowed-hosts, syntax
        self.why = why  # the rule's reason alone, to be quoted in a longer message


class HostNotFound(FetchError):
    """The URL's host name does not resolve."""

    status, title = 400, "Bad Request"


class RemoteHTTPError(FetchError):
    """The web server answered with an error status."""

    def __init__(self, message: str, http_status: int):
        super().__init__(message)
        self.http_status = http_status


class TooManyRedirects(FetchError):
    """The URL redirected more times than allowed."""


class SourceTooLarge(FetchError):
    """The data at the URL is larger than the service may store."""

    status, title = 413, "Request Entity Too Large"


class IdleTimeout(FetchError):
    """The web server sent nothing for too long."""

    status, title = 504, "Gateway Timeout"


class ConnectionLost(FetchError):
    """The connection kept failing; the retries are spent."""


class SourceCut(FetchError):
    """The download was stopped from outside (its import lost the image): not the server's doing."""


class TLSFailed(FetchError):
    """The TLS handshake failed, typically an unverifiable certificate."""


class SourceRestarted(FetchError):
    """The data must be read again from byte 0; the stream is already positioned there.

    Not a failure: the caller discards what it kept (digests, partial data) and reads on.
    ``reason`` says why (a changed ETag or Last-Modified, a server that ignores Range).
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class SourceUnstable(FetchError):
    """The data at the URL changed too many times while it was being read."""
