"""Letting the client see an answer given before its body was read: a lingering close.

When a request with a body is refused before the body is read (401, 400, 404, 409, 413,
415), the connection closes after the answer (``imagedata.api.connection``). Closing a
socket whose receive queue still holds unread bytes makes the kernel send a reset, and a
reset can overtake the answer: nginx, still streaming the body upstream, sees "Broken
pipe", answers its client 502 and counts a failure of the host (with two hosts refusing,
nginx had no live upstream left). So, as nginx itself does for its clients
(``lingering_close``), once the answer has been written the sending side is shut down
(the peer reads the answer and the end of the stream) and what still arrives is read and
discarded until the peer closes, within a bound of bytes and of time.
"""
from __future__ import annotations

import logging
import socket
import time

from imagedata.server import adapter as server_adapter
from imagedata.server import bodycount

log = logging.getLogger(__name__)

LINGER_KEY = "imagedata.linger"
# nginx's lingering_time and lingering_timeout: the whole linger, and a silence that ends it.
MAX_SECONDS = 30.0
IDLE_SECONDS = 5.0
# A client that keeps sending past this after the answer gets a reset, as before.
MAX_BYTES = 256 << 20
PIECE = 64 << 10


def request_linger(environ: dict) -> None:
    """Ask for a lingering close of this request's connection once its answer is written."""
    environ[LINGER_KEY] = True


def linger(environ: dict, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS,
           idle_seconds: float = IDLE_SECONDS) -> int | None:
    """If asked for, shut down the sending side and discard what arrives until the peer closes.

    Call after the answer is written (gunicorn's ``post_request``). Returns the bytes
    discarded, or None when no linger was asked for or the server exposes no socket.
    """
    if not environ.pop(LINGER_KEY, False):
        return None
    sock = server_adapter.client_socket(environ)
    if sock is None:
        return None
    if bodycount.bytes_left(environ) == 0:
        return 0  # the body was read to its end: the server's own close is enough
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:  # the peer is gone already
        return 0
    started = time.monotonic()
    drained, buffer = 0, bytearray(PIECE)
    try:
        while drained < max_bytes:
            left = max_seconds - (time.monotonic() - started)
            if left <= 0:
                break
            sock.settimeout(min(idle_seconds, left))
            got = sock.recv_into(buffer, min(PIECE, max_bytes - drained))
            if not got:
                break
            drained += got
    except OSError:  # silence past the idle bound, or a reset: nothing more to wait for
        pass
    log.debug("lingering close: %d bytes discarded in %.2fs", drained, time.monotonic() - started)
    return drained
