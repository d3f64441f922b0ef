"""Closing the connection after refusing a request whose body was not read.

When a PUT is refused before its body is read (415, 404, 409, an early 413...),
the unread bytes make the connection unusable for a next request. gunicorn
drops an application's ``Connection: close`` header (it is hop-by-hop) and
would answer ``keep-alive``, so clients would send their next request on a
connection the server then closes. This asks the server itself to close it (through
the server adapter) and sends ``Connection: close`` for servers that honour it, and
asks for a lingering close (``imagedata.server.linger``), so the answer is not lost to
a reset while the client is still sending.
"""
from __future__ import annotations

from imagedata.server import adapter as server_adapter
from imagedata.server.linger import request_linger


def _has_body(environ) -> bool:
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) > 0
    except ValueError:
        return True


class CloseAfterRefusedBody:
    """WSGI middleware: error responses to requests that carried a body close the connection."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if not _has_body(environ):
            return self.app(environ, start_response)

        def closing_start_response(status, headers, exc_info=None):
            if int(status.split(" ", 1)[0]) >= 400:
                server_adapter.force_close(environ, start_response)
                request_linger(environ)
                headers = [h for h in headers if h[0].lower() != "connection"] + [("Connection", "close")]
            return start_response(status, headers, exc_info)

        return self.app(environ, closing_start_response)
