"""Filesystem store: one directory; data at ``<root>/<image id>.<upload attempt>``.

Each upload attempt writes a hidden ``.<image id>.<attempt>.part`` file, fsyncs it and
renames it to its final name, so two attempts never touch each other's bytes and a
crashed attempt leaves only names the scrubber can attribute. The bytes are written with
direct I/O where the filesystem allows it (``directio.py``). Reads hand the open file to
the WSGI server, which sends it with sendfile.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from typing import Iterator

from imagedata.errors import ImageDataUnavailable, StoreFull, StoreUnavailable
from imagedata.stores.base import (READ_PIECE, CachedHealth, DataMissing, Kept, StoreHealth, StoredObject, data_name,
                                   split_data_name)
from imagedata.stores.directio import AlignedAppender
from imagedata.stores.filerange import FileRange
from imagedata.stores.writeback import Flusher

FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
FILE_MODE = 0o640
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
UNFINISHED_SUFFIX = ".part"


def unfinished_name(image_id: str, attempt: str) -> str:
    """The hidden temporary file name of one upload attempt."""
    return f".{data_name(image_id, attempt)}{UNFINISHED_SUFFIX}"


def _parse_name(name: str) -> tuple[str, str, str]:
    """Classify a directory entry as (kind, image id, attempt)."""
    parsed = split_data_name(name)
    if parsed:
        return ("data",) + parsed
    if name.startswith(".") and name.endswith(UNFINISHED_SUFFIX):
        parsed = split_data_name(name[1:-len(UNFINISHED_SUFFIX)])
        if parsed:
            return ("unfinished",) + parsed
    return "unknown", "", ""


class FilesystemWriter:
    """Writes one upload attempt to a temporary file, then renames it into place."""

    def __init__(self, store: "FilesystemStore", image_id: str, attempt: str, expected_size: int | None,
                 kept: Kept | None = None):
        self.store = store
        self.state = unfinished_name(image_id, attempt)
        self.final_path = os.path.join(store.root, data_name(image_id, attempt))
        self.temp_path = os.path.join(store.root, self.state)
        self.offset = 0
        self.fd = -1
        self.flusher = Flusher(-1, 0)  # the real one starts once the file is open
        self.writing = False  # until the first write: ``kept()`` reads through the page cache
        try:
            if kept is None:
                self.fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                  FILE_MODE)
            else:
                self._adopt(kept.state, kept.size)
        except OSError as exc:
            raise store.translate(exc) from None
        try:
            self.appender = AlignedAppender(self.fd, self.offset)
        except OSError as exc:
            os.close(self.fd)
            if kept is None:
                os.unlink(self.temp_path)
            raise store.translate(exc) from None
        if expected_size and expected_size > self.offset:
            self._preallocate(expected_size)

    def _adopt(self, kept_name: str, kept_size: int) -> None:
        """Continue the kept temporary file of an earlier attempt under this attempt's name."""
        kept_path = os.path.join(self.store.root, kept_name)
        try:
            st = os.stat(kept_path, follow_symlinks=False)
        except FileNotFoundError:
            raise DataMissing(kept_name) from None
        if not stat.S_ISREG(st.st_mode) or st.st_size < kept_size:
            raise DataMissing(kept_name)
        os.rename(kept_path, self.temp_path)
        self.fd = os.open(self.temp_path, os.O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        os.ftruncate(self.fd, kept_size)
        os.lseek(self.fd, kept_size, os.SEEK_SET)
        self.offset = kept_size

    def kept(self) -> Iterator[bytes]:
        """The bytes held before this writer started (a resumed upload's prefix), in pieces."""
        position = 0
        while position < self.offset:
            try:
                data = os.pread(self.fd, min(READ_PIECE, self.offset - position), position)
            except OSError as exc:
                raise self.store.translate(exc) from None
            if not data:
                raise DataMissing(self.state)
            position += len(data)
            yield data

    def _preallocate(self, size: int) -> None:
        """Reserve the blocks up front: a full disk is found before any byte is read."""
        try:
            os.posix_fallocate(self.fd, 0, size)
        except OSError as exc:
            if exc.errno in FULL_ERRNOS:
                self.abort()
                raise self.store.translate(exc) from None
            # Filesystems without fallocate support simply allocate while writing.

    def write(self, data: memoryview) -> None:
        """Append all of ``data`` to the temporary file."""
        if not self.writing:
            self._start_writing()
        self.offset += len(data)
        try:
            self.appender.write(data)
        except OSError as exc:
            raise self.store.translate(exc) from None
        self.flusher.advance(self.offset)

    def _start_writing(self) -> None:
        """Direct I/O if the filesystem has it; otherwise page-cache writes with background writeback."""
        self.writing = True
        if not self.appender.start_direct():
            self.flusher = Flusher(self.fd, self.store.writeback_bytes)

    def _flush(self) -> None:
        """Write out what is staged and cut the file to the bytes received."""
        self.flusher.stop()
        self.appender.flush()
        self.appender.close()
        os.ftruncate(self.fd, self.offset)

    def commit(self) -> None:
        """fsync the file, rename it to the final name, fsync the directory."""
        try:
            self._flush()
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(self.temp_path, self.final_path)
            self.store.sync_directory()
        except OSError as exc:
            self.abort()
            raise self.store.translate(exc) from None

    def suspend(self) -> str | None:
        """Keep what was written so far, durably, for a later attempt; returns the state."""
        self.flusher.stop()
        if self.offset == 0:
            self.abort()
            return None
        try:
            self._flush()
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            self.store.sync_directory()
        except OSError:
            self.abort()
            return None
        return self.state

    def abort(self) -> None:
        """Close and unlink the temporary file; never raises."""
        self.flusher.stop()
        self.appender.close()
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        try:
            os.unlink(self.temp_path)
        except OSError:
            pass


class FilesystemStore:
    """A store kept in one local directory."""

    kind = "file"

    def __init__(self, store_id: str, root: str, chunk_size: int = 1 << 20, writeback_bytes: int = 64 << 20):
        self.store_id = store_id
        self.root = root
        self.chunk_size = chunk_size
        self.writeback_bytes = writeback_bytes
        # A local probe costs a few system calls: check on every call.
        self._health = CachedHealth(self._probe, ttl=0.0)

    def prepare(self) -> None:
        """Create the root directory if it is missing (best effort; problems surface later)."""
        try:
            os.makedirs(self.root, mode=0o750, exist_ok=True)
        except OSError:
            pass

    def _unusable(self) -> StoreUnavailable:
        return StoreUnavailable(f"Store '{self.store_id}' cannot be used right now.")

    def translate(self, exc: OSError) -> Exception:
        """Map an OS error to a domain error that names the store, never a path."""
        if exc.errno in FULL_ERRNOS:
            return StoreFull(f"Image storage media is full: store '{self.store_id}' has no room for this image.")
        return self._unusable()

    def open_writer(self, image_id: str, attempt: str, expected_size: int | None,
                    kept: Kept | None = None) -> FilesystemWriter:
        """Start an upload attempt into a temporary file, continuing the file an interrupted
        attempt kept (``kept``) if given."""
        if kept is not None:
            kind, kept_image, _ = _parse_name(kept.state or "")
            if kind != "unfinished" or kept_image != image_id:
                raise DataMissing(kept.state)
        return FilesystemWriter(self, image_id, attempt, expected_size, kept)

    def open_range(self, image_id: str, attempt: str, start: int, length: int) -> FileRange:
        """Open a slice of final data read-only, refusing symlinks and non-regular files."""
        path = os.path.join(self.root, data_name(image_id, attempt))
        try:
            fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        except FileNotFoundError:
            if not os.path.isdir(self.root):
                raise self._unusable() from None
            raise DataMissing(image_id) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ImageDataUnavailable("The image data is damaged and cannot be served.") from None
            raise self.translate(exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ImageDataUnavailable("The image data is damaged and cannot be served.")
        # nginx serves the file under its name inside the root (the same directory).
        return FileRange(fd, start, length, accel_name=data_name(image_id, attempt))

    def remove(self, image_id: str, attempt: str, state: str | None = None) -> bool:
        """Unlink the attempt's final file, its temporary file, and the temporary file of this
        image that ``state`` names (kept bytes an attempt took over); never any other name."""
        names = {data_name(image_id, attempt), unfinished_name(image_id, attempt)}
        kind, state_image, _ = _parse_name(state or "")
        if kind == "unfinished" and state_image == image_id:
            names.add(state)
        removed = False
        for name in sorted(names):
            try:
                os.unlink(os.path.join(self.root, name))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self.translate(exc) from None
            removed = True
        if removed:
            self.sync_directory()
        return removed

    def scan(self) -> Iterator[StoredObject]:
        """List every entry of the root with its classification, size and age."""
        now = time.time()
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise self.translate(exc) from None
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                continue  # never data (the staging folder of an import may live here)
            kind, image_id, attempt = _parse_name(entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield StoredObject(entry.name, kind, image_id, attempt, st.st_size, now - st.st_mtime,
                               entry.name if kind == "unfinished" else "")

    def remove_object(self, obj: StoredObject) -> bool:
        """Remove one scanned entry (a file name inside the root, never a path)."""
        name = obj.name
        if "/" in name or name in ("", ".", ".."):
            raise ValueError("not an entry name")
        try:
            os.unlink(os.path.join(self.root, name))
        except (FileNotFoundError, IsADirectoryError):
            return False
        return True

    def sync_directory(self) -> None:
        """fsync the root so renames and unlinks survive a crash."""
        fd = os.open(self.root, os.O_RDONLY | O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _probe(self) -> StoreHealth:
        if not os.path.isdir(self.root):
            return StoreHealth("missing")
        if not os.access(self.root, os.W_OK | os.X_OK):
            return StoreHealth("not writable")
        try:
            st = os.statvfs(self.root)
        except OSError:
            return StoreHealth("missing")
        return StoreHealth(None, st.f_bavail * st.f_frsize)

    def health(self) -> StoreHealth:
        """Whether the directory exists and is writable, and its free bytes."""
        return self._health.get()

    def location(self, image_id: str, attempt: str) -> str:
        """The path of an attempt's data file."""
        return os.path.join(self.root, data_name(image_id, attempt))

    def describe(self) -> dict:
        """Properties shown to admins by the detailed store listing."""
        return {"data_dir": self.root, "chunk_size": self.chunk_size, "thin_provisioning": False}
