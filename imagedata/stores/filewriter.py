"""The writer of the filesystem store: one upload attempt into a hidden temporary file,
written with direct I/O where the filesystem allows it, fsynced and renamed into place."""
from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING, Iterator

from imagedata.stores.base import READ_PIECE, DataMissing, Kept, data_name
from imagedata.stores.directio import AlignedAppender
from imagedata.stores.writeback import Flusher

if TYPE_CHECKING:
    from imagedata.stores.filesystem import FilesystemStore

FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
FILE_MODE = 0o640
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
UNFINISHED_SUFFIX = ".part"


def unfinished_name(image_id: str, attempt: str) -> str:
    """The hidden temporary file name of one upload attempt."""
    return f".{data_name(image_id, attempt)}{UNFINISHED_SUFFIX}"


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
