"""Reading an upload body into reused, page-aligned buffers: exact lengths, ends and aborts.

The body comes from a *source*: any object with ``readinto(buffer) -> count`` (0 at the
end of the body) and ``close()``. The server runtime (``imagedata.server.body``) gives one
that receives straight from the client's socket into these buffers; anything else with
``readinto`` (a file, ``io.BytesIO``) works too. Reading into a small ring of page-aligned
buffers that are reused matters: the kernel copies into a buffer that is not 32-byte aligned
4-5x slower on our machines, and a fresh megabyte per read costs page faults.
"""
from __future__ import annotations

import mmap
from typing import Callable, Iterator

from imagedata.errors import ClientAborted, ImageDataError

PAGE = mmap.PAGESIZE
RING = 4  # buffers per upload: one being filled, the rest being hashed


def interrupted(exc: BaseException) -> ClientAborted:
    """The error of a body that could not be read to its end."""
    return ClientAborted(f"The upload was interrupted: {type(exc).__name__}.")


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


class BodyReader:
    """Yields the body in pieces of at most ``chunk_size`` bytes.

    With a Content-Length, exactly that many bytes are read and a short body is an abort;
    without one, the source says where the body ends. ``settle(n)`` is called before a
    ring buffer is refilled and must return once at most ``n`` of the pieces yielded so far
    are still in use by someone else (the hashing threads); the pieces are then views of
    the ring's buffers. Without ``settle`` every piece is a fresh ``bytes``.
    """

    def __init__(self, source, content_length: int | None, chunk_size: int,
                 settle: Callable[[int], None] | None = None, most: int | None = None):
        self.source = source
        self.remaining = content_length
        self.chunk_size = chunk_size
        self.settle = settle
        # Never read more than ``most`` bytes: a caller whose limit is N passes N + 1, and one
        # byte past the limit is enough to refuse the upload without reading on.
        self.most = most

    def chunks(self) -> Iterator:
        """Iterate over the body; raises ClientAborted on a short or broken body."""
        ring = BufferRing(self.chunk_size)
        try:
            ended = False
            while not ended and (self.remaining is None or self.remaining > 0):
                if self.settle is not None:
                    self.settle(len(ring.views) - 1)
                view = ring.next()[:self.chunk_size]
                if self.remaining is not None:
                    view = view[:self.remaining]
                if self.most is not None:
                    view = view[:self.most]
                    if not view:
                        return
                fill = 0
                try:
                    while fill < len(view):
                        got = self._read(view[fill:])
                        if not got:
                            ended = True
                            break
                        fill += got
                except ClientAborted:
                    if fill:  # what arrived before the cut is the client's data (kept for a resume)
                        yield self._piece(view[:fill])
                    raise
                if fill:
                    yield self._piece(view[:fill])
                if self.most is not None:
                    self.most -= fill
                if self.remaining is not None:
                    self.remaining -= fill
                    if ended:
                        raise ClientAborted("The upload ended before the declared Content-Length was received.")
        finally:
            ring.close()
            self.source.close()

    def _read(self, view: memoryview) -> int:
        try:
            return self.source.readinto(view) or 0
        except ImageDataError:
            raise
        except Exception as exc:  # socket timeout, reset: the client is gone
            raise interrupted(exc) from None

    def _piece(self, view: memoryview):
        return view if self.settle is not None else bytes(view)
