"""Stopping a worker without leaving uploads behind.

A worker told to stop (a restart, a reload, a shutdown) gets the graceful timeout to
finish its requests; after it, the master kills it. Uploads that would not finish in time
are cut a little before that: their reads are ended, so the upload fails the ordinary way
(the image is back in ``queued`` and its temporary data removed at once, not when the
lease expires) and the client is told to retry (503 with ``Retry-After``).
"""
from __future__ import annotations

import contextlib
import logging
import threading

from imagedata.server import adapter as server_adapter
from imagedata.errors import ServiceUnavailable

log = logging.getLogger(__name__)

CUT_KEY = "imagedata.cut"
_bodies: dict[int, dict] = {}
_lock = threading.Lock()
_stopping = threading.Event()


class ServerStopping(ServiceUnavailable):
    """The server is restarting: the upload was stopped; send it again."""

    def __init__(self):
        super().__init__("The server is restarting and stopped this upload; the image is queued again. "
                         "Retry the upload.", headers={"Retry-After": "5"})


def cut_delay(graceful_timeout: float) -> float:
    """Seconds after the stop signal at which unfinished uploads are cut (before the kill)."""
    return max(0.5, graceful_timeout - min(5.0, graceful_timeout * 0.3))


@contextlib.contextmanager
def cut_on_stop(environ: dict):
    """Around an upload: cut its body when the worker stops; report the cut as ServerStopping."""
    key = id(environ)
    with _lock:
        _bodies[key] = environ
    try:
        yield
    except Exception as exc:
        if environ.get(CUT_KEY):
            raise ServerStopping() from exc
        raise
    finally:
        with _lock:
            _bodies.pop(key, None)


def cut_all() -> int:
    """End the body of every upload in flight; returns how many were cut."""
    with _lock:
        pending = list(_bodies.values())
    cut = 0
    for environ in pending:
        environ[CUT_KEY] = True
        if server_adapter.stop_reading(environ):
            cut += 1
    if pending:
        log.warning("worker stopping: cut %d upload(s) still in flight", len(pending))
    return cut


def begin_stop(graceful_timeout: float) -> None:
    """The worker was told to stop: schedule the cut (runs in a signal handler: no waiting)."""
    if _stopping.is_set():
        return
    _stopping.set()
    timer = threading.Timer(cut_delay(graceful_timeout), cut_all)
    timer.daemon = True
    timer.start()


def install(worker) -> bool:
    """Hook ``begin_stop`` to the worker's graceful stop (gunicorn's post_worker_init)."""
    return server_adapter.on_graceful_stop(worker, begin_stop)
