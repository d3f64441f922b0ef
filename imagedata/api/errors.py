"""One renderer for every error: JSON for clients that ask for it, short text otherwise.

Glance (via WebOb) answers JSON only to clients that accept application/json;
python-glanceclient sends ``Accept: */*`` and cannot parse a flat JSON error body,
so a wildcard gets text/plain. Unlike Glance, nobody gets HTML.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, request
from werkzeug.exceptions import HTTPException

from peewee import DataError

from imagedata.db import UNAVAILABLE_ERRORS
from imagedata.errors import ImageDataError

log = logging.getLogger(__name__)


def wants_json() -> bool:
    """True when the client explicitly accepts application/json, or is openstacksdk.

    openstacksdk sends ``Accept: */*`` or an empty Accept on many calls and then shows
    only the HTTP reason phrase for a non-JSON error body, never our message; it reads
    ``message`` from the flat JSON body. Any other client with a wildcard (notably
    python-glanceclient, which cannot parse that JSON) gets text.
    """
    if any(value == "application/json" and quality > 0 for value, quality in request.accept_mimetypes):
        return True
    agent = request.headers.get("User-Agent", "")
    return agent.startswith("openstacksdk/") and request.headers.get("Accept", "*/*").strip() in ("", "*/*")


def error_response(status: int, title: str, message: str, headers: dict | None = None):
    """Build the error response in the negotiated format."""
    code = f"{status} {title}"
    # A message may quote client text; never let an unencodable character turn an error into a 500.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    if wants_json():
        response = jsonify({"message": message, "code": code, "title": title})
    else:
        response = make_response(f"{code}\n\n{message}\n")
        response.mimetype = "text/plain"
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_domain_error(exc: ImageDataError):
    """Render a domain error raised by a service."""
    if exc.status >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.path, exc.status, exc.message)
    return error_response(exc.status, exc.title, exc.message, exc.headers)


def handle_http_exception(exc: HTTPException):
    """Render werkzeug's routing and protocol errors (404, 405, 413, ...) the same way."""
    headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    if exc.code == 405 and exc.valid_methods:
        headers["Allow"] = ", ".join(m for m in exc.valid_methods if m != "OPTIONS")
    message = exc.description or exc.name
    if exc.code == 405:
        message = f"The method {request.method} is not allowed for this resource."
    return error_response(exc.code or 500, exc.name, message, headers)


def handle_database_unavailable(exc: Exception):
    """The database is locked or gone: 503, so the client retries."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
    return error_response(503, "Service Unavailable", "The image database is busy or unavailable; try again.")


def handle_out_of_range(exc: Exception):
    """A value the database cannot store (a safety net behind schema validation)."""
    log.warning("value out of range on %s %s: %s", request.method, request.path, exc)
    return error_response(400, "Bad Request", "A value in the request is out of range.")


def handle_value_error(exc: ValueError):
    """Text a database driver cannot encode (a safety net behind ``storable``): 400, not 500.

    SQLite and psycopg2 raise UnicodeEncodeError for a lone surrogate; psycopg2 raises a plain
    ValueError for NUL. Any other ValueError is a bug and takes the last-resort path.
    """
    if isinstance(exc, UnicodeError) or "NUL (0x00)" in str(exc):
        log.warning("unstorable text on %s %s: %s", request.method, request.path, exc)
        return error_response(400, "Bad Request", "A text value in the request cannot be stored.")
    return handle_unexpected(exc)


def handle_unexpected(exc: Exception):
    """Last resort: log the traceback, tell the client nothing internal."""
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "Internal Server Error", "The server has either erred or is incapable of "
                          "performing the requested operation.")


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on the app, so routing errors take the same path."""
    app.register_error_handler(ImageDataError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    for cls in UNAVAILABLE_ERRORS:
        app.register_error_handler(cls, handle_database_unavailable)
    for cls in (OverflowError, DataError):
        app.register_error_handler(cls, handle_out_of_range)
    app.register_error_handler(ValueError, handle_value_error)
    app.register_error_handler(Exception, handle_unexpected)
