"""The body at a URL, read in pieces; a dropped connection is resumed with Range.

A resumed request carries ``If-Range`` with the first response's validator, and its
``206`` answer must carry the same ``ETag``/``Last-Modified`` and start where the data
stopped. When it does not (the file changed, the server ignores Range, nothing proves
the rest belongs to the same file), the source starts over from byte 0 and raises
``SourceRestarted`` once, so that the caller drops what it kept (digests, partial data)
and reads on from 0.
"""
from __future__ import annotations

import http.client
import logging
import time
from typing import Callable, Iterator

from imagedata import __version__
from imagedata.service.body import BufferRing
from imagedata.service.webfetch.connection import Exchange, get, idle_timeout
from imagedata.service.webfetch.errors import (ConnectionLost, HostNotFound, RemoteHTTPError, SourceCut,
                                               SourceRestarted, SourceTooLarge, SourceUnstable)
from imagedata.service.webfetch.policy import FetchPolicy
from imagedata.service.webfetch.redact import redact_url
from imagedata.service.webfetch.sameness import FileIdentity

log = logging.getLogger(__name__)

# A connection that delivered this much before it dropped was worth it: the count of
# failures in a row starts again (a server that resets every few MiB still finishes).
MIN_PROGRESS = 1 << 20
TRANSIENT = frozenset((408, 429, 502, 503, 504))  # a resume may try again after these
DROPPED = (OSError, http.client.HTTPException)  # TimeoutError is caught before these
# A buffer is filled in steps of this size, so that a connection that breaks in the middle
# of a buffer loses at most one step (http.client does not say what a failed read got).
STEP = 256 << 10


class _Transient(Exception):
    """A temporary error answer (503...), retried like a dropped connection."""


