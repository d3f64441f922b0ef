"""Small helpers shared by the blueprints: services, JSON bodies, body rejection."""
from __future__ import annotations

import functools
import json

from flask import current_app, request

from imagedata.errors import BadRequest, TooLarge
from imagedata.service import Services
from imagedata.storable import check_json

MAX_JSON_BODY = 1 << 20


def services() -> Services:
    """The service bundle wired by the app factory."""
    return current_app.extensions["imagedata"]


def has_body() -> bool:
    """Whether the request carries a body (Content-Length > 0 or a transfer coding)."""
    if request.content_length:
        return True
    return bool(request.headers.get("Transfer-Encoding"))


def no_body(view):
    """Glance: these routes answer 400 when a body is sent."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if has_body():
            raise BadRequest("A body is not expected with this request.")
        return view(*args, **kwargs)

    return wrapper


def read_json():
    """The request body parsed as JSON; 400 when empty, malformed or holding unstorable text, 413 when huge."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise TooLarge("The request body is too large.")
    raw = request.stream.read(MAX_JSON_BODY + 1)
    if len(raw) > MAX_JSON_BODY:
        raise TooLarge("The request body is too large.")
    if not raw.strip():
        raise BadRequest("Body expected in request.")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
        raise BadRequest("Malformed JSON in request body.") from None
    check_json(document)
    return document
