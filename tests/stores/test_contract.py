"""The store contract, run unchanged against every driver (filesystem and S3 on SeaweedFS)."""
from __future__ import annotations

import os

import pytest

from imagedata.stores.base import DataMissing, Kept, StoreHealth

IMAGE = "0f5e8a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b"
OTHER = "1f5e8a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b"
ATTEMPT = "a" * 32
SECOND = "b" * 32


def write(store, data: bytes, image=IMAGE, attempt=ATTEMPT, expected=None, piece=1 << 20, commit=True):
    writer = store.open_writer(image, attempt, expected)
    for start in range(0, len(data), piece):
        writer.write(memoryview(data[start:start + piece]))
    if commit:
        writer.commit()
    return writer


def read(store, start=0, length=None, image=IMAGE, attempt=ATTEMPT) -> bytes:
    probe = store.open_range(image, attempt, 0, 0)
    size = probe.size
    probe.close()
    reader = store.open_range(image, attempt, start, size - start if length is None else length)
    try:
        return b"".join(reader)
    finally:
        reader.close()


def kinds(store) -> list[tuple[str, str, str]]:
    return sorted((o.kind, o.image_id, o.attempt) for o in store.scan())


def test_commit_makes_the_data_readable_whole(store):
    data = os.urandom(3 << 20)
    write(store, data, expected=len(data))
    assert read(store) == data
    assert kinds(store) == [("data", IMAGE, ATTEMPT)]


def test_several_parts_and_uneven_pieces(store):
    data = os.urandom((12 << 20) + 12345)  # more than two 5 MiB parts, pieces not aligned
    write(store, data, piece=(1 << 20) + 7)
    assert read(store) == data


@pytest.mark.parametrize("start,length", [(0, 1), (5, 10), (1 << 20, 4096), ((2 << 20) - 1, 1), (0, 2 << 20)])
def test_ranges_return_exactly_the_slice(store, start, length):
    data = os.urandom(2 << 20)
    write(store, data)
    reader = store.open_range(IMAGE, ATTEMPT, start, length)
    assert reader.size == len(data)
    pieces = list(reader)
    reader.close()
    assert b"".join(pieces) == data[start:start + length]
    assert all(len(p) <= 1 << 20 for p in pieces)


def test_an_empty_image(store):
    write(store, b"", expected=0)
    reader = store.open_range(IMAGE, ATTEMPT, 0, 0)
    assert reader.size == 0 and b"".join(reader) == b""
    reader.close()


def test_nothing_is_visible_before_commit(store):
    writer = write(store, b"x" * 1000, commit=False)
    with pytest.raises(DataMissing):
        store.open_range(IMAGE, ATTEMPT, 0, 0)
    writer.commit()
    assert read(store) == b"x" * 1000


def test_abort_leaves_nothing(store):
    writer = write(store, os.urandom(6 << 20), commit=False)
    writer.abort()
    writer.abort()  # idempotent
    assert kinds(store) == []


def test_a_crash_leaves_what_the_state_says_and_remove_takes_it(store):
    writer = write(store, os.urandom(6 << 20), commit=False)
    state = writer.state
    # The process "dies" here: no commit, no abort. Another host knows only the state.
    unfinished = [o for o in store.scan() if o.kind == "unfinished"]
    assert [(o.image_id, o.attempt, o.state) for o in unfinished] == [(IMAGE, ATTEMPT, state)]
    assert store.remove(IMAGE, ATTEMPT, state) is True
    assert store.remove(IMAGE, ATTEMPT, state) is False
    assert kinds(store) == []


@pytest.mark.parametrize("state", ["", "garbage", "../../etc/passwd", '{"key": "x", "upload_id": "y"}',
                                   f".{IMAGE}.{ATTEMPT}", "/etc/passwd", f".{IMAGE}.{ATTEMPT}.part",
                                   f'{{"key": "{IMAGE}.{ATTEMPT}"}}', f'{{"key": "images/{IMAGE}.{ATTEMPT}"}}'])
