"""Filesystem store: one directory; data at ``<root>/<image id>.<upload attempt>``.

Each upload attempt writes a hidden ``.<image id>.<attempt>.part`` file, fsyncs it and
renames it to its final name, so two attempts never touch each other's bytes and a
crashed attempt leaves only names the scrubber can attribute.
"""
from __future__ import annotations

import errno
import os
import stat
import threading
import time
from typing import BinaryIO, Iterator

from imagedata.errors import ImageDataUnavailable, StoreFull, StoreUnavailable
from imagedata.stores.base import ATTEMPT_RE, IMAGE_ID_RE, DataMissing, StoredObject, check_image_id

FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
FILE_MODE = 0o640
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _partial_name(image_id: str, attempt: str) -> str:
    return f".{image_id}.{attempt}.part"


def _data_name(image_id: str, key: str) -> str:
    check_image_id(image_id)
    if not ATTEMPT_RE.match(key or ""):
        raise ValueError("bad data key")
    return f"{image_id}.{key}"


def _split_id_key(text: str) -> tuple[str, str] | None:
    image_id, _, key = text.partition(".")
    if IMAGE_ID_RE.match(image_id) and ATTEMPT_RE.match(key):
        return image_id, key
    return None


def _parse_name(name: str) -> tuple[str, str, str]:
    """Classify a directory entry as (kind, image id, attempt)."""
    parsed = _split_id_key(name)
    if parsed:
        return ("data",) + parsed
    if name.startswith(".") and name.endswith(".part"):
        parsed = _split_id_key(name[1:-5])
        if parsed:
            return ("partial",) + parsed
    return "unknown", "", ""


FLUSH_EVERY = 64 << 20


class _Flusher:
    """Starts writeback of what was written so far, off the request thread.

    The final fsync then finds little left to do, instead of stalling the
    response for size / disk bandwidth seconds.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.wake = threading.Event()
        self.done = False
        self.thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            if self.done:
                return
            try:
                os.fdatasync(self.fd)
            except OSError:
                pass  # the final fsync reports real errors

    def kick(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        self.done = True
        self.wake.set()
        self.thread.join()


class FilesystemWriter:
    """Writes one upload attempt to a temporary file, then renames it into place."""

    def __init__(self, store: "FilesystemStore", image_id: str, attempt: str, expected_size: int | None):
        self.store = store
        self.final_path = os.path.join(store.root, _data_name(image_id, attempt))
        self.temp_path = os.path.join(store.root, _partial_name(image_id, attempt))
        try:
            self.fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise store.translate(exc) from None
        self.unflushed = 0
        self.flusher: _Flusher | None = None
        if expected_size:
            self._preallocate(expected_size)

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
        self.unflushed += len(data)
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError as exc:
            raise self.store.translate(exc) from None
        if self.store.writeback_bytes and self.unflushed >= self.store.writeback_bytes:
            self.unflushed = 0
            if self.flusher is None:
                self.flusher = _Flusher(self.fd)
            self.flusher.kick()

    def _stop_flusher(self) -> None:
        if self.flusher is not None:
            self.flusher.stop()
            self.flusher = None

    def commit(self) -> None:
        """fsync the file, rename it to the final name, fsync the directory."""
        self._stop_flusher()
        try:
            os.ftruncate(self.fd, os.lseek(self.fd, 0, os.SEEK_CUR))
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(self.temp_path, self.final_path)
            self.store.sync_directory()
        except OSError as exc:
            self.abort()
            raise self.store.translate(exc) from None

    def abort(self) -> None:
        """Close and unlink the temporary file; never raises."""
        self._stop_flusher()
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

    def __init__(self, store_id: str, root: str, chunk_size: int = 1 << 20, writeback_bytes: int = FLUSH_EVERY):
        self.store_id = store_id
        self.root = root
        self.chunk_size = chunk_size
        self.writeback_bytes = writeback_bytes

    def prepare(self) -> None:
        """Create the root directory if it is missing (best effort; problems surface later)."""
        try:
            os.makedirs(self.root, mode=0o750, exist_ok=True)
        except OSError:
            pass

    def translate(self, exc: OSError) -> Exception:
        """Map an OS error to a domain error that names the store, never a path."""
        if exc.errno in FULL_ERRNOS:
            return StoreFull(f"Image storage media is full: store '{self.store_id}' has no room for this image.")
        return StoreUnavailable(f"Store '{self.store_id}' cannot be used right now.")

    def open_writer(self, image_id: str, attempt: str, expected_size: int | None) -> FilesystemWriter:
        """Start an upload attempt into a temporary file."""
        check_image_id(image_id)
        if not ATTEMPT_RE.match(attempt):
            raise ValueError("bad attempt id")
        return FilesystemWriter(self, image_id, attempt, expected_size)

    def open_data(self, image_id: str, key: str) -> BinaryIO:
        """Open final data read-only, refusing symlinks and non-regular files."""
        path = os.path.join(self.root, _data_name(image_id, key))
        try:
            fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        except FileNotFoundError:
            if not os.path.isdir(self.root):
                raise StoreUnavailable(f"Store '{self.store_id}' cannot be used right now.") from None
            raise DataMissing(image_id) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ImageDataUnavailable("The image data is damaged and cannot be served.") from None
            raise self.translate(exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ImageDataUnavailable("The image data is damaged and cannot be served.")
        return os.fdopen(fd, "rb", buffering=0)

    def data_name(self, image_id: str, key: str) -> str:
        """The file name of an image's data inside the root (for X-Accel-Redirect)."""
        return _data_name(image_id, key)

    def delete(self, image_id: str, key: str) -> bool:
        """Unlink the final data; False when there was none."""
        try:
            os.unlink(os.path.join(self.root, _data_name(image_id, key)))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self.translate(exc) from None
        self.sync_directory()
        return True

    def discard_attempt(self, image_id: str, attempt: str) -> bool:
        """Unlink one attempt's temporary file if it is still there."""
        try:
            _data_name(image_id, attempt)
            os.unlink(os.path.join(self.root, _partial_name(image_id, attempt)))
            return True
        except (OSError, ValueError):
            return False

    def scan(self) -> Iterator[StoredObject]:
        """List every entry of the root with its classification, size and age."""
        now = time.time()
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise self.translate(exc) from None
        for entry in entries:
            kind, image_id, attempt = _parse_name(entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield StoredObject(entry.name, kind, image_id, attempt, st.st_size, now - st.st_mtime)

    def remove_object(self, name: str) -> None:
        """Remove one scanned entry (a file name inside the root, never a path)."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError("not an entry name")
        try:
            os.unlink(os.path.join(self.root, name))
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            pass

    def sync_directory(self) -> None:
        """fsync the root so renames and unlinks survive a crash."""
        fd = os.open(self.root, os.O_RDONLY | O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def problem(self) -> str | None:
        """Why this store cannot take uploads now, or None."""
        if not os.path.isdir(self.root):
            return "missing"
        if not os.access(self.root, os.W_OK | os.X_OK):
            return "not writable"
        return None

    def details(self) -> dict:
        """Properties shown to admins by the detailed store listing."""
        return {"data_dir": self.root, "chunk_size": self.chunk_size, "thin_provisioning": False}
