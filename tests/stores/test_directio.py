"""The filesystem writer's direct I/O: any piece sizes and alignments, resumes mid-block, fallback."""
import errno
import fcntl
import mmap
import os

import pytest

from imagedata.stores import directio
from imagedata.stores.base import Kept
from imagedata.stores.filesystem import FilesystemStore

IMAGE = "0f5e8a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b"
FIRST, SECOND = "1" * 32, "2" * 32
DATA = os.urandom(3 * directio.STAGE_SIZE + 12345)


@pytest.fixture
def store(tmp_path):
    s = FilesystemStore("local", str(tmp_path / "local"))
    s.prepare()
    return s


def accepts_direct(folder) -> bool:
    path = os.path.join(folder, "probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | directio.O_DIRECT)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


def aligned_pieces(data: bytes, size: int):
    """``data`` in page-aligned writable buffers, as the request body reader hands them over."""
    buffer = mmap.mmap(-1, size)
    view = memoryview(buffer)
    for start in range(0, len(data), size):
        piece = data[start:start + size]
        view[:len(piece)] = piece
        yield view[:len(piece)]
    view.release()


def odd_pieces(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield memoryview(data[start:start + size])


def stored(store, attempt):
    with open(os.path.join(store.root, f"{IMAGE}.{attempt}"), "rb") as fobj:
        return fobj.read()


@pytest.mark.parametrize("pieces", [
    lambda: aligned_pieces(DATA, directio.STAGE_SIZE),  # written as they come, no copy
    lambda: aligned_pieces(DATA, 3 * 4096),             # aligned, smaller than the stage
    lambda: odd_pieces(DATA, 100_003),                  # staged
    lambda: odd_pieces(DATA, 1),                        # staged, byte by byte at the start
], ids=["whole-buffers", "small-aligned", "odd", "tiny"])
def test_any_pieces_are_stored_exactly(store, pieces):
    writer = store.open_writer(IMAGE, FIRST, len(DATA))
    for count, piece in enumerate(pieces()):
        writer.write(piece)
        if count == 3000:  # byte by byte only for a while, then the rest in one go
            writer.write(memoryview(DATA[count + 1:]))
            break
    if accepts_direct(store.root):
        assert writer.appender.direct
    writer.commit()
    assert stored(store, FIRST) == DATA


def test_mixed_pieces_realign_through_the_stage(store):
    writer = store.open_writer(IMAGE, FIRST, None)
    writer.write(memoryview(DATA[:5]))  # the file offset is now unaligned: later aligned buffers are staged
    for piece in aligned_pieces(DATA[5:], directio.STAGE_SIZE):
        writer.write(piece)
    writer.commit()
    assert stored(store, FIRST) == DATA


@pytest.mark.parametrize("cut", [4096 * 300, 4096 * 300 + 1, 5000, 1])
def test_resume_continues_mid_block(store, cut):
    writer = store.open_writer(IMAGE, FIRST, len(DATA))
    writer.write(memoryview(DATA[:cut]))
    state = writer.suspend()
    assert os.path.getsize(os.path.join(store.root, state)) == cut  # the padding is cut off
    resumed = store.open_writer(IMAGE, SECOND, len(DATA), Kept(state, cut))
    assert b"".join(resumed.kept()) == DATA[:cut]
    for piece in odd_pieces(DATA[cut:], 777_777):
        resumed.write(piece)
    resumed.commit()
    assert stored(store, SECOND) == DATA


def test_page_cache_writes_where_direct_io_is_refused(store, monkeypatch):
    monkeypatch.setattr(directio, "O_DIRECT", 0)
    writer = store.open_writer(IMAGE, FIRST, None)
    for piece in aligned_pieces(DATA, directio.STAGE_SIZE):
        writer.write(piece)
    assert not writer.appender.direct and writer.flusher.every
    writer.commit()
    assert stored(store, FIRST) == DATA


def test_abort_after_a_failed_write_leaves_nothing(store):
    writer = store.open_writer(IMAGE, FIRST, None)
    writer.write(memoryview(DATA[:10]))
    os.close(writer.fd)  # the next write fails inside the appender
    writer.fd = os.open(os.devnull, os.O_RDONLY)
    with pytest.raises(Exception):
        writer.write(memoryview(DATA[10:]))
    writer.abort()
    assert os.listdir(store.root) == []


def test_a_filesystem_that_accepts_the_flag_but_refuses_direct_writes(store, monkeypatch):
    """EINVAL from a direct write (an alignment larger than 4 KiB) falls back to the page cache."""
    real_pwrite, refused = os.pwrite, []

    def pwrite(fd, data, offset):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & directio.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(directio.os, "pwrite", pwrite)
    writer = store.open_writer(IMAGE, FIRST, None)
    for piece in odd_pieces(DATA, 300_001):
        writer.write(piece)
    if accepts_direct(store.root):
        assert refused == [0] and not writer.appender.direct  # refused once, then the page cache
    writer.commit()
    assert stored(store, FIRST) == DATA
