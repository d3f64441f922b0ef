"""Version discovery: GET / (300) and GET /versions (200); URL version prefixes."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

bp = Blueprint("versions", __name__)

# Every minor version of the Image API v2 and what it added, with whether this service has it.
# A version is advertised when all it added is here; the highest one advertised is CURRENT.
# This is the one list to change when an API lands (import: 2.6, 2.9, 2.11, 2.12; the image
# cache: 2.14, 2.16; metadata definitions: 2.2); README.rst (API versions and coverage) lists the gaps.
API_VERSIONS = (
    ("v2.0", (("images, image data, tags and schemas", True),)),
    ("v2.1", (("image members", True),)),
    ("v2.2", (("tasks (/v2/tasks)", True), ("metadata definitions (/v2/metadefs)", True))),
    ("v2.3", (("deactivate and reactivate", True),)),
    ("v2.4", (("clearing locations (no locations are exposed here)", True),)),
    ("v2.5", (("community visibility", True),)),
    ("v2.6", (("interoperable import: stage, import, /v2/info/import", True),)),
    ("v2.7", (("os_hidden and multihash (os_hash_algo, os_hash_value)", True),)),
    ("v2.8", (("multiple stores: /v2/info/stores, X-Image-Meta-Store", True),)),
    ("v2.9", (("copy-image import to more stores", True),)),
    ("v2.10", (("deleting an image's data from one store (DELETE /v2/stores/{store}/{image})", True),)),
    ("v2.11", (("import to several stores (all_stores_must_succeed)", True),)),
    ("v2.12", (("an image's import tasks (GET /v2/images/{id}/tasks)", True),)),
    ("v2.13", (("quota usage (/v2/info/usage)", True),)),
    ("v2.14", (("the image cache API (/v2/cache)", False),)),
    ("v2.15", (("store details (/v2/info/stores/detail)", True),)),
    ("v2.16", (("the image cache API answering 202 to queue an image", False),)),
    ("v2.17", (("the locations API (POST/GET /v2/images/{id}/locations)", False),)),
)
ADVERTISED = tuple(version for version, parts in API_VERSIONS if all(present for _, present in parts))
VERSIONS = tuple((version, "CURRENT" if version == ADVERTISED[-1] else "SUPPORTED") for version in reversed(ADVERTISED))
# URL prefixes routed to the one v2 API: Glance's (a deployment without the image cache), whatever
# this service advertises, so that a client pinned to a prefix keeps working.
ACCEPTED_PREFIXES = {"v2"} | {f"v2.{minor}" for minor in (*range(0, 14), 15, 17)}
OWN_FIRST_SEGMENTS = {"", "versions", "healthcheck", "metrics", "v2", "console"}


def versions_document():
    """The versions body; every href points at this service's /v2/."""
    base = current_app.config["IMAGEDATA"].public_endpoint or request.host_url.rstrip("/")
    href = f"{base}/v2/"
    return {"versions": [{"id": version, "status": status, "links": [{"rel": "self", "href": href}]}
                         for version, status in VERSIONS]}


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

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        first, sep, rest = path.lstrip("/").partition("/")
        if first in ACCEPTED_PREFIXES and first != "v2":
            environ["PATH_INFO"] = f"/v2{sep}{rest}"
        elif first == "versions" and rest:
            environ["PATH_INFO"] = "/versions"
        elif first not in OWN_FIRST_SEGMENTS and first not in ACCEPTED_PREFIXES:
            environ["PATH_INFO"] = "/"
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                environ["REQUEST_METHOD"] = "GET"
        return self.app(environ, start_response)
