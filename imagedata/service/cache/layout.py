"""The cache folder on disk: one file per cached image, fills in progress, locks, the index.

    <cache dir>/<image id>          a verified copy: what downloads are served from
    <cache dir>/.fill/<image id>    the fill in progress, read only by the readers following it
    <cache dir>/.locks/<image id>   flock()ed by the one thread (of any process) filling the image
    <cache dir>/.index.sqlite       sizes, hits, access times and the prefetch queue

A copy reaches its final name only by a rename after its bytes were verified and fsynced,
so a crash (kill -9, power loss) can leave a partial file in ``.fill`` but never a
damaged copy under an image's id. The permission bits of a partial file tell the readers
following it, in any process, how its fill stands: ``MODE_FILLING`` while bytes arrive,
``MODE_VERIFIED`` once every byte matched the image's checksums, ``MODE_BAD`` when they did
not (the readers then cut their answers instead of sending bytes the store got wrong).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os

from imagedata.stores.base import IMAGE_ID_RE

MODE_FILLING = 0o600
MODE_VERIFIED = 0o640  # the final file keeps it: group-readable, for nginx (X-Accel-Redirect)
MODE_BAD = 0o000
FALLOC_FL_KEEP_SIZE = 1
_libc = None


class Layout:
    """The paths of one cache folder."""

    def __init__(self, root: str):
        self.root = root
        self.fill_dir = os.path.join(root, ".fill")
        self.lock_dir = os.path.join(root, ".locks")
        self.index_path = os.path.join(root, ".index.sqlite")

    def prepare(self) -> None:
        """Create the folders (the cache folder itself too)."""
        os.makedirs(self.root, mode=0o750, exist_ok=True)
        os.makedirs(self.fill_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)

    def final(self, image_id: str) -> str:
        """Where the verified copy of an image lives."""
        return os.path.join(self.root, _checked(image_id))

    def partial(self, image_id: str) -> str:
        """Where the fill in progress of an image writes."""
        return os.path.join(self.fill_dir, _checked(image_id))

    def lock(self, image_id: str) -> str:
        """The lock file of an image's fill."""
        return os.path.join(self.lock_dir, _checked(image_id))

    def cached_ids(self) -> list[str]:
        """The image ids with a file under their final name."""
        return [name for name in _names(self.root) if IMAGE_ID_RE.match(name)]

    def partial_ids(self) -> list[str]:
        """The image ids with a partial file."""
        return [name for name in _names(self.fill_dir) if IMAGE_ID_RE.match(name)]

    def remove(self, image_id: str) -> bool:
        """Remove the verified copy of an image (open readers keep theirs); False if there was none."""
        return unlink_quiet(self.final(image_id))


def _checked(image_id: str) -> str:
    if not IMAGE_ID_RE.match(image_id or ""):
        raise ValueError("not an image id")
    return image_id


def _names(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def unlink_quiet(path: str) -> bool:
    """Remove a file; False if it was not there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def try_lock(path: str) -> int | None:
    """An exclusive flock on ``path`` (created if missing), or None when another holds it.

    The returned descriptor holds the lock until it is closed, by ``unlock`` or by the death
    of the process: a fill killed with -9 never leaves its image locked.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock(fd: int | None) -> None:
    """Release a lock taken by ``try_lock`` (idempotent for None)."""
    if fd is not None:
        os.close(fd)


def is_locked(path: str) -> bool:
    """Whether some thread of some process holds the lock on ``path`` now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def create_partial(path: str) -> int:
    """A new, empty partial file (what a dead fill left under the name is removed first)."""
    unlink_quiet(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, MODE_FILLING)


def reserve_disk(fd: int, size: int) -> None:
    """Allocate ``size`` bytes of disk for a fill up front, without changing the file's size
    (its readers follow the size): a full disk fails here, before any byte is fetched.
    Raises OSError(ENOSPC); a filesystem without fallocate allocates as it writes."""
    global _libc
    if size <= 0:
        return
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    if _libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code))


def write_all(fd: int, data) -> None:
    """Write every byte of ``data`` (os.write may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def publish(fd: int, partial: str, final: str) -> None:
    """Make a verified partial file the image's copy: fsync, rename, fsync the folder."""
    os.fsync(fd)
    os.rename(partial, final)
    folder = os.open(os.path.dirname(final), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
