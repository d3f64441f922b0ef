"""Version discovery: GET / (300) and GET /versions (200); URL version prefixes."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

bp = Blueprint("versions", __name__)

# Glance's list for a multi-store deployment without an image cache.
VERSIONS = (("v2.15", "SUPPORTED"), ("v2.13", "SUPPORTED"), ("v2.12", "SUPPORTED"),
            ("v2.11", "SUPPORTED"), ("v2.10", "SUPPORTED"), ("v2.9", "SUPPORTED"),
            ("v2.8", "SUPPORTED"), ("v2.17", "CURRENT"), ("v2.7", "SUPPORTED"),
            ("v2.6", "SUPPORTED"), ("v2.5", "SUPPORTED"), ("v2.4", "SUPPORTED"),
            ("v2.3", "SUPPORTED"), ("v2.2", "SUPPORTED"), ("v2.1", "SUPPORTED"), ("v2.0", "SUPPORTED"))
# Glance's list when an image cache is configured (the cache API is 2.14; clean and prune 2.18).
CACHE_VERSIONS = (("v2.18", "CURRENT"), ("v2.17", "SUPPORTED"), ("v2.16", "SUPPORTED"), ("v2.15", "SUPPORTED"),
                  ("v2.14", "SUPPORTED")) + tuple(item for item in VERSIONS if item[0] not in ("v2.15", "v2.17"))
# URL prefixes routed to the one v2 API (all listed versions, plus plain v2).
ACCEPTED_PREFIXES = {"v2"} | {version for version, _ in VERSIONS}
CACHE_PREFIXES = ACCEPTED_PREFIXES | {version for version, _ in CACHE_VERSIONS}
OWN_FIRST_SEGMENTS = {"", "versions", "healthcheck", "metrics", "v2", "console"}


def versions_document():
    """The versions body; every href points at this service's /v2/ (2.14 and up only when
    this host has an image cache, as Glance lists them)."""
    settings = current_app.config["IMAGEDATA"]
    base = settings.public_endpoint or request.host_url.rstrip("/")
    href = f"{base}/v2/"
    listed = CACHE_VERSIONS if settings.cache_dir else VERSIONS
    return {"versions": [{"id": version, "status": status, "links": [{"rel": "self", "href": href}]}
                         for version, status in listed]}


@bp.get("/")
def root():
    """Any unknown version lands here: 300 Multiple Choices."""
    return jsonify(versions_document()), 300


@bp.get("/versions")
def versions():
    """The versions document with 200."""
    return jsonify(versions_document()), 200


class VersionPrefixMiddleware:
    """Map /v2.N/... onto /v2/...; send any other unknown first segment to / (300)."""

    def __init__(self, app, accepted: set | None = None):
        self.app = app
        self.accepted = accepted or ACCEPTED_PREFIXES

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        first, sep, rest = path.lstrip("/").partition("/")
        if first in self.accepted and first != "v2":
            environ["PATH_INFO"] = f"/v2{sep}{rest}"
        elif first == "versions" and rest:
            environ["PATH_INFO"] = "/versions"
        elif first not in OWN_FIRST_SEGMENTS and first not in self.accepted:
            environ["PATH_INFO"] = "/"
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                environ["REQUEST_METHOD"] = "GET"
        return self.app(environ, start_response)
