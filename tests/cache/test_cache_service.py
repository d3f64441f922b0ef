"""The image cache as a service: real files in a temp folder, a store reader stand-in whose
bytes and failures each test chooses (the end-to-end suite runs it on SeaweedFS)."""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import threading
import time
import uuid

import pytest

from imagedata.errors import ImageDataUnavailable, StoreUnavailable
from imagedata.service.cache import ImageCache, ImageFacts
from imagedata.service.cache import fill as fill_module
from imagedata.service.cache.layout import MODE_VERIFIED, try_lock, unlock

MIB = 1 << 20


class Piece:
    """A store reader over bytes, in pieces, optionally slow or failing after some bytes."""

    def __init__(self, data: bytes, start: int, length: int, delay: float = 0.0, fail_after: int | None = None):
        self.data, self.start, self.length = data, start, length
        self.size, self.delay, self.fail_after = len(data), delay, fail_after
        self.accel_name = None
        self.closed = False

    def local_file(self):
        return None

    def __iter__(self):
        pos, end = self.start, self.start + self.length
        while pos < end:
            if self.fail_after is not None and pos - self.start >= self.fail_after:
                raise StoreUnavailable("Store 's3' ended the data early.")
            if self.delay:
                time.sleep(self.delay)
            piece = self.data[pos:min(end, pos + 256 * 1024)]
            pos += len(piece)
            yield piece

    def close(self):
        self.closed = True


class Store:
    """Counts the ranges read; ``served`` is what the store holds (it may differ from the record)."""

    def __init__(self, data: bytes, first_fails_after: int | None = None, **options):
        self.data, self.options, self.reads, self.lock = data, options, [], threading.Lock()
        self.first_fails_after = first_fails_after

    def source(self, start, length):
        with self.lock:
            self.reads.append((start, length))
            fail_after = self.first_fails_after if len(self.reads) == 1 else None
        return "s3", Piece(self.data, start, length, fail_after=fail_after, **self.options)


def facts(data: bytes, image_id: str | None = None) -> ImageFacts:
    return ImageFacts(image_id or str(uuid.uuid4()), len(data), hashlib.md5(data).hexdigest(), "sha512",
                      hashlib.sha512(data).hexdigest())


def read_all(opened) -> bytes:
    place, reader = opened
    try:
        return b"".join(reader)
    finally:
        reader.close()


