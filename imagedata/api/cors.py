"""CORS for browser clients on other origins (Horizon's direct upload), as a WSGI layer.

With ``IMAGEDATA_CORS_ALLOWED_ORIGINS`` empty (the default) this layer is not installed at
all. Otherwise a request whose ``Origin`` is listed gets ``Access-Control-Allow-Origin`` on
every answer (errors included, so the page can read them), and its preflight (``OPTIONS``
with ``Access-Control-Request-Method``) is answered here, before authentication, which a
preflight never carries. A request from any other origin is passed through untouched: the
browser then refuses to show the answer to the page. No credentials mode: the API takes its
token in ``X-Auth-Token``, never from a cookie.
"""
from __future__ import annotations

# What Horizon's direct upload and other browser clients send (Glance's own CORS defaults,
# plus the headers of resumable uploads, digests and ranged downloads).
ALLOW_HEADERS = ("Content-Type", "X-Auth-Token", "X-Service-Token", "X-Openstack-Request-Id",
                 "X-Image-Meta-Store", "X-Openstack-Image-Size", "Content-Range", "Content-MD5",
                 "Repr-Digest", "Range", "If-Range", "If-None-Match", "Accept-Encoding",
                 "X-Image-Meta-Checksum", "X-Identity-Status", "X-Roles", "X-Service-Catalog",
                 "X-User-Id", "X-Tenant-Id")
ALLOW_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# Response headers a page may read (the CORS-safelisted ones need no mention).
EXPOSE_HEADERS = ("Location", "OpenStack-image-import-methods", "OpenStack-image-store-ids",
                  "Upload-Offset", "Upload-Length", "Content-MD5", "Repr-Digest", "ETag",
                  "Content-Range", "Accept-Ranges", "Content-Length", "x-openstack-request-id",
                  "Retry-After", "WWW-Authenticate")
PREFLIGHT_MAX_AGE = 3600
# The console is served to its own origin and needs nothing here.
EXEMPT_PREFIXES = ("/console",)


class CorsMiddleware:
    """Answer preflights and add the CORS headers for the listed origins."""

    def __init__(self, app, origins: tuple[str, ...]):
        self.app = app
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    def allowed(self, origin: str | None) -> bool:
        """Whether ``origin`` (the request's Origin header) may read our answers."""
        if not origin or origin == "null":
            return False
        return self.any_origin or origin.rstrip("/").lower() in self.origins

    def __call__(self, environ, start_response):
        origin = environ.get("HTTP_ORIGIN")
        path = environ.get("PATH_INFO", "")
        if not self.allowed(origin) or path.startswith(EXEMPT_PREFIXES):
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            return self.preflight(origin, environ, start_response)

        def start_with_cors(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            headers += [("Access-Control-Allow-Origin", origin),
                        ("Access-Control-Expose-Headers", ", ".join(EXPOSE_HEADERS)), ("Vary", "Origin")]
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_cors)

    @staticmethod
    def preflight(origin: str, environ, start_response):
        """204 naming what the actual request may use; a method we do not serve gets 405."""
        method = environ["HTTP_ACCESS_CONTROL_REQUEST_METHOD"].strip().upper()
        headers = [("Vary", "Origin"), ("Content-Length", "0")]
        if method not in ALLOW_METHODS:
            start_response("405 Method Not Allowed", headers + [("Allow", ", ".join(ALLOW_METHODS))])
            return [b""]
        headers += [("Access-Control-Allow-Origin", origin),
                    ("Access-Control-Allow-Methods", ", ".join(ALLOW_METHODS)),
                    ("Access-Control-Allow-Headers", ", ".join(ALLOW_HEADERS)),
                    ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE))]
        start_response("204 No Content", headers)
        return [b""]


def wrap_cors(wsgi_app, origins: tuple[str, ...]):
    """The app behind the CORS layer, or the app itself when no origin is allowed."""
    return CorsMiddleware(wsgi_app, origins) if origins else wsgi_app