def test_remove_takes_only_what_its_image_and_attempt_name(store, state):
    """A state naming anything but this image's objects (another image's data, a path, junk)
    removes nothing else."""
    write(store, b"keep me")
    assert store.remove(OTHER, SECOND, state) is False  # never another image's objects
    if IMAGE not in state:
        assert store.remove(IMAGE, SECOND, state) is False
    assert read(store) == b"keep me"


def test_two_attempts_never_share_an_object(store):
    first = store.open_writer(IMAGE, ATTEMPT, None)
    second = store.open_writer(IMAGE, SECOND, None)
    first.write(memoryview(b"one"))
    second.write(memoryview(b"two"))
    second.commit()
    first.abort()
    assert read(store, attempt=SECOND) == b"two"
    with pytest.raises(DataMissing):
        store.open_range(IMAGE, ATTEMPT, 0, 0)


def test_remove_reports_whether_there_was_data(store):
    write(store, b"data")
    write(store, b"other", image=OTHER)
    assert store.remove(IMAGE, ATTEMPT) is True
    assert store.remove(IMAGE, ATTEMPT) is False
    with pytest.raises(DataMissing):
        store.open_range(IMAGE, ATTEMPT, 0, 0)
    assert read(store, image=OTHER) == b"other"
    assert kinds(store) == [("data", OTHER, ATTEMPT)]


def test_missing_data_is_data_missing(store):
    with pytest.raises(DataMissing):
        store.open_range(IMAGE, ATTEMPT, 0, 10)


def test_scan_and_remove_every_kind(store):
    write(store, b"final")
    pending = write(store, b"pending", image=OTHER, commit=False)
    found = {(o.kind, o.image_id) for o in store.scan()}
    assert found == {("data", IMAGE), ("unfinished", OTHER)}
    for obj in store.scan():
        assert store.remove_object(obj) is True
    assert kinds(store) == []
    pending.abort()


@pytest.mark.parametrize("bad", ["../x", "../etc/passwd", "0F5E8A4C-1B2D-4E3F-9A8B-7C6D5E4F3A2B", "", "a" * 36,
                                 "x" * 36, IMAGE + "/..", "\x00"])
def test_only_canonical_ids_become_names(store, bad):
    with pytest.raises(ValueError):
        store.open_writer(bad, ATTEMPT, None)
    with pytest.raises(ValueError):
        store.open_range(bad, ATTEMPT, 0, 0)
    with pytest.raises(ValueError):
        store.remove(bad, ATTEMPT)
    with pytest.raises(ValueError):
        store.open_writer(IMAGE, bad, None)


def test_health_location_and_description(store):
    health = store.health()
    assert isinstance(health, StoreHealth) and health.problem is None
    assert health.free_bytes is None or health.free_bytes > 0
    assert f"{IMAGE}.{ATTEMPT}" in store.location(IMAGE, ATTEMPT)
    text = repr(store.describe())
    assert "secret" not in text.lower()


def test_suspend_keeps_the_prefix_and_a_new_attempt_continues_it(store):
    data = os.urandom((11 << 20) + 4321)  # two whole 5 MiB parts and a tail
    cut = (7 << 20) + 99
    writer = write(store, data[:cut], expected=len(data), commit=False)
    kept = writer.suspend()
    assert kept
    resumed = store.open_writer(IMAGE, SECOND, len(data), Kept(kept, cut))
    assert resumed.offset == cut
    assert b"".join(resumed.kept()) == data[:cut]
    resumed.write(memoryview(data[cut:]))
    resumed.commit()
    assert read(store, attempt=SECOND) == data
    assert kinds(store) == [("data", IMAGE, SECOND)]


