"""Filling the cache: an image streamed from its store into a partial file by a thread of its
own, its bytes checked against the image's record, then published under the image's id."""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import threading
from typing import Callable

from imagedata import metrics
from imagedata.config import HASH_ALGORITHMS
from imagedata.errors import ImageDataError
from imagedata.service.cache.index import CacheIndex
from imagedata.service.cache.layout import (MODE_BAD, MODE_VERIFIED, Layout, create_partial, is_locked, publish,
                                            reserve_disk, try_lock, unlink_quiet, unlock, write_all)
from imagedata.service.digest import OneDigest
from imagedata.stores.base import DataMissing, DataReader
from imagedata.stores.writeback import Flusher

log = logging.getLogger(__name__)

BUSY, CACHED, NO_ROOM, DISK_FULL = "busy", "cached", "no_room", "disk_full"
WRITEBACK_BYTES = 64 << 20  # the fsync before publishing then finds little left to write
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


@dataclasses.dataclass(frozen=True)
class ImageFacts:
    """What the cache knows of an image, from its record: id, size and digests."""

    id: str
    size: int
    checksum: str | None = None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None

    @property
    def identity(self) -> str:
        """The data these facts describe, as one string: a copy made for one identity never
        serves another (an image whose record changed, an id used again)."""
        return f"{self.size}:{self.checksum or ''}:{self.os_hash_algo or ''}:{self.os_hash_value or ''}"

    @classmethod
    def of(cls, image) -> "ImageFacts":
        """The facts of an image record (a model row or anything with the same attributes)."""
        return cls(image.id, image.size or 0, image.checksum, image.os_hash_algo, image.os_hash_value)


