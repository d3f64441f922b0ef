"""A byte range of an open data file, which the WSGI server can send with sendfile."""
from __future__ import annotations

import io
import os
from typing import Iterator

from imagedata.stores.base import READ_PIECE


class FileRange(io.RawIOBase):
    """A read-only view of ``length`` bytes of an open data file, starting at ``start``.

    It keeps the real file descriptor (``fileno``) so the WSGI server can hand the
    slice to ``sendfile``; reads never return bytes past the slice.
    """

    mode = "rb"

    def __init__(self, fd: int, start: int, length: int, accel_name: str | None = None):
        super().__init__()
        self.accel_name = accel_name
        self.raw = os.fdopen(fd, "rb", buffering=0)
        self.size = os.fstat(fd).st_size
        self.remaining = length
        self.raw.seek(start)

    def local_file(self) -> "FileRange":
        """The reader itself: a real file the server can sendfile from."""
        return self

    def readable(self) -> bool:
        """Always readable."""
        return True

    def fileno(self) -> int:
        """The underlying descriptor, positioned at the slice start."""
        return self.raw.fileno()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, never past the end of the slice."""
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.raw.read(size)
        self.remaining -= len(data)
        return data

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` from the slice; returns the count."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        """The slice in pieces of at most 1 MiB (when sendfile is not used)."""
        while True:
            data = self.read(READ_PIECE)
            if not data:
                return
            yield data

    def seek(self, pos: int, whence: int = 0) -> int:
        """Move the underlying file (socket.sendfile does this after sending)."""
        return self.raw.seek(pos, whence)

    def tell(self) -> int:
        """Position of the underlying file."""
        return self.raw.tell()

    def close(self) -> None:
        """Close the underlying file (idempotent)."""
        try:
            self.raw.close()
        finally:
            super().close()