def test_a_resumed_writer_can_be_suspended_again_or_aborted(store):
    data = os.urandom(9 << 20)
    first = write(store, data[:3 << 20], expected=len(data), commit=False)
    kept = first.suspend()
    second = store.open_writer(IMAGE, SECOND, len(data), Kept(kept, 3 << 20))
    assert b"".join(second.kept()) == data[:3 << 20]
    second.write(memoryview(data[3 << 20:6 << 20]))
    kept = second.suspend()
    third = store.open_writer(IMAGE, "c" * 32, len(data), Kept(kept, 6 << 20))
    assert b"".join(third.kept()) == data[:6 << 20]
    third.abort()
    assert kinds(store) == []


def test_kept_data_is_removed_with_its_attempt(store):
    writer = write(store, os.urandom(2 << 20), expected=4 << 20, commit=False)
    kept = writer.suspend()
    assert store.remove(IMAGE, ATTEMPT, kept) is True
    assert kinds(store) == []
    with pytest.raises(DataMissing):
        store.open_writer(IMAGE, SECOND, 4 << 20, Kept(kept, 2 << 20))


def test_resume_refuses_a_wrong_size_or_another_image(store):
    writer = write(store, b"k" * 1000, expected=5000, commit=False)
    kept = writer.suspend()
    with pytest.raises(DataMissing):
        store.open_writer(OTHER, SECOND, 5000, Kept(kept, 1000))
    with pytest.raises(DataMissing):
        store.open_writer(IMAGE, SECOND, 5000, Kept(kept, 2000))
    store.remove(IMAGE, ATTEMPT, kept)
    assert kinds(store) == []


def test_nothing_written_keeps_nothing(store):
    writer = store.open_writer(IMAGE, ATTEMPT, 100)
    assert writer.suspend() is None
    assert kinds(store) == []


def test_an_attempt_that_died_before_its_state_was_recorded_is_found_by_its_ids(store):
    writer = write(store, os.urandom(6 << 20), commit=False)  # "crash": the state never reached the row
    assert writer.state
    assert store.remove(IMAGE, SECOND) is False  # another attempt's: nothing
    assert store.remove(IMAGE, ATTEMPT) is True
    assert store.remove(IMAGE, ATTEMPT) is False
    assert kinds(store) == []


def test_a_resume_that_died_before_its_state_was_recorded_is_removed_whole(store):
    """The row still names the kept bytes while the new attempt takes them over: removing the
    new attempt with that state leaves nothing (no unfinished upload, no kept object)."""
    data = os.urandom(7 << 20)
    first = write(store, data[:6 << 20], expected=len(data), commit=False)
    kept = first.suspend()
    second = store.open_writer(IMAGE, SECOND, len(data), Kept(kept, 6 << 20))
    second.write(memoryview(data[6 << 20:]))
    # "crash": no commit, no abort, the row never learned the new writer's state
    assert store.remove(IMAGE, SECOND, kept) is True
    assert kinds(store) == []


def test_a_writer_copies_what_it_keeps_past_the_write_call(store):
    """``write`` only borrows its buffer: the caller refills it at once."""
    pieces = [os.urandom((1 << 20) + 17) for _ in range(7)]
    writer = store.open_writer(IMAGE, ATTEMPT, None)
    buffer = bytearray(max(len(p) for p in pieces))
    for piece in pieces:
        buffer[:len(piece)] = piece
        writer.write(memoryview(buffer)[:len(piece)])
        buffer[:] = b"\xff" * len(buffer)  # reused as soon as write returns
    writer.commit()
    assert read(store) == b"".join(pieces)


def test_readers_say_which_fast_paths_they_offer(store):
    write(store, b"fast")
    reader = store.open_range(IMAGE, ATTEMPT, 0, 4)
    try:
        local = reader.local_file()
        assert local is None or local.fileno() >= 0
        assert reader.accel_name is None or reader.accel_name == f"{IMAGE}.{ATTEMPT}"
        assert (local is None) == (store.kind == "s3") and (reader.accel_name is None) == (store.kind == "s3")
    finally:
        reader.close()
