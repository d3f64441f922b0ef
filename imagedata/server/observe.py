"""Watching every request: one access line and the request metrics, when its last byte is gone.

A WSGI middleware outside the app times the request, counts the body bytes read (through
``server.body``) and the response bytes sent (for sendfile responses, through the server
adapter), and when the response is closed writes the access line and records the metrics.
The Flask hooks only leave the route template, project and image id in the environ for it.
"""
from __future__ import annotations

import contextlib
import logging
import time

from flask import Flask, g, request

from imagedata import logs, metrics
from imagedata.server import adapter as server_adapter
from imagedata.server import bodycount, drain

log = logging.getLogger(__name__)

ROUTE_KEY, PROJECT_KEY, IMAGE_KEY = "imagedata.route", "imagedata.project", "imagedata.image_id"
REQUEST_ID_KEY = "imagedata.request_id"
STORED_KEY = "imagedata.stored_bytes"
UNMATCHED = "(unmatched)"
DATA_ROUTE = "/v2/images/<image_id>/file"


class _CountingBody:
    """The response iterable, counting what the server takes; reports once, at close."""

    def __init__(self, body, done):
        self.body = body
        self.done = done
        self.count = 0

    def __iter__(self):
        for piece in self.body:
            self.count += len(piece)
            yield piece

    def close(self):
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.done(self.count)


def _received(environ, counted: int | None) -> int | None:
    """Request body bytes read, as counted; for a chunked upload, what it stored."""
    if counted is not None:
        return counted
    if "HTTP_TRANSFER_ENCODING" not in environ:
        return 0
    return environ.get(STORED_KEY)


class RequestObserver:
    """WSGI middleware: access line and request metrics for every request."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.monotonic()
        server_adapter.remember_server_response(environ, start_response)
        received = bodycount.watch_body(environ)
        answer = {}

        def observing_start_response(status, headers, exc_info=None):
            answer["status"] = int(str(status)[:3])
            answer["headers"] = headers
            return start_response(status, headers, exc_info)

        reported = []

        def done(sent: int | None):
            if reported:
                return
            reported.append(True)
            try:
                self.report(environ, answer, started, _received(environ, received()), sent or 0)
            except Exception:  # observing must never break a request
                log.exception("could not record the request")

        try:
            result = self.app(environ, observing_start_response)
        except BaseException:
            answer.setdefault("status", 500)
            done(0)
            raise
        if server_adapter.watch_file_response(environ, result, done):
            return result
        return _CountingBody(result, done)

    @staticmethod
    def report(environ, answer, started, received: int | None, sent: int) -> None:
        """Write the access line and record the metrics of one finished request."""
        seconds = time.monotonic() - started
        method = environ.get("REQUEST_METHOD", "")
        route = environ.get(ROUTE_KEY, UNMATCHED)
        status = answer.get("status", 500)
        metrics.observe_request(method, route, status, seconds)
        if route == DATA_ROUTE:
            metrics.count_data_bytes(uploaded=(received or 0) if method == "PUT" else 0,
                                     downloaded=sent if method == "GET" else 0)
        headers = dict((k.lower(), v) for k, v in answer.get("headers", []))
        logs.log_access({
            "request_id": headers.get("x-openstack-request-id") or environ.get(REQUEST_ID_KEY),
            "method": method,
            "route": route,
            "status": status,
            "bytes_in": received,
            "bytes_out": sent,
            "duration_ms": round(seconds * 1000, 1),
            "project": environ.get(PROJECT_KEY),
            "image_id": environ.get(IMAGE_KEY),
            "client": environ.get("REMOTE_ADDR"),
            "forwarded_for": logs.clean_text(environ.get("HTTP_X_FORWARDED_FOR", "").replace(" ", "") or None, 200),
        })


def register_observer(app: Flask) -> None:
    """Wrap the app's WSGI callable and add the hooks that tell the observer about the request.

    Call after the hook that sets ``g.request_id``.
    """

    @app.before_request
    def note_request_id():
        logs.request_id.set(g.get("request_id"))
        request.environ[REQUEST_ID_KEY] = g.get("request_id")

    @app.teardown_request
    def note_request(exc):
        environ = request.environ
        environ[ROUTE_KEY] = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        caller = g.get("caller")
        environ[PROJECT_KEY] = getattr(caller, "project_id", None)
        environ[IMAGE_KEY] = logs.clean_text((request.view_args or {}).get("image_id"), 64)
        logs.request_id.set(None)

    app.wsgi_app = RequestObserver(app.wsgi_app)


class _Upload:
    """What ``watch_upload`` yields: the view reports the stored image through it."""

    def __init__(self, environ: dict):
        self.environ = environ

    def stored(self, image) -> None:
        """The upload succeeded: its size is what a chunked body brought."""
        self.environ[STORED_KEY] = getattr(image, "size", None)


@contextlib.contextmanager
def watch_upload(environ: dict, idle_timeout: float):
    """Around the upload service call: its outcome metric, the cut when the worker stops,
    and the read timeout that abandons a stalled client."""
    with metrics.track_upload(), drain.cut_on_stop(environ), server_adapter.read_timeout(environ, idle_timeout):
        yield _Upload(environ)
