"""Every client string outside the body is checked before a view sees it.

JSON bodies are checked as they are parsed (``api.common.read_json``); this covers the rest:
query parameters (names and values: filters, sort keys, markers), path segments (tags,
member ids) and header values, plus the length of the project an authenticating proxy
names, which becomes a stored owner.
"""
from __future__ import annotations

from flask import Flask, current_app, request

from imagedata.errors import BadRequest
from imagedata.schemas import MAX_NAME
from imagedata.storable import check_text, printable

# With trusted headers, the caller's project becomes the owner of what it creates: the column's bound applies.
PROJECT_HEADERS = ("X-Project-Id", "X-Tenant-Id")


def check_request_strings() -> None:
    """before_request: 400 for unstorable text in the query, the path or a header."""
    for name, value in request.args.items(multi=True):
        check_text("a query parameter name", name)
        check_text(f"query parameter '{printable(name)}'", value)
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            check_text(f"the path ({name})", value)
    for name, value in request.headers.items():
        check_text(f"header {name}", value)
    if current_app.config["IMAGEDATA"].auth == "trusted-headers":
        for name in PROJECT_HEADERS:
            if len(request.headers.get(name, "")) > MAX_NAME:
                raise BadRequest(f"Header {name} is longer than {MAX_NAME} characters.")


def register_input_checks(app: Flask) -> None:
    """Run the checks before every request (before authentication, which reads the headers)."""
    app.before_request(check_request_strings)
