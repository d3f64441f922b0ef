"""gunicorn's sockets, responses and signals behind small hooks, each with a fallback.

The service needs a few things WSGI does not offer: a read timeout on the client socket
while an upload streams, closing a connection after refusing an unread body, answering
``Expect: 100-continue`` only once the body is read, knowing how
many bytes a ``sendfile`` really sent, stopping reads when the worker must stop, and
noticing a graceful stop. Under gunicorn these use ``environ["gunicorn.socket"]``, the
bound ``start_response`` of gunicorn's response object, its ``FileWrapper.filelike`` and the
worker's signal handlers. Under any other server (or a gunicorn that changed these) every
function degrades to doing nothing, and says so through its return value. Request bodies
are ``server/body.py``'s (counted by ``server/bodycount.py``). A gunicorn upgrade is a
change to this package alone.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import socket
from typing import Callable

log = logging.getLogger(__name__)


def client_socket(environ: dict):
    """The client connection's socket, or None when the server does not expose it."""
    sock = environ.get("gunicorn.socket")
    return sock if hasattr(sock, "settimeout") and hasattr(sock, "gettimeout") else None


@contextlib.contextmanager
def read_timeout(environ: dict, seconds: float):
    """Within the block, a read from the client waits at most ``seconds`` (when possible).

    Fallback: nothing changes, and the server's own timeouts apply.
    """
    sock = client_socket(environ)
    if sock is None:
        yield False
        return
    previous = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        yield True
    finally:
        try:
            sock.settimeout(previous)
        except OSError:  # the connection is already gone
            pass


def stop_reading(environ: dict) -> bool:
    """Make a pending or future read of the request body see its end (half-close the socket).

    The response can still be written. Fallback: False, and the read goes on.
    """
    sock = client_socket(environ)
    if sock is None:
        return False
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        return False
    return True


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _DeferredContinue:
    """A ``100 Continue`` owed to the client, written when its body is first read.

    gunicorn answers ``Expect: 100-continue`` as soon as it has parsed the headers, before
    the application has decided anything, so a client whose upload is then refused sends
    its whole body for nothing. Both ways the body is read (gunicorn's reader, and the
    direct upload path) start with the connection's unreader: ``take_buffered`` or
    ``chunk``. Those two are shadowed on this instance until the first call.
    """

    def __init__(self, unreader, sock: socket.socket):
        self.unreader, self.sock, self.sent = unreader, sock, False
        self.chunk, self.take_buffered = unreader.chunk, unreader.take_buffered
        unreader.chunk = self._before(self.chunk)
        unreader.take_buffered = self._before(self.take_buffered)

    def _before(self, read):
        def first_read(*args, **kwargs):
            self.send()
            return read(*args, **kwargs)
        return first_read

    def send(self) -> None:
        """Write ``100 Continue`` once and put the unreader back as it was."""
        if not self.sent:
            self.sent = True
            self.restore()
            self.sock.sendall(CONTINUE)

    def restore(self) -> None:
        """Remove the shadowing methods (the unreader serves the connection's next request)."""
        for name in ("chunk", "take_buffered"):
            self.unreader.__dict__.pop(name, None)


CONTINUE_ATTR = "imagedata_continue"


def defer_continue(req) -> bool:
    """gunicorn's ``pre_request``: send ``100 Continue`` only when the application reads the
    body, so a refusal answered first reaches the client instead (it never sends the body).

    Fallback: False, and gunicorn sends ``100 Continue`` at once as before.
    """
    unreader = getattr(req, "unreader", None)
    sock = getattr(unreader, "sock", None)
    if (getattr(req, "_expected_100_continue", None) is not True or type(sock) is not socket.socket
            or not callable(getattr(unreader, "chunk", None))
            or not callable(getattr(unreader, "take_buffered", None))):
        return False
    setattr(req, CONTINUE_ATTR, _DeferredContinue(unreader, sock))
    req._expected_100_continue = False
    return True


