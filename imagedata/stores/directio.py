"""Appending to a file with direct I/O: the bytes go from one reused buffer to the disk.

A buffered write copies every byte into freshly allocated page-cache pages. On a virtual
machine whose free memory goes back to the host, each new page costs a host fault, and
that copy becomes the most expensive step of an upload (2-3 CPU-seconds per GiB here,
more than the two hashes together). An image being uploaded is not read back through the
page cache, so it has no reason to fill it: ``O_DIRECT`` writes skip it.

Direct I/O needs the buffer address, the length and the file offset aligned to the
device's block size. ``AlignedAppender`` copies what it is given into a page-aligned
staging buffer and writes whole buffers at aligned offsets; the last partial block is
written padded with zeros and cut off by the caller's ``ftruncate``. Where the
filesystem refuses ``O_DIRECT`` (tmpfs, some network filesystems), or accepts the flag but
refuses the writes (``EINVAL``: a larger alignment than assumed), the same code writes
through the page cache.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os

ALIGN = 4096  # a multiple of every logical block size in use (512 and 4096)
STAGE_SIZE = 1 << 20
O_DIRECT = getattr(os, "O_DIRECT", 0)


class AlignedAppender:
    """Writes a stream of pieces to ``fd`` from ``offset`` on, in aligned whole buffers."""

    def __init__(self, fd: int, offset: int = 0, stage_size: int = STAGE_SIZE):
        self.fd = fd
        self.direct = False
        self.stage = mmap.mmap(-1, stage_size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.view = memoryview(self.stage)
        self.at = offset - offset % ALIGN  # where the staged bytes go in the file
        self.filled = 0
        if offset % ALIGN:  # resuming mid-block: that block is rewritten whole
            self.filled = os.preadv(fd, [self.view[:offset % ALIGN]], self.at)
            if self.filled != offset % ALIGN:
                raise OSError(0, "the kept data is shorter than recorded")

    def start_direct(self) -> bool:
        """Switch the descriptor to direct I/O if the filesystem allows it; True if it did."""
        if not O_DIRECT:
            return False
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) | O_DIRECT)
        except OSError:
            return False
        self.direct = True
        return True

    def write(self, data: memoryview) -> None:
        """Stage ``data``, writing each buffer out as it fills; aligned pieces go out as they are."""
        if not self.filled and len(data) % ALIGN == 0 and _aligned(data):
            self._put(data)
            return
        size = len(self.view)
        while data:
            count = min(size - self.filled, len(data))
            self.view[self.filled:self.filled + count] = data[:count]
            self.filled += count
            data = data[count:]
            if self.filled == size:
                self._put(self.view)
                self.filled = 0

    def flush(self) -> None:
        """Write what is staged; a partial last block is padded with zeros (truncate after)."""
        if self.filled:
            length = -(-self.filled // ALIGN) * ALIGN
            self.view[self.filled:length] = bytes(length - self.filled)
            self._put(self.view[:length])
            self.filled = 0

    def _put(self, view: memoryview) -> None:
        while view:
            try:
                written = os.pwrite(self.fd, view, self.at)
            except OSError as exc:
                if not (self.direct and exc.errno == errno.EINVAL):
                    raise
                self._stop_direct()  # accepted O_DIRECT, refuses its writes: use the page cache
                continue
            self.at += written
            view = view[written:]

    def _stop_direct(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~O_DIRECT)
        self.direct = False

    def close(self) -> None:
        """Release the staging buffer (the descriptor stays the caller's); never raises."""
        self.view.release()
        try:
            self.stage.close()
        except BufferError:  # a slice is still referenced (a traceback): unmapped when it goes
            pass


def _aligned(view: memoryview) -> bool:
    """True if the piece starts on an ``ALIGN`` boundary (only writable buffers can tell)."""
    if view.readonly or not view.c_contiguous or not len(view):
        return False
    return ctypes.addressof(ctypes.c_char.from_buffer(view)) % ALIGN == 0
