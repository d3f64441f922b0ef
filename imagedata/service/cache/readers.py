"""Readers of the cache, with the store readers' contract (``size``, iteration, ``close``,
``local_file``, ``accel_name``): a verified copy, or a fill followed as it grows."""
from __future__ import annotations

import logging
import os
import stat
import time
from typing import Callable, Iterator

from imagedata import metrics
from imagedata.errors import ImageDataUnavailable, StoreUnavailable
from imagedata.service.cache.layout import MODE_BAD, MODE_VERIFIED, Layout, is_locked
from imagedata.stores.base import READ_PIECE, DataReader
from imagedata.stores.filerange import FileRange

log = logging.getLogger(__name__)

# A followed fill that brings no byte for this long is given up (the store's own read
# timeout, 60 s, ends a stalled fill before).
STALL_SECONDS = 90.0
POLL_FIRST, POLL_MOST = 0.001, 0.02


class CachedRange(FileRange):
    """A byte range of a verified copy: sendfile from the cache file, or X-Accel-Redirect to
    it; counts the bytes it served when closed."""

    def __init__(self, fd: int, start: int, length: int, image_id: str):
        super().__init__(fd, start, length, accel_name=image_id)
        self.start = start
        self.length = length
        self.furthest = start

    def seek(self, pos: int, whence: int = 0) -> int:
        """Move the file; socket.sendfile seeks to where it stopped (gunicorn then moves the
        descriptor back behind our back), which is how far the range was sent."""
        where = super().seek(pos, whence)
        self.furthest = max(self.furthest, where)
        return where

    def close(self) -> None:
        """Close the file; the bytes sent are counted."""
        if not self.closed:
            try:
                sent = max(self.furthest, self.raw.tell()) - self.start
                metrics.count_cache_bytes(min(max(sent, 0), self.length))
            except (OSError, ValueError):
                pass
        super().close()


class FillFollower:
    """A range of an image whose fill is in progress, read from the growing partial file.

    Bytes are sent as the fill writes them; the last byte only once the fill verified the
    whole image. If the fill fails (its thread gone, the disk full), the rest comes from the
    store; if its bytes failed verification, the answer is cut.
    """

    accel_name = None

    def __init__(self, layout: Layout, image_id: str, size: int, fd: int, start: int, length: int,
                 fallback: Callable[[int, int], DataReader], wait: Callable[[float], None] | None = None):
        self.layout = layout
        self.image_id = image_id
        self.size = size
        self.fd = fd
        self.start = start
        self.length = length
        self.fallback = fallback
        self.wait = wait  # wakes when a fill of this process writes (None: poll)
        self.inode = os.fstat(fd).st_ino
        self.rest: DataReader | None = None

    def local_file(self):
        """No: the file is still growing."""
        return None

    def __iter__(self) -> Iterator[bytes]:
        """The range, piece by piece as the fill brings it."""
        pos, end = self.start, self.start + self.length
        verified, pause, idle_since = False, POLL_FIRST, time.monotonic()
        while pos < end:
            info = os.fstat(self.fd)
            mode = stat.S_IMODE(info.st_mode)
            verified = verified or mode == MODE_VERIFIED
            limit = min(end, info.st_size if verified else min(info.st_size, self.size - 1))
            if pos < limit:
                data = os.pread(self.fd, min(READ_PIECE, limit - pos), pos)
                if not data:
                    raise StoreUnavailable("The image cache lost a file being filled.")
                pos += len(data)
                pause, idle_since = POLL_FIRST, time.monotonic()
                yield data
                continue
            if verified:  # every byte is there, yet not up to ``end``: the file was cut
                raise StoreUnavailable("The image cache lost a file being filled.")
            if mode == MODE_BAD or not self._fill_running():
                # A fill that ended leaves its verdict on the file, looked at again now: it may
                # have ended since the look above (verified: read on; bad bytes: cut the answer).
                mode = stat.S_IMODE(os.fstat(self.fd).st_mode)
                if mode == MODE_BAD:
                    raise ImageDataUnavailable("The image data does not match its checksum and cannot be served.")
                if mode == MODE_VERIFIED:
                    continue
                log.warning("image %s: the cache fill stopped; the rest comes from the store", self.image_id)
                yield from self._from_store(pos, end)
                return
            if time.monotonic() - idle_since > STALL_SECONDS:
                raise StoreUnavailable("The image cache fill stalled; try again.")
            if self.wait is not None:
                self.wait(POLL_MOST)
            else:
                time.sleep(pause)
                pause = min(pause * 2, POLL_MOST)

    def _fill_running(self) -> bool:
        """The fill of the file this reader holds is alive (its lock held, its name still ours)."""
        try:
            current = os.stat(self.layout.partial(self.image_id)).st_ino
        except FileNotFoundError:
            current = None
        if current != self.inode:
            # Renamed after verification (then the mode said so), removed, or replaced by a new fill.
            return stat.S_IMODE(os.fstat(self.fd).st_mode) == MODE_VERIFIED
        return is_locked(self.layout.lock(self.image_id))

    def _from_store(self, pos: int, end: int) -> Iterator[bytes]:
        self.rest = self.fallback(pos, end - pos)
        if self.rest.size != self.size:
            raise ImageDataUnavailable("The image data is damaged and cannot be served.")
        yield from self.rest

    def close(self) -> None:
        """Release the file and any store reader (idempotent)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
        rest, self.rest = self.rest, None
        if rest is not None:
            rest.close()
