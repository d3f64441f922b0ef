"""Request bodies as the service reads them: a source with ``readinto``, from the socket when possible.

``body_source`` gives the upload path a plain object (``readinto(buffer) -> count``, 0 at the
end of the body; ``close()``). Under gunicorn, with its untouched body object over a plain
socket, the source receives with ``recv_into`` from the client's socket straight into the
caller's buffer: gunicorn's own reader would copy every piece again (its ``BytesIO``
re-buffering: a write, a ``getvalue`` and a slice per read) and allocate a fresh megabyte
per read. It keeps gunicorn's bookkeeping (bytes left, bytes read ahead, failure) exact, so
keep-alive and pipelined requests work as on the plain path. Anything else (another server,
a TLS socket, a body already partly read, a gunicorn whose internals changed) gets the
plain source over ``wsgi.input``. ``bodycount.watch_body`` counts the body bytes read, for
the access log, without getting in the way of either.
"""
from __future__ import annotations

import inspect
import io
import re
import socket

from imagedata.errors import BadFraming, ClientAborted
from imagedata.service.body import interrupted

MAX_LINE = 8190  # a chunk-size line (gunicorn's limit_request_field_size)
MAX_TRAILERS = 8190 * 32  # a trailer section
FRAMING_READ = 4096  # bytes asked for while looking for a chunk-size line
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
CHUNK_EXT_RE = re.compile(rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED
                          + rb"))?)*")
HEX = frozenset(b"0123456789abcdefABCDEF")
SHORT_BODY = "The upload ended before the declared Content-Length was received."
SHORT_CHUNKED = "The upload ended before the last chunk of the body."


class PlainSource:
    """A WSGI input stream as a body source (any server)."""

    def __init__(self, stream):
        self.stream = stream

    def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` bytes into ``view``."""
        try:
            data = self.stream.read(len(view))
        except Exception as exc:  # socket timeout, reset, bad chunk framing
            raise interrupted(exc) from None
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        """Nothing to release: the server owns the stream."""


class _Direct:
    """Reads a request body straight from gunicorn's socket, keeping gunicorn's state exact."""

    def __init__(self, body, reader, unreader, sock: socket.socket, length: int | None):
        self.body = body
        self.reader = reader
        self.unreader = unreader
        self.sock = sock
        self.length = length
        self.pending = bytearray()
        self.started = False
        self.done = False
        self.chunk_left = 0  # payload bytes left in the current chunk (chunked bodies)
        self.chunks_seen = 0

    def readinto(self, view: memoryview) -> int:
        """Receive up to ``len(view)`` payload bytes; 0 once the body has ended."""
        try:
            if not self.started:
                self._start()
            if self.done:
                return 0
            if self.length is not None:
                return self._length_part(view)
            return self._chunked_part(view)
        except BaseException:
            self.body.failed = True  # where the next request starts is unknown: close
            raise

    def close(self) -> None:
        """A body left unread marks the connection unusable for another request."""
        if not self.done and not (self.length == 0 and not self.started):
            self.body.failed = True

    def _start(self) -> None:
        self.started = True
        self.pending += _take_buffered(self.unreader)  # read ahead with the headers
        if self.length is not None:
            surplus = len(self.pending) - self.length
            if surplus > 0:  # bytes of the next request, pipelined behind this body
                self.unreader.unread(bytes(self.pending[self.length:]))
                del self.pending[self.length:]

    def _length_part(self, view: memoryview) -> int:
        if self.reader.length == 0:
            self._finished()
            return 0
        got = self._receive(view[:self.reader.length])
        self.reader.length -= got
        if self.reader.length == 0:
            self._finished()
        return got

    def _chunked_part(self, view: memoryview) -> int:
        if self.chunk_left == 0:
            if self.chunks_seen and self._line() != b"":
                raise BadFraming("Invalid chunked body: a chunk is not followed by CRLF.")
            size = self._chunk_size(self._line())
            self.chunks_seen += 1
            if size == 0:
                self._trailers()
                self._finished()
                return 0
            self.chunk_left = size
        got = self._receive(view[:self.chunk_left])
        self.chunk_left -= got
        return got

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
            raise interrupted(exc) from None
        if not got:
            raise ClientAborted(SHORT_BODY if self.length is not None else SHORT_CHUNKED)
        return got

    def _trailers(self) -> None:
        """Trailer fields up to the empty line: read and dropped."""
        total = 0
        while True:
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
                raise interrupted(exc) from None
            if not data:
                raise ClientAborted(SHORT_CHUNKED)
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
        self.done = True
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


def gunicorn_types():
    """gunicorn's body classes (Body, ChunkedReader, LengthReader, SocketUnreader), or None."""
    try:
        from gunicorn.http.body import Body, ChunkedReader, LengthReader
        from gunicorn.http.unreader import SocketUnreader
    except ImportError:  # pragma: no cover - another WSGI server
        return None
    return Body, ChunkedReader, LengthReader, SocketUnreader


def direct_source(stream, content_length: int | None) -> _Direct | None:
    """A direct reader of ``stream`` when it is gunicorn's untouched body over a plain socket.

    Guarded on the exact classes and attributes it relies on (gunicorn 23-27); any other
    server, a TLS socket, or a body already partly read gets None: the plain path.
    """
    types = gunicorn_types()
    if types is None:
        return None
    body_type, chunked_type, length_type, unreader_type = types
    if type(stream) is not body_type or not isinstance(getattr(stream, "buf", None), io.BytesIO) or stream.buf.tell():
        return None
    reader = stream.reader
    if content_length is not None and type(reader) is length_type and reader.length == content_length:
        unreader = reader.unreader
    elif (content_length is None and type(reader) is chunked_type and inspect.isgenerator(reader.parser)
          and inspect.getgeneratorstate(reader.parser) == inspect.GEN_CREATED and not reader.buf.tell()):
        unreader = getattr(getattr(reader, "req", None), "unreader", None)
    else:
        return None
    if type(unreader) is not unreader_type or not isinstance(getattr(unreader, "buf", None), io.BytesIO):
        return None
    sock = unreader.sock
    if type(sock) is not socket.socket or not hasattr(stream, "failed"):
        return None
    return _Direct(stream, reader, unreader, sock, content_length)


def body_source(environ: dict, content_length: int | None):
    """The request body as a source for the upload path: direct from the socket, or plain."""
    stream = environ["wsgi.input"]
    return direct_source(stream, content_length) or PlainSource(stream)