def settle_continue(req) -> bool:
    """gunicorn's ``post_request``: if a deferred ``100 Continue`` was never sent, the client
    may or may not send its body now, so the connection must not serve another request.

    Returns whether the connection was marked to close.
    """
    deferred = getattr(req, CONTINUE_ATTR, None)
    if deferred is None or deferred.sent:
        return False
    deferred.restore()
    body = getattr(req, "body", None)
    if body is None or not hasattr(body, "failed"):
        return False
    body.failed = True  # gunicorn then closes instead of draining for the next request
    return True


SERVER_RESPONSE_KEY = "imagedata.server_response"


def remember_server_response(environ: dict, start_response) -> None:
    """Keep the server's response object for later hooks (middleware wrap ``start_response``)."""
    environ.setdefault(SERVER_RESPONSE_KEY, getattr(start_response, "__self__", None))


def force_close(environ: dict, start_response=None) -> bool:
    """Ask the server to close the connection after this response.

    gunicorn drops an application's ``Connection: close`` (a hop-by-hop header), so its
    response object (the one ``start_response`` is bound to) is asked directly.
    Fallback: False (the header is all there is).
    """
    server_response = environ.get(SERVER_RESPONSE_KEY) or getattr(start_response, "__self__", None)
    closer = getattr(server_response, "force_close", None)
    if not callable(closer):
        return False
    closer()
    return True


class _SentCounter:
    """Stands in for a response file: counts what ``sendfile`` (or a read loop) took from it.

    ``socket.sendfile`` seeks the file to the end of what it sent when it stops, whether
    it finished or the client went away; a server without sendfile reads it instead.
    """

    mode = "rb"

    def __init__(self, inner):
        self.inner = inner
        self.start = inner.tell()
        self.sent = 0
        self.read_bytes = 0

    def fileno(self) -> int:
        """The real descriptor, for sendfile."""
        return self.inner.fileno()

    def seek(self, pos: int, whence: int = 0) -> int:
        """Move the real file; an absolute seek past the start records how far sendfile got."""
        if whence == 0:
            self.sent = max(self.sent, pos - self.start)
        return self.inner.seek(pos, whence)

    def tell(self) -> int:
        """Position of the real file."""
        return self.inner.tell()

    def read(self, size: int = -1) -> bytes:
        """Read and count."""
        data = self.inner.read(size)
        self.read_bytes += len(data)
        return data

    def close(self) -> None:
        """Close the real file."""
        self.inner.close()

    @property
    def count(self) -> int:
        """Bytes handed to the client so far."""
        return max(self.sent, self.read_bytes)


def watch_file_response(environ: dict, result, on_close: Callable[[int | None], None]) -> bool:
    """If ``result`` is the server's file wrapper, call ``on_close(bytes sent)`` when it closes.

    The wrapper itself must reach the server (it recognises it and uses sendfile), so it
    cannot be wrapped; gunicorn's keeps the file as ``filelike`` and closes it through
    ``close``. Fallback: False, and the caller counts some other way.
    """
    wrapper_type = environ.get("wsgi.file_wrapper")
    if not isinstance(wrapper_type, type) or not isinstance(result, wrapper_type):
        return False
    filelike = getattr(result, "filelike", None)
    if filelike is None or not all(hasattr(filelike, name) for name in ("fileno", "tell", "seek", "read")):
        return False
    try:
        counter = _SentCounter(filelike)
    except (OSError, ValueError):
        return False
    result.filelike = counter
    original_close = getattr(result, "close", None)

    def close():
        try:
            if callable(original_close):
                original_close()
        finally:
            on_close(counter.count)

    result.close = close
    return True


def on_graceful_stop(worker, callback: Callable[[float], None]) -> bool:
    """Call ``callback(graceful timeout)`` when this gunicorn worker is told to stop (SIGTERM).

    Called from the ``post_worker_init`` hook, after the worker set its own handlers; the
    callback must return quickly (it runs in the signal handler). Fallback: False.
    """
    previous = signal.getsignal(signal.SIGTERM)
    timeout = getattr(getattr(worker, "cfg", None), "graceful_timeout", None)
    if not callable(previous) or not isinstance(timeout, (int, float)):
        return False

    def handler(signum, frame):
        try:
            callback(float(timeout))
        except Exception:  # never keep the worker from stopping
            log.exception("graceful-stop hook failed")
        previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)
    return True