def wait_cached(cache, image_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cache.is_cached(image_id) or image_id in cache.fills:
        assert time.monotonic() < deadline, "not cached in time"
        time.sleep(0.01)


def wait_settled(cache, image_id, timeout=10.0):
    """Until the image's fill (running in its own thread) has ended, whatever its outcome."""
    deadline = time.monotonic() + timeout
    while image_id in cache.fills:
        assert time.monotonic() < deadline, "the fill did not end in time"
        time.sleep(0.01)


@pytest.fixture
def cache(tmp_path):
    made = ImageCache(str(tmp_path / "cache"), 8 * MIB)
    made.prepare()
    return made


def test_a_miss_fills_and_the_next_download_is_a_hit_from_the_file(cache):
    data = os.urandom(3 * MIB + 5)
    image, store = facts(data), Store(data)
    assert read_all(cache.open(image, 0, len(data), store.source)) == data
    wait_cached(cache, image.id)
    place, reader = cache.open(image, 10, 100, store.source)
    assert place == "_cache" and reader.local_file() is reader and reader.accel_name == image.id
    assert read_all((place, reader)) == data[10:110]
    assert store.reads == [(0, len(data))]
    (entry,) = cache.entries()
    assert (entry.image_id, entry.size, entry.hits) == (image.id, len(data), 1)
    assert os.stat(cache.layout.final(image.id)).st_mode & 0o777 == MODE_VERIFIED
    assert cache.layout.partial_ids() == []


def test_concurrent_misses_share_one_read_of_the_store(cache):
    data = os.urandom(2 * MIB)
    image, store = facts(data), Store(data, delay=0.01)
    results = [None] * 8

    def download(slot):
        results[slot] = read_all(cache.open(image, 0, len(data), store.source))

    threads = [threading.Thread(target=download, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [data] * 8
    assert store.reads == [(0, len(data))]


@pytest.mark.parametrize("recorded", ["both", "md5-only", "os_hash-only"])
def test_bytes_that_fail_verification_are_never_cached_and_the_answers_are_cut(cache, recorded):
    """A fill checks the strongest digest the record has: os_hash_value, else the md5 checksum."""
    data = os.urandom(MIB)
    swapped = bytearray(data)
    swapped[-1] ^= 1  # the same size: only the digests can tell
    image, store = facts(data), Store(bytes(swapped))
    if recorded == "md5-only":
        image = dataclasses.replace(image, os_hash_algo=None, os_hash_value=None)
    elif recorded == "os_hash-only":
        image = dataclasses.replace(image, checksum=None)
    place, reader = cache.open(image, 0, len(data), store.source)
    received = bytearray()
    with pytest.raises(ImageDataUnavailable):
        for piece in reader:
            received += piece
    reader.close()
    assert bytes(received) == data[:-1]  # everything but the last byte, which is held back
    wait_settled(cache, image.id)
    assert not cache.is_cached(image.id) and cache.entries() == [] and cache.layout.partial_ids() == []


def test_a_full_disk_during_the_fill_hands_the_rest_to_the_store(cache, monkeypatch):
    data = os.urandom(3 * MIB)
    image, store = facts(data), Store(data, delay=0.005)
    real_write, written = fill_module.write_all, [0]

    def write_all(fd, piece):
        if written[0] >= MIB:
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += len(piece)
        real_write(fd, piece)

    monkeypatch.setattr(fill_module, "write_all", write_all)
    assert read_all(cache.open(image, 0, len(data), store.source)) == data
    assert store.reads[0] == (0, len(data)) and store.reads[1][0] >= MIB  # the rest, from where the reader was
    assert not cache.is_cached(image.id) and cache.usage().used_bytes == 0 and cache.layout.partial_ids() == []


def test_a_disk_without_room_for_the_image_serves_it_from_the_store(cache, monkeypatch):
    def reserve_disk(fd, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fill_module, "reserve_disk", reserve_disk)
    data = os.urandom(MIB)
    image, store = facts(data), Store(data)
    assert read_all(cache.open(image, 0, len(data), store.source)) == data
    assert store.reads == [(0, len(data))]
    assert cache.usage().used_bytes == 0 and cache.layout.partial_ids() == []


def test_least_recently_used_copies_make_room_and_the_limit_always_holds(cache):
    images = [(facts(data), Store(data)) for data in (os.urandom(3 * MIB) for _ in range(4))]
    for image, store in images[:2]:
        read_all(cache.open(image, 0, image.size, store.source))
        wait_cached(cache, image.id)
    read_all(cache.open(images[0][0], 0, 1, images[0][1].source))  # the first is used again
    for image, store in images[2:]:
        read_all(cache.open(image, 0, image.size, store.source))
        wait_cached(cache, image.id)
        assert cache.usage().used_bytes <= cache.max_bytes
    kept = {entry.image_id for entry in cache.entries()}
    assert kept == {images[0][0].id, images[3][0].id} or kept == {images[2][0].id, images[3][0].id}
    assert images[1][0].id not in kept  # the least recently used went first
    assert sorted(cache.layout.cached_ids()) == sorted(kept)


def test_an_image_larger_than_the_cache_is_never_cached(cache):
    data = os.urandom(9 * MIB)
    image, store = facts(data), Store(data)
    assert read_all(cache.open(image, 0, len(data), store.source)) == data
    assert cache.entries() == [] and not cache.fill_later(image, store.source)


def test_a_ranged_miss_reads_its_range_and_fills_in_the_background(cache):
    data = os.urandom(2 * MIB)
    image, store = facts(data), Store(data)
    place, reader = cache.open(image, 100, 50, store.source)
    assert place == "s3" and read_all((place, reader)) == data[100:150]
    wait_cached(cache, image.id)
    assert sorted(store.reads) == [(0, len(data)), (100, 50)]


def test_a_fill_that_dies_hands_its_followers_to_the_store(cache):
    data = os.urandom(2 * MIB)
    image, store = facts(data), Store(data, delay=0.01, first_fails_after=MIB)
    assert read_all(cache.open(image, 0, len(data), store.source)) == data
    # The fill's store read failed after 1 MiB: the follower read the rest from the store.
    assert len(store.reads) == 2 and store.reads[1][0] == MIB and sum(store.reads[1]) == len(data)
    assert not cache.is_cached(image.id) and cache.usage().used_bytes == 0 and cache.layout.partial_ids() == []


def test_recover_discards_unfinished_fills_and_keeps_copies(cache):
    data = os.urandom(MIB)
    image, store = facts(data), Store(data)
    read_all(cache.open(image, 0, len(data), store.source))
    wait_cached(cache, image.id)
    stale, orphan = str(uuid.uuid4()), str(uuid.uuid4())
    with open(cache.layout.partial(stale), "wb") as f:
        f.write(b"half")
    with open(cache.layout.final(orphan), "wb") as f:
        f.write(b"nobody's")
    cache.index.reserve(stale, 10, "10:::", cache.max_bytes, lambda other: True)
    busy = str(uuid.uuid4())  # a fill that is still alive keeps its file
    lock = try_lock(cache.layout.lock(busy))
    open(cache.layout.partial(busy), "wb").close()
    try:
        assert cache.recover() == 3
        assert cache.layout.partial_ids() == [busy]
    finally:
        unlock(lock)
    assert cache.layout.cached_ids() == [image.id] and [e.image_id for e in cache.entries()] == [image.id]
    assert cache.usage().fills == 0


def test_drop_during_a_fill_leaves_nothing_cached(cache):
    data = os.urandom(2 * MIB)
    image, store = facts(data), Store(data, delay=0.01)
    place, reader = cache.open(image, 0, len(data), store.source)
    assert cache.drop(image.id)
    assert b"".join(reader) == data
    reader.close()
    wait_settled(cache, image.id)
    assert not cache.is_cached(image.id) and cache.usage().used_bytes == 0


def test_a_copy_serves_only_the_data_its_fill_verified(cache):
    """A record that says other data now (another digest of the same size, an id used again)
    finds no copy: the old one is dropped and the new data fills anew."""
    data, other = os.urandom(MIB), os.urandom(MIB)
    image, store = facts(data), Store(data)
    read_all(cache.open(image, 0, len(data), store.source))
    wait_cached(cache, image.id)
    changed, new_store = facts(other, image.id), Store(other)
    assert read_all(cache.open(changed, 0, 100, new_store.source)) == other[:100]  # a miss: the store's range
    assert new_store.reads[0] == (0, 100)
    wait_cached(cache, image.id)
    assert read_all(cache.open(changed, 0, len(other), new_store.source)) == other
    assert cache.index.identity_of(image.id) == changed.identity and [e.hits for e in cache.entries()] == [1]


def test_an_index_of_another_layout_is_replaced_and_its_copies_removed(tmp_path):
    import sqlite3

    root = tmp_path / "cache"
    root.mkdir()
    orphan = str(uuid.uuid4())
    (root / orphan).write_bytes(b"made by an older layout")
    with sqlite3.connect(root / ".index.sqlite") as db:
        db.execute("CREATE TABLE entries (image_id TEXT PRIMARY KEY, size INTEGER NOT NULL, state TEXT NOT NULL, "
                   "hits INTEGER NOT NULL DEFAULT 0, last_accessed REAL NOT NULL, last_modified REAL NOT NULL)")
        db.execute("INSERT INTO entries VALUES (?, 23, 'cached', 0, 0, 0)", (orphan,))
    cache = ImageCache(str(root), 8 * MIB)
    cache.prepare()
    assert cache.recover() == 1 and cache.layout.cached_ids() == [] and cache.entries() == []
    data = os.urandom(1000)
    image = facts(data)
    read_all(cache.open(image, 0, len(data), Store(data).source))
    wait_cached(cache, image.id)
    assert [e.identity for e in cache.entries()] == [image.identity]


@pytest.mark.parametrize("corrupt", [True, False])
def test_a_fill_that_ends_while_its_follower_looks_still_gives_its_verdict(cache, monkeypatch, corrupt):
    """The fill ends (bad bytes: the file marked and removed; good ones: renamed) between the
    follower's look at the file's mode and its look at whether the fill still runs: bad bytes
    are still cut (found by a CI run: the last byte came from the store), good ones still served."""
    from imagedata.service.cache import readers

    running = readers.FillFollower._fill_running

    def after_the_fill_ended(follower):
        wait_settled(cache, follower.image_id)
        return running(follower)

    monkeypatch.setattr(readers.FillFollower, "_fill_running", after_the_fill_ended)
    data = os.urandom(MIB)
    served = bytearray(data)
    served[-1] ^= corrupt
    image, store = facts(data), Store(bytes(served), delay=0.001)
    place, reader = cache.open(image, 0, len(data), store.source)
    received = bytearray()
    try:
        if corrupt:
            with pytest.raises(ImageDataUnavailable):
                for piece in reader:
                    received += piece
            # Cut: never the store's bad last byte (one read of the store, the fill's own).
            assert data[:-1].startswith(bytes(received)) and len(store.reads) == 1
        else:
            assert b"".join(reader) == data
    finally:
        reader.close()


@pytest.mark.parametrize("corrupt", [True, False])
def test_a_fill_that_ends_before_its_download_reads_still_gives_its_verdict(cache, monkeypatch, corrupt):
    """The download follows the fill's file even when the fill ended (renamed, or failed and
    removed) before the download opened it: bad bytes are cut, good ones come from the cache."""
    started = fill_module.Fill.start

    def start_and_finish(fill):
        started(fill)
        fill.done.wait()
        return fill

    monkeypatch.setattr(fill_module.Fill, "start", start_and_finish)
    data = os.urandom(MIB)
    served = bytearray(data)
    served[-1] ^= corrupt
    image, store = facts(data), Store(bytes(served))
    place, reader = cache.open(image, 0, len(data), store.source)
    assert place == "_cache"
    if corrupt:
        with pytest.raises(ImageDataUnavailable):
            b"".join(reader)
    else:
        assert b"".join(reader) == data
    reader.close()
    assert store.reads == [(0, len(data))] and cache.is_cached(image.id) is not corrupt
