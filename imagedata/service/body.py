"""Reading an upload body: exact lengths, chunked bodies, aborts; one copy from the socket.

Two paths yield the same pieces of the body:

* the plain path reads ``wsgi.input`` (any WSGI server) and yields ``bytes``;
* the direct path receives with ``recv_into`` from the client's socket straight into a
  small ring of page-aligned, reused buffers (the kernel copies into a buffer that is not
  32-byte aligned 4-5x slower on our machines), and yields ``memoryview``\\ s of them.
  gunicorn's body reader would copy every piece again (its ``BytesIO`` re-buffering:
  a write, a ``getvalue`` and a slice per read) and allocate a fresh megabyte per read.

The direct path is taken only when :func:`direct_source` recognises gunicorn's own body
object in a state it understands; it keeps gunicorn's bookkeeping (bytes left, bytes
read ahead, failure) exact, so keep-alive and pipelined requests work as on the plain
path. Anything else falls back to the plain path.
"""
from __future__ import annotations

import inspect
import io
import mmap
import re
import socket
from typing import Callable, Iterator

from imagedata.errors import BadRequest

PAGE = mmap.PAGESIZE
RING = 4  # buffers per upload: one being filled, the rest being hashed
MAX_LINE = 8190  # a chunk-size line (gunicorn's limit_request_field_size)
MAX_TRAILERS = 8190 * 32  # a trailer section
FRAMING_READ = 4096  # bytes asked for while looking for a chunk-size line
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
CHUNK_EXT_RE = re.compile(rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED
                          + rb"))?)*")
HEX = frozenset(b"0123456789abcdefABCDEF")


class ClientAborted(BadRequest):
    """The client stopped sending the image data before the end of the body."""


class BadFraming(ClientAborted):
    """The chunked framing of the body is broken."""


def _interrupted(exc: BaseException) -> ClientAborted:
    return ClientAborted(f"The upload was interrupted: {type(exc).__name__}.")


class BodyReader:
    """Yields the body in pieces of at most ``chunk_size`` bytes.

    With a Content-Length, exactly that many bytes are read and a short body is an
    abort. Without one, the server must terminate the stream (chunked framing); the
    caller checks that before building a reader. ``settle(n)`` is called before a ring
    buffer is refilled and must return once at most ``n`` of the pieces yielded so far
    are still in use by someone else (the hashing threads); without it (or on the plain
    path) every piece is a fresh ``bytes``.
    """

    def __init__(self, stream, content_length: int | None, chunk_size: int,
                 settle: Callable[[int], None] | None = None):
        self.stream = stream
        self.remaining = content_length
        self.chunk_size = chunk_size
        self.settle = settle
        self.direct = direct_source(stream, content_length) if settle is not None else None

    def chunks(self) -> Iterator:
        """Iterate over the body; raises ClientAborted on a short or broken body."""
        if self.direct is not None:
            return self.direct.pieces(self.chunk_size, self.settle)
        return self._plain()

    def _plain(self) -> Iterator[bytes]:
        while self.remaining is None or self.remaining > 0:
            want = self.chunk_size if self.remaining is None else min(self.chunk_size, self.remaining)
            try:
                data = self.stream.read(want)
            except Exception as exc:  # socket timeout, reset, bad chunk framing
                raise _interrupted(exc) from None
            if not data:
                if self.remaining is not None:
                    raise ClientAborted("The upload ended before the declared Content-Length was received.")
                return
            if self.remaining is not None:
                self.remaining -= len(data)
            yield data


