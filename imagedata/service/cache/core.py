"""This host's image cache: verified copies of images from remote stores, on local disk.

The download layer calls ``ImageCache.open`` for images whose copy would be read from a
store that is not a local folder, after the database said the caller may read the image
(so a deleted or deactivated image never reaches it). A copy is served with sendfile or
X-Accel-Redirect; a whole download on a miss starts a fill and follows it; a ranged miss
reads its range from the store and fills the whole image in the background. See
docs/cache.rst.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Callable

from imagedata import metrics
from imagedata.service.cache.fill import BUSY, CACHED, Fill, ImageFacts, begin_fill, remove_copy
from imagedata.service.cache.index import CacheIndex, Entry, Usage
from imagedata.service.cache.layout import Layout, is_locked, unlink_quiet
from imagedata.service.cache.readers import CachedRange, FillFollower
from imagedata.stores.base import DataReader

log = logging.getLogger(__name__)

# Where X-Accel-Redirect finds the copies: <IMAGEDATA_ACCEL_REDIRECT>/_cache/<image id> (a
# store id never starts with "_", so this never meets a store's folder).
PLACE = "_cache"
BACKGROUND_FILLS = 4  # ranged misses and prefetches filling at once, per process
JOIN_SECONDS = 2.0  # how long a reader waits for another thread's fill to create its file
# (place, reader) of a byte range of the image, read from its store (place: the store id).
Source = Callable[[int, int], tuple[str, DataReader]]


class ImageCache:
    """The cache folder of this host, bounded by ``max_bytes``."""

    def __init__(self, root: str, max_bytes: int):
        self.layout = Layout(root)
        self.index = CacheIndex(self.layout.index_path)
        self.max_bytes = max_bytes
        self.fills: dict[str, Fill] = {}  # the fills running in this process
        self._guard = threading.Lock()
        self._background = threading.BoundedSemaphore(BACKGROUND_FILLS)

    def prepare(self) -> None:
        """Create the folder and the index (cheap, idempotent)."""
        self.layout.prepare()
        self.index.prepare()

    def recover(self) -> int:
        """At server start: discard what unfinished fills left and make the index and the
        files agree; how many things were removed."""
        layout, removed = self.layout, 0
        for image_id in layout.partial_ids():
            if not is_locked(layout.lock(image_id)):
                removed += unlink_quiet(layout.partial(image_id))
        rows = self.index.entries(None)
        dead = [row for row in rows if row.state == "filling" and not is_locked(layout.lock(row.image_id))]
        for row in dead:  # a fill stopped between publishing its verified copy and saying so keeps it
            if not (_has_size(layout.final(row.image_id), row.size) and self.index.mark_cached(row.image_id)):
                removed += len(self.index.forget([row.image_id], state="filling"))
        rows = self.index.entries(None)
        files = set(layout.cached_ids())
        lost = [row.image_id for row in rows if row.state == "cached" and not _has_size(layout.final(row.image_id),
                                                                                         row.size)]
        removed += len(self.index.forget(lost, state="cached"))
        known = {row.image_id for row in rows if row.image_id not in lost}
        for image_id in sorted(files - known):
            removed += remove_copy(layout, image_id)
        if removed:
            log.info("image cache %s: %d leftover(s) of unfinished fills removed", layout.root, removed)
        self.prune()
        return removed

    def prune(self) -> tuple[int, int]:
        """Evict copies until the cache fits its limit (it can only be over after the limit was
        lowered); (copies, bytes) evicted."""
        evicted = self.index.shrink(self.max_bytes)
        for entry in evicted:
            remove_copy(self.layout, entry.image_id, evicted=True)
        return len(evicted), sum(entry.size for entry in evicted)

    def open(self, image: ImageFacts, start: int, length: int, source: Source) -> tuple[str, DataReader]:
        """A byte range of ``image`` (``length`` 0: a HEAD, no data read): the cached copy,
        a fill followed as it grows, or the store's reader when the image is not cached.
        A cache that fails (its disk, its index) sends the download to the store."""
        try:
            return self._open(image, start, length, source)
        except (OSError, sqlite3.Error) as exc:
            log.error("image cache %s failed (%s); image %s is read from its store", self.layout.root, exc, image.id)
            return source(start, length)

    def _open(self, image: ImageFacts, start: int, length: int, source: Source) -> tuple[str, DataReader]:
        fd = self._open_copy(image, hit=bool(length))
        if fd is not None:
            if length:
                metrics.count_cache_lookup(hit=True)
            return PLACE, CachedRange(fd, start, length, image.id)
        if not length or not image.size or image.size > self.max_bytes:
            if length:
                metrics.count_cache_lookup(hit=False)
            return source(start, length)
        metrics.count_cache_lookup(hit=False)
        if (start, length) != (0, image.size):
            found = source(start, length)
            self.fill_later(image, source)
            return found
        for _ in range(3):
            outcome = begin_fill(self.layout, self.index, self.max_bytes, image, lambda: source(0, image.size)[1])
            if isinstance(outcome, Fill):
                # Open the partial file before its fill runs: a fill that ends at once (renamed,
                # or failed and removed) must still be followed to its verdict.
                try:
                    fd = os.open(self.layout.partial(image.id), os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    self._start(outcome)  # it still fills the cache; this download reads the store
                    raise
                return PLACE, self._follow(image, self._start(outcome), start, length, source, fd)
            if outcome == BUSY:
                joined = self._join(image, start, length, source)
                if joined is not None:
                    return PLACE, joined
            elif outcome == CACHED:
                fd = self._open_copy(image, hit=False)
                if fd is not None:
                    return PLACE, CachedRange(fd, start, length, image.id)
            else:  # no room now, or a full disk: the store serves it
                break
        return source(start, length)

    def _open_copy(self, image: ImageFacts, hit: bool) -> int | None:
        """The open copy of the image, if there is one and it holds the data the record says
        now (its size, and the identity its fill verified); a hit is counted when ``hit``. A
        copy of other data is dropped."""
        try:
            fd = os.open(self.layout.final(image.id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        if os.fstat(fd).st_size == image.size:
            recorded = self.index.identity_of(image.id)
            if recorded == image.identity:
                if hit:
                    self.index.touch(image.id, image.identity)
                return fd
            if recorded is None:  # being removed
                os.close(fd)
                return None
        os.close(fd)
        log.error("image %s: the cached copy is not the image's data (size or digests differ); dropped", image.id)
        self.drop(image.id)
        return None

    def _start(self, fill: Fill) -> Fill:
        with self._guard:
            self.fills[fill.image.id] = fill
        fill.on_done.append(lambda done: self._forget_fill(done))
        return fill.start()

    def _forget_fill(self, fill: Fill) -> None:
        with self._guard:
            if self.fills.get(fill.image.id) is fill:
                del self.fills[fill.image.id]

    def _follow(self, image: ImageFacts, fill: Fill | None, start: int, length: int, source: Source,
                fd: int) -> FillFollower:
        return FillFollower(self.layout, image.id, image.size, fd, start, length,
                            lambda offset, count: source(offset, count)[1], fill.wait if fill else None)

    def _join(self, image: ImageFacts, start: int, length: int, source: Source) -> FillFollower | None:
        """Follow the fill another thread runs; None when it finished or stopped meanwhile."""
        deadline = time.monotonic() + JOIN_SECONDS
        while time.monotonic() < deadline:
            try:
                fd = os.open(self.layout.partial(image.id), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if os.path.exists(self.layout.final(image.id)) or not is_locked(self.layout.lock(image.id)):
                    return None
                time.sleep(0.005)
                continue
            if self.index.identity_of(image.id) != image.identity:  # a fill of other data
                os.close(fd)
                return None
            return self._follow(image, self.fills.get(image.id), start, length, source, fd)
        return None

    def fill_later(self, image: ImageFacts, source: Source,
                   on_done: Callable[[str], None] = lambda outcome: None) -> bool:
        """Fill ``image`` in the background (ranged misses, prefetches), unless it is filling
        in this process or enough background fills run already; False when not started."""
        if image.id in self.fills or not image.size or image.size > self.max_bytes:
            return False
        if not self._background.acquire(blocking=False):
            return False

        def run():
            try:
                outcome = begin_fill(self.layout, self.index, self.max_bytes, image,
                                     lambda: source(0, image.size)[1])
                if isinstance(outcome, Fill):
                    fill = self._start(outcome)
                    fill.done.wait()
                    outcome = fill.outcome
            except Exception as exc:  # the store could not be read: a later request tries again
                log.warning("image %s: background cache fill not started: %s", image.id,
                            getattr(exc, "message", None) or exc)
                metrics.count_cache_fill("store_error")
                outcome = "store_error"
            finally:
                self._background.release()
            on_done(outcome)

        threading.Thread(target=run, name=f"cache-later-{image.id[:8]}", daemon=True).start()
        return True

    def queue(self, image: ImageFacts, source: Source) -> None:
        """Queue an image for prefetching and start fetching it; it leaves the queue once
        cached, or when it can never be (its store's bytes fail verification)."""
        self.index.enqueue(image.id)

        def settle(outcome: str) -> None:
            if outcome in (CACHED, "corrupt"):
                self.index.dequeue([image.id])

        self.fill_later(image, source, settle)

    def is_cached(self, image_id: str) -> bool:
        """Whether a verified copy of the image is here."""
        return os.path.exists(self.layout.final(image_id))

    def drop(self, image_id: str) -> bool:
        """Forget an image: its copy, its fill's reservation, its queue entry; False when
        there was nothing."""
        forgotten = bool(self.index.forget([image_id])) + self.index.dequeue([image_id])
        return bool(remove_copy(self.layout, image_id) or forgotten)

    def clear(self, copies: bool = True, queue: bool = True) -> int:
        """Drop every cached copy and/or the whole queue (fills in progress go on); the count."""
        count = 0
        if copies:
            for image_id in self.index.forget([e.image_id for e in self.index.entries("cached")], state="cached"):
                remove_copy(self.layout, image_id)
                count += 1
        if queue:
            count += self.index.dequeue(self.index.queued())
        return count

    def entries(self) -> list[Entry]:
        """The cached copies, by image id."""
        return self.index.entries("cached")

    def usage(self) -> Usage:
        """Bytes and images held, fills in progress, images queued."""
        return self.index.usage()

    def free_disk_bytes(self) -> int | None:
        """Free bytes of the cache's filesystem (None if it cannot be read)."""
        try:
            info = os.statvfs(self.layout.root)
        except OSError:
            return None
        return info.f_bavail * info.f_frsize


def _has_size(path: str, size: int) -> bool:
    try:
        return os.stat(path).st_size == size
    except FileNotFoundError:
        return False