class RemoteSource:
    """The data at a URL: ``readinto``/``read``/``pieces`` give it in order, from byte 0.

    ``size`` is the total when the server said it; ``position`` counts the bytes given
    since the last start. Use ``open_url`` to make one.
    """

    def __init__(self, url: str, policy: FetchPolicy, idle_timeout: float, max_bytes: int | None = None,
                 retries: int = 5, max_restarts: int = 3, backoff: float = 0.5):
        self.url, self.shown, self.policy = url, redact_url(url), policy
        self.idle_timeout, self.max_bytes = idle_timeout, max_bytes
        self.retries, self.max_restarts, self.backoff = retries, max_restarts, backoff
        self.position = 0
        self.resumes = self.restarts = 0
        self.identity = FileIdentity()  # what the first whole-body answer said of its file
        self._exchange: Exchange | None = None
        self._error: Exception | None = None  # what broke the connection after a partial fill
        self._done = False
        self._failures = 0  # connection failures in a row
        self._since = 0  # position when the current connection started
        self._cut: str | None = None  # why cut() stopped the download (from another thread)

    def open(self) -> RemoteSource:
        """Send the first request; raises the domain errors of ``open_url``."""
        self._begin(self._request(0))
        return self

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` with the next bytes; 0 at the end of the data.

        Raises SourceRestarted when the data must be read again from byte 0 (the next
        call returns byte 0), SourceTooLarge, IdleTimeout, ConnectionLost, ...
        """
        view = memoryview(buffer)
        while True:
            self._check_cut()
            if self._exchange is None:
                if self._done:
                    return 0
                self._resume()
                continue  # (a cut() during the reconnect may have missed the new socket)
            want = len(view) if self.max_bytes is None else min(len(view), self.max_bytes + 1 - self.position)
            try:
                count = self._fill(view[:want])
            except TimeoutError:
                self.close()
                raise idle_timeout(self.shown, self.idle_timeout, f"after {self.position} bytes") from None
            except DROPPED as exc:
                self._check_cut()
                self._dropped(exc)
                continue
            self._check_cut()  # a cut socket reads as the end of the data: it is not
            if not count:
                if self.size is not None and self.position < self.size:
                    self._dropped(EOFError("the connection closed early"))
                    continue
                self.close()
                self._done = True
                return 0
            self.position += count
            if self.max_bytes is not None and self.position > self.max_bytes:
                self.close()
                raise SourceTooLarge(f"The data at {self.shown} is larger than the limit of {self.max_bytes} "
                                     "bytes; the download was stopped there.")
            return count

    def _fill(self, view: memoryview) -> int:
        """Fill ``view`` from the response; when the connection breaks after some bytes
        arrived, return those, and raise the error at the next call."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        got = 0
        while got < len(view):
            try:
                count = self._exchange.response.readinto(view[got:got + STEP])
            except DROPPED as exc:
                if not got:
                    raise
                self._error = exc
                return got
            if not count:
                break
            got += count
        return got

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest when negative); b"" at the end."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        buffer = bytearray(size)
        count = self.readinto(buffer)
        del buffer[count:]
        return bytes(buffer)

    def pieces(self, chunk_size: int = 1 << 20, settle: Callable[[int], None] | None = None) -> Iterator:
        """Iterate over the data from the current position.

        Without ``settle`` every piece is a fresh ``bytes``. With it, pieces are
        ``memoryview``\\ s of a few reused page-aligned buffers, and ``settle(n)`` must
        return once at most ``n`` of the pieces yielded so far are still in use (as the
        upload's digests offer). After SourceRestarted, call ``pieces`` again.
        """
        if settle is None:
            yield from iter(lambda: self.read(chunk_size), b"")
            return
        ring = BufferRing(chunk_size)
        try:
            while True:
                settle(len(ring.views) - 1)
                view = ring.next()[:chunk_size]
                count = self.readinto(view)
                if not count:
                    return
                yield view[:count]
        finally:
            ring.close()

    @property
    def size(self) -> int | None:
        """The total the server declared (None: it did not say, or nothing was asked yet)."""
        return self.identity.size

    def cut(self, reason: str = "it was stopped") -> None:
        """Stop the download from another thread: a read waiting for the server returns at once
        and raises SourceCut (naming ``reason``), as does every later read; nothing reconnects."""
        self._cut = reason  # (set before looking at the socket: readinto looks the other way round)
        exchange = self._exchange
        if exchange is not None:
            exchange.interrupt()

    def _check_cut(self) -> None:
        if self._cut is not None:
            self.close()
            raise SourceCut(f"The download of {self.shown} was stopped after {self.position} bytes: {self._cut}.")

    def close(self) -> None:
        """Close the connection; reading again resumes from ``position``."""
        self._error = None
        if self._exchange is not None:
            self._exchange.close()
            self._exchange = None

    def __enter__(self) -> RemoteSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def _request(self, offset: int) -> Exchange:
        """GET from ``offset``, retrying failed connections and temporary error answers."""
        headers = {"User-Agent": f"imagedata/{__version__}", "Accept": "*/*", "Accept-Encoding": "identity"}
        if offset:
            headers.update({"Range": f"bytes={offset}-", "If-Range": self.identity.validator()})
        while True:
            try:
                exchange = get(self.url, self.policy, headers, self.idle_timeout)
            except (*DROPPED, HostNotFound) as exc:
                if isinstance(exc, HostNotFound) and not offset:  # a name that never resolved is no hiccup
                    raise
                self._failed(exc)
                continue
            status = exchange.response.status
            if status in (200, 206) or (status == 416 and offset):
                return exchange
            exchange.close()
            message = f"The web server answered {status} {exchange.response.reason} for {exchange.target.shown}."
            if status not in TRANSIENT:
                raise RemoteHTTPError(message, status)
            self._failed(_Transient(message))

    def _begin(self, exchange: Exchange) -> None:
        """Take a whole-body (200) answer as the data from byte 0."""
        response = exchange.response
        if response.status != 200:
            exchange.close()
            raise RemoteHTTPError(f"The web server answered {response.status} {response.reason} to a request "
                                  f"for all of {exchange.target.shown}.", response.status)
        self._exchange, self._since, self.position = exchange, 0, 0
        self.identity = FileIdentity.of(response)
        if self.max_bytes is not None and self.size is not None and self.size > self.max_bytes:
            self.close()
            raise SourceTooLarge(f"The data at {self.shown} is {self.size} bytes, larger than the limit of "
                                 f"{self.max_bytes} bytes; nothing was downloaded.")

    def _resume(self) -> None:
        """Continue from ``position`` on a new connection, or start over (SourceRestarted)."""
        if not self.position:  # nothing was given yet: a new first request, nothing to discard
            self._begin(self._request(0))
            return
        if not self.identity.validator():
            self._restart("the server sends neither ETag nor Last-Modified, so the rest of the data cannot "
                          "be proven to belong to the same file")
        exchange = self._request(self.position)
        response = exchange.response
        if response.status == 206:
            why = self.identity.mismatch(response, self.position)
            if not why:
                self._exchange, self._since = exchange, self.position
                self.resumes += 1
                log.info("web-download of %s resumed at byte %d", self.shown, self.position)
                return
            exchange.close()
            self._restart(why)
        if response.status == 416:
            exchange.close()
            self._restart("the file changed: the server has no data at that offset any more")
        changed = self.identity.changed(response)
        self._restart(changed or "the server ignored the Range request", exchange)

    def _restart(self, reason: str, exchange: Exchange | None = None) -> None:
        """Start over from byte 0 (with ``exchange`` if it is already a whole-body answer)."""
        self.restarts += 1
        if self.restarts > self.max_restarts:
            if exchange is not None:
                exchange.close()
            raise SourceUnstable(f"The download of {self.shown} had to start over {self.max_restarts} times "
                                 f"and was given up: {reason}.")
        log.warning("web-download of %s starts over from byte 0: %s", self.shown, reason)
        self._begin(exchange or self._request(0))
        raise SourceRestarted(f"The download of {self.shown} starts over from byte 0: {reason}.", reason)

    def _dropped(self, exc: BaseException) -> None:
        """The connection broke mid-body: count it, so that the next read resumes."""
        self.close()
        if self.position - self._since >= MIN_PROGRESS:
            self._failures = 0
        self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        """One more failure in a row: wait a little, or give up when the retries are spent."""
        self._failures += 1
        if self._failures > self.retries:
            got = f"{self.position} of {self.size}" if self.size is not None else f"{self.position}"
            raise ConnectionLost(f"The connection to {self.shown} failed {self._failures} times in a row "
                                 f"({_describe(exc)}); gave up after {got} bytes.")
        log.info("web-download of %s: connection failed at byte %d (%s); trying again",
                 self.shown, self.position, _describe(exc))
        if self._failures > 1:
            time.sleep(min(self.backoff * 2 ** (self._failures - 2), 10.0))
        self._check_cut()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed early"
    return str(exc) or type(exc).__name__


def open_url(url: str, policy: FetchPolicy, idle_timeout: float, max_bytes: int | None = None,
             **options) -> RemoteSource:
    """Check ``url`` against ``policy``, send the first GET and return its data source.

    ``options``: ``retries`` (connection failures in a row, default 5), ``max_restarts``
    (default 3), ``backoff`` (seconds, doubled per failure in a row, default 0.5).
    Raises URLRefused, HostNotFound, RemoteHTTPError, TooManyRedirects, SourceTooLarge,
    IdleTimeout, TLSFailed, ConnectionLost (all FetchError).
    """
    return RemoteSource(url, policy, idle_timeout, max_bytes, **options).open()
