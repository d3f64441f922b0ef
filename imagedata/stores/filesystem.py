"""Filesystem store: one directory; data at ``<root>/<image id>.<upload attempt>``.

Each upload attempt writes a hidden ``.<image id>.<attempt>.part`` file, fsyncs it and
renames it to its final name, so two attempts never touch each other's bytes and a
crashed attempt leaves only names the scrubber can attribute. The bytes are written with
direct I/O where the filesystem allows it (``filewriter.py``, ``directio.py``). Reads hand the open file to
the WSGI server, which sends it with sendfile.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from typing import Iterator

from imagedata.errors import ImageDataUnavailable, StoreFull, StoreUnavailable
from imagedata.stores.base import CachedHealth, DataMissing, Kept, StoreHealth, StoredObject, data_name, split_data_name
from imagedata.stores.filerange import FileRange
from imagedata.stores.filewriter import (FULL_ERRNOS, O_CLOEXEC, O_NOFOLLOW, UNFINISHED_SUFFIX, FilesystemWriter,
                                         unfinished_name)


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
