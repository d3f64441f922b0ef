"""What only the filesystem driver promises: temp names, rename, preallocation, path safety."""
import os

import pytest

from imagedata.errors import ImageDataUnavailable, StoreUnavailable
from imagedata.stores.base import StoredObject
from imagedata.stores.filesystem import FilesystemStore

IMAGE = "0f5e8a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b"
ATTEMPT = "a" * 32


@pytest.fixture
def store(tmp_path):
    s = FilesystemStore("local", str(tmp_path / "local"))
    s.prepare()
    return s


def names(store):
    return sorted(os.listdir(store.root))


def test_write_commit_read(store):
    writer = store.open_writer(IMAGE, ATTEMPT, 10)
    writer.write(memoryview(b"0123456789"))
    assert names(store) == [f".{IMAGE}.{ATTEMPT}.part"]
    assert writer.state == f".{IMAGE}.{ATTEMPT}.part"
    writer.commit()
    assert names(store) == [f"{IMAGE}.{ATTEMPT}"]
    reader = store.open_range(IMAGE, ATTEMPT, 0, 10)
    assert reader.local_file() is reader and reader.fileno() >= 0
    assert reader.read() == b"0123456789"
    reader.close()


def test_preallocation_is_trimmed_to_what_was_written(store):
    writer = store.open_writer(IMAGE, ATTEMPT, 1000)
    writer.write(memoryview(b"abc"))
    writer.commit()
    assert os.path.getsize(os.path.join(store.root, f"{IMAGE}.{ATTEMPT}")) == 3


def test_missing_root_is_unavailable(store):
    os.rmdir(store.root)
    with pytest.raises(StoreUnavailable) as info:
        store.open_range(IMAGE, ATTEMPT, 0, 0)
    assert store.root not in str(info.value)
    with pytest.raises(StoreUnavailable):
        store.open_writer(IMAGE, ATTEMPT, None)
    assert store.health().problem == "missing"


def test_symlinked_data_is_refused(store, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not serve")
    os.symlink(secret, os.path.join(store.root, f"{IMAGE}.{ATTEMPT}"))
    with pytest.raises(ImageDataUnavailable):
        store.open_range(IMAGE, ATTEMPT, 0, 0)


def test_directory_in_place_of_data_is_refused(store):
    os.mkdir(os.path.join(store.root, f"{IMAGE}.{ATTEMPT}"))
    with pytest.raises(ImageDataUnavailable):
        store.open_range(IMAGE, ATTEMPT, 0, 0)


def test_scan_classifies_entries(store):
    store.open_writer(IMAGE, ATTEMPT, None).commit()
    store.open_writer(IMAGE, "b" * 32, None)  # left unfinished
    open(os.path.join(store.root, "stray.txt"), "w").close()
    found = {(o.name, o.kind, o.image_id, o.attempt) for o in store.scan()}
    assert found == {(f"{IMAGE}.{ATTEMPT}", "data", IMAGE, ATTEMPT),
                     (f".{IMAGE}.{'b' * 32}.part", "unfinished", IMAGE, "b" * 32),
                     ("stray.txt", "unknown", "", "")}


def test_remove_object_takes_names_not_paths(store):
    with pytest.raises(ValueError):
        store.remove_object(StoredObject("../x", "unknown", "", "", 0, 0.0))