class FillFailed(Exception):
    """A fill ended without a copy: ``reason`` is the metric label."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Fill:
    """One image being copied into the cache; followers wait on ``wait``."""

    def __init__(self, layout: Layout, index: CacheIndex, image: ImageFacts, lock_fd: int, fd: int,
                 reader: DataReader):
        self.layout, self.index, self.image = layout, index, image
        self.lock_fd, self.fd, self.reader = lock_fd, fd, reader
        self.written = 0
        self.published = False
        self.outcome: str | None = None  # "cached", or why not
        self.changed = threading.Condition()
        self.done = threading.Event()
        self.on_done: list[Callable[["Fill"], None]] = []

    def start(self) -> "Fill":
        """Run the copy in a daemon thread."""
        threading.Thread(target=self._run, name=f"cache-fill-{self.image.id[:8]}", daemon=True).start()
        return self

    def wait(self, timeout: float) -> None:
        """Block until the fill writes or ends, at most ``timeout`` seconds."""
        with self.changed:
            if not self.done.is_set():
                self.changed.wait(timeout)

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def _run(self) -> None:
        try:
            self._copy()
            self.published = True  # from here a failure removes the copy too: no file without its row
            publish(self.fd, self.layout.partial(self.image.id), self.layout.final(self.image.id))
            if not self.index.mark_cached(self.image.id):
                raise FillFailed("dropped", "the image was dropped from the cache while it filled")
            self.outcome = "cached"
            metrics.count_cache_fill(None)
            log.info("image %s cached (%d bytes)", self.image.id, self.image.size)
        except FillFailed as exc:
            self._fail(exc.reason, str(exc))
        except DataMissing:
            self._fail("store_error", "the data is missing from its store")
        except ImageDataError as exc:
            self._fail("store_error", exc.message)
        except OSError as exc:
            self._fail("disk_full" if exc.errno in FULL_ERRNOS else "io_error", str(exc))
        except BaseException as exc:  # a fill never takes its worker down
            log.exception("image %s: cache fill failed", self.image.id)
            self._fail("error", type(exc).__name__)
        finally:
            os.close(self.fd)
            unlock(self.lock_fd)
            self.done.set()
            self._notify()
            for callback in self.on_done:
                callback(self)

    def _copy(self) -> None:
        image = self.image
        algorithm, wanted, named = _check_against(image)
        digest = OneDigest(algorithm) if wanted else None
        flusher = Flusher(self.fd, WRITEBACK_BYTES)
        try:
            for piece in self.reader:
                write_all(self.fd, piece)
                if digest is not None:
                    digest.update(piece)
                self.written += len(piece)
                flusher.advance(self.written)
                self._notify()
        finally:
            self.reader.close()
            flusher.stop()
            if digest is not None:
                digest.close()
        if self.written != image.size:
            raise FillFailed("corrupt", f"the store gave {self.written} bytes, the image has {image.size}")
        if digest is not None and digest.finish() != wanted:
            raise FillFailed("corrupt", f"{algorithm} does not match the image's {named}")
        os.fchmod(self.fd, MODE_VERIFIED)  # followers may now send the last bytes
        self._notify()

    def _fail(self, reason: str, message: str) -> None:
        self.outcome = reason
        if reason == "corrupt":
            os.fchmod(self.fd, MODE_BAD)  # followers cut their answers
            log.error("image %s: not cached, its store's bytes fail verification: %s", self.image.id, message)
        elif reason != "dropped":
            log.warning("image %s: cache fill abandoned (%s): %s", self.image.id, reason, message)
        unlink_quiet(self.layout.partial(self.image.id))
        if self.published:
            self.layout.remove(self.image.id)
        self.index.release(self.image.id)
        metrics.count_cache_fill(reason)


def _check_against(image: ImageFacts) -> tuple[str, str | None, str]:
    """The one digest a fill computes and compares: the image's ``os_hash_value`` when its
    algorithm is known (a collision-resistant digest: md5 beside it would add no assurance and
    cost a core-second per GiB), else its md5 ``checksum``; (algorithm, wanted or None, field)."""
    if image.os_hash_value and image.os_hash_algo in HASH_ALGORITHMS:
        return image.os_hash_algo, image.os_hash_value, "os_hash_value"
    return "md5", image.checksum or None, "checksum"


def begin_fill(layout: Layout, index: CacheIndex, limit: int, image: ImageFacts,
               open_reader: Callable[[], DataReader]) -> Fill | str:
    """Prepare to fill ``image`` if no one else is: a Fill to ``start``, or why not (BUSY: another
    thread fills it; CACHED: it is there; NO_ROOM: fills in progress hold the space;
    DISK_FULL: the disk has no room for it). Store errors of ``open_reader`` are raised."""
    lock_fd = try_lock(layout.lock(image.id))
    if lock_fd is None:
        return BUSY
    fd = None
    try:
        if os.path.exists(layout.final(image.id)):
            unlock(lock_fd)
            return CACHED
        evicted = index.reserve(image.id, image.size, image.identity, limit,
                                lambda other: is_locked(layout.lock(other)))
        if evicted is None:
            unlock(lock_fd)
            return NO_ROOM
        for entry in evicted:
            remove_copy(layout, entry.image_id, evicted=True)
        fd = create_partial(layout.partial(image.id))
        reserve_disk(fd, image.size)
        reader = open_reader()
    except OSError as exc:
        _abandon(layout, index, image.id, fd, lock_fd)
        if exc.errno not in FULL_ERRNOS:
            raise
        log.warning("image %s: not cached, the cache's disk has no room for %d bytes", image.id, image.size)
        metrics.count_cache_fill(DISK_FULL)
        return DISK_FULL
    except BaseException:
        _abandon(layout, index, image.id, fd, lock_fd)
        raise
    return Fill(layout, index, image, lock_fd, fd, reader)


def _abandon(layout: Layout, index: CacheIndex, image_id: str, fd: int | None, lock_fd: int) -> None:
    if fd is not None:
        os.close(fd)
        unlink_quiet(layout.partial(image_id))
    index.release(image_id)
    unlock(lock_fd)


def remove_copy(layout: Layout, image_id: str, evicted: bool = False) -> bool:
    """Remove the copy of an image whose row is gone, unless a new fill of it runs (that fill's
    publish replaces the file, or its row is gone too and it removes what it wrote)."""
    lock_fd = try_lock(layout.lock(image_id))
    if lock_fd is None:
        return False
    try:
        removed = layout.remove(image_id)
    finally:
        unlock(lock_fd)
    if removed and evicted:
        metrics.count_cache_eviction()
        log.info("image %s evicted from the cache", image_id)
    return removed