class BufferRing:
    """A few page-aligned anonymous mappings, used in turn."""

    def __init__(self, size: int, count: int = RING):
        self.size = -(-size // PAGE) * PAGE
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
        self.maps = [mmap.mmap(-1, self.size, flags=flags) for _ in range(count)]
        self.views = [memoryview(m) for m in self.maps]
        self.turn = 0

    def next(self) -> memoryview:
        """The next buffer (the caller has made sure nobody still reads it)."""
        view = self.views[self.turn % len(self.views)]
        self.turn += 1
        return view

    def close(self) -> None:
        """Unmap the buffers (or leave that to the collector while a slice is still held)."""
        for view in self.views:
            view.release()
        for mapping in self.maps:
            try:
                mapping.close()
            except BufferError:  # a piece is still referenced somewhere: unmapped when it goes
                pass
        self.views, self.maps = [], []


class _Direct:
    """Reads a request body straight from gunicorn's socket, keeping gunicorn's state exact."""

    def __init__(self, body, reader, unreader, sock: socket.socket, length: int | None):
        self.body = body
        self.reader = reader
        self.unreader = unreader
        self.sock = sock
        self.length = length
        self.pending = bytearray()

    def pieces(self, chunk_size: int, settle: Callable[[int], None]) -> Iterator[memoryview]:
        """Fill ring buffers and yield the filled part of each."""
        ring = BufferRing(chunk_size)
        try:
            self.pending += _take_buffered(self.unreader)  # read ahead with the headers
            source = self._length_body() if self.length is not None else self._chunked_body()
            view, fill = None, 0
            for span in source:
                # ``span`` bytes of payload follow: receive them into the current buffer(s).
                while span:
                    if view is None:
                        settle(len(ring.views) - 1)
                        view, fill = ring.next()[:chunk_size], 0
                    try:
                        got = self._receive(view[fill:fill + span])
                    except ClientAborted:
                        if fill:  # what arrived before the cut is the client's data (kept for a resume)
                            yield view[:fill]
                        raise
                    fill += got
                    span -= got
                    if self.length is not None:
                        self.reader.length -= got
                    if fill == len(view):
                        yield view
                        view = None
            if view is not None and fill:
                yield view[:fill]
            self._finished()
        except BaseException:
            self.body.failed = True  # where the next request starts is unknown: close
            raise
        finally:
            ring.close()

    def _length_body(self) -> Iterator[int]:
        surplus = len(self.pending) - self.length
        if surplus > 0:  # bytes of the next request, pipelined behind this body
            self.unreader.unread(bytes(self.pending[self.length:]))
            del self.pending[self.length:]
        if self.length:
            yield self.length

    def _receive(self, view: memoryview) -> int:
        """Fill up to ``len(view)`` bytes: first what was read ahead, then from the socket."""
        if self.pending:
            count = min(len(self.pending), len(view))
            view[:count] = self.pending[:count]
            del self.pending[:count]
            return count
        try:
            got = self.sock.recv_into(view)
        except OSError as exc:  # timeout, reset
            raise _interrupted(exc) from None
        if not got:
            if self.length is not None:
                raise ClientAborted("The upload ended before the declared Content-Length was received.")
            raise ClientAborted("The upload ended before the last chunk of the body.")
        return got

    def _chunked_body(self) -> Iterator[int]:
        """Yield the payload size of each chunk, consuming its framing; then the trailers."""
        size = self._chunk_size(self._line())
        while size:
            yield size
            if self._line() != b"":
                raise BadFraming("Invalid chunked body: a chunk is not followed by CRLF.")
            size = self._chunk_size(self._line())
        total = 0
        while True:  # trailer fields up to the empty line; read and dropped
            line = self._line(MAX_TRAILERS - total)
            total += len(line) + 2
            if not line:
                return

    def _line(self, limit: int = MAX_LINE) -> bytes:
        """One CRLF-terminated line of framing (without the CRLF)."""
        searched = 0
        while True:
            end = self.pending.find(b"\r\n", searched)
            if end >= 0:
                break
            if len(self.pending) > limit:
                raise BadFraming("Invalid chunked body: a framing line is too long.")
            searched = max(0, len(self.pending) - 1)
            try:
                data = self.sock.recv(FRAMING_READ)
            except OSError as exc:
                raise _interrupted(exc) from None
            if not data:
                raise ClientAborted("The upload ended before the last chunk of the body.")
            self.pending += data
        line = bytes(self.pending[:end])
        del self.pending[:end + 2]
        if b"\n" in line:
            raise BadFraming("Invalid chunked body: bare LF in the framing.")
        return line

    @staticmethod
    def _chunk_size(line: bytes) -> int:
        digits, sep, ext = line.partition(b";")
        if sep:
            if b"\r" in ext or not CHUNK_EXT_RE.fullmatch(b";" + ext):
                raise BadFraming("Invalid chunked body: bad chunk extension.")
            digits = digits.rstrip(b" \t")
        if not digits or len(digits) > 16 or not HEX.issuperset(digits):
            raise BadFraming("Invalid chunked body: bad chunk size.")
        return int(digits, 16)

    def _finished(self) -> None:
        """Tell gunicorn the body is consumed and give back what was read past it."""
        if self.length is None:
            self.reader.parser = None
            self.reader.buf = io.BytesIO()
        if self.pending:
            self.unreader.unread(bytes(self.pending))
            self.pending = bytearray()


def _take_buffered(unreader) -> bytes:
    take = getattr(unreader, "take_buffered", None)
    if take is not None:
        return take()
    data = unreader.buf.getvalue()
    unreader.buf = io.BytesIO()
    return data


def direct_source(stream, content_length: int | None) -> _Direct | None:
    """A direct reader of ``stream`` when it is gunicorn's untouched body over a plain socket.

    Guarded on the exact classes and attributes it relies on (gunicorn 23-27); any other
    server, a TLS socket, or a body already partly read gets None: the plain path.
    """
    try:
        from gunicorn.http.body import Body, ChunkedReader, LengthReader
        from gunicorn.http.unreader import SocketUnreader
    except ImportError:  # pragma: no cover - another WSGI server
        return None
    if type(stream) is not Body or not isinstance(getattr(stream, "buf", None), io.BytesIO) or stream.buf.tell():
        return None
    reader = stream.reader
    if content_length is not None and type(reader) is LengthReader and reader.length == content_length:
        unreader = reader.unreader
    elif (content_length is None and type(reader) is ChunkedReader and inspect.isgenerator(reader.parser)
          and inspect.getgeneratorstate(reader.parser) == inspect.GEN_CREATED and not reader.buf.tell()):
        unreader = getattr(getattr(reader, "req", None), "unreader", None)
    else:
        return None
    if type(unreader) is not SocketUnreader or not isinstance(getattr(unreader, "buf", None), io.BytesIO):
        return None
    sock = unreader.sock
    if type(sock) is not socket.socket or not hasattr(stream, "failed"):
        return None
    return _Direct(stream, reader, unreader, sock, content_length)
