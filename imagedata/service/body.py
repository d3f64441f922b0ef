"""Reading an upload body from the WSGI input: exact lengths, chunked bodies, aborts."""
from __future__ import annotations

from imagedata.errors import BadRequest


class ClientAborted(BadRequest):
    """The client stopped sending the image data before the end of the body."""


class BodyReader:
    """Yields the body in chunks of at most ``chunk_size`` bytes.

    With a Content-Length, exactly that many bytes are read and a short body is an
    abort. Without one, the server must terminate the stream (chunked framing); the
    caller checks that before building a reader.
    """

    def __init__(self, stream, content_length: int | None, chunk_size: int):
        self.stream = stream
        self.remaining = content_length
        self.chunk_size = chunk_size

    def chunks(self):
        """Iterate over the body; raises ClientAborted on a short or broken body."""
        while self.remaining is None or self.remaining > 0:
            want = self.chunk_size if self.remaining is None else min(self.chunk_size, self.remaining)
            try:
                data = self.stream.read(want)
            except Exception as exc:  # socket timeout, reset, bad chunk framing
                raise ClientAborted(f"The upload was interrupted: {type(exc).__name__}.") from None
            if not data:
                if self.remaining is not None:
                    raise ClientAborted("The upload ended before the declared Content-Length was received.")
                return
            if self.remaining is not None:
                self.remaining -= len(data)
            yield data
