"""How much of a request body the app has read (for the access log and the lingering close),
without getting in the way of the direct source: gunicorn's own body is counted from its
bookkeeping, any other stream is wrapped."""
from __future__ import annotations

from typing import Callable

from imagedata.server.body import gunicorn_types


class CountingInput:
    """The request body stream, counting the bytes the app reads from it."""

    def __init__(self, stream):
        self.stream = stream
        self.count = 0

    def read(self, *args):
        """Read and count."""
        data = self.stream.read(*args)
        self.count += len(data)
        return data

    def readline(self, *args):
        """Read a line and count it."""
        data = self.stream.readline(*args)
        self.count += len(data)
        return data

    def readlines(self, *args):
        """Read lines and count them."""
        lines = self.stream.readlines(*args)
        self.count += sum(len(line) for line in lines)
        return lines

    def __iter__(self):
        for line in self.stream:
            self.count += len(line)
            yield line

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _length_read(environ: dict) -> int | None:
    """Bytes of a Content-Length body read so far, from gunicorn's own bookkeeping (which both
    read paths keep exact); None for chunked bodies."""
    reader = getattr(environ.get("wsgi.input"), "reader", None)
    declared = str(environ.get("CONTENT_LENGTH") or "")
    left = getattr(reader, "length", None)
    if not isinstance(left, int) or not declared.isdigit():
        return None
    return max(0, int(declared) - left)


def bytes_left(environ: dict) -> int | None:
    """Bytes of a Content-Length body not read yet (None when unknown: chunked, other servers)."""
    types = gunicorn_types()
    stream = environ.get("wsgi.input")
    if types is None or type(stream) is not types[0] or type(getattr(stream, "reader", None)) is not types[2]:
        return None
    read = _length_read(environ)
    return None if read is None else int(environ["CONTENT_LENGTH"]) - read


def watch_body(environ: dict) -> Callable[[], int | None]:
    """Count the request body bytes the app reads: gunicorn's own body is left untouched (the
    direct source needs it) and counted from its bookkeeping; any other stream is wrapped.
    The returned function gives the count so far (None when unknown: a chunked body)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return lambda: 0
    types = gunicorn_types()
    if types is not None and type(stream) is types[0]:
        if type(getattr(stream, "reader", None)) is types[2]:
            return lambda: _length_read(environ)
        return lambda: None
    counting = environ["wsgi.input"] = CountingInput(stream)
    return lambda: counting.count
