"""What only the S3 driver promises: its URL, credentials, a shared bucket, a missing one."""
from __future__ import annotations

import runpy
import time
import types
import uuid
import zlib
from pathlib import Path

import pytest

from imagedata.config import DEFAULT_PART_SIZE, ConfigError, parse_stores
from imagedata.errors import StoreUnavailable
from imagedata.stores import s3writer
from imagedata.stores.s3 import S3Store
from imagedata.stores.s3writer import part_size_for
from testkit.ports import free_port
from tests.stores.conftest import make_s3_store
from tests.stores.test_contract import ATTEMPT, IMAGE, kinds, read, write

MIB = 1 << 20


@pytest.mark.parametrize("url,message", [
    ("s3://AB/x", "not a valid bucket name"),
    ("s3://key:secret@bucket-a/x", "credentials do not belong in the URL"),
    ("s3://bucket-a/x?endpoint=ftp://h", "endpoint must be an http"),
    ("s3://bucket-a/x?colour=blue", "unknown option 'colour'"),
    ("s3://bucket-a/x?part_size=1000", "part_size must be from 5 MiB to 5 GiB"),
    ("s3://bucket-a/x?part_size=lots", "part_size must be a number of bytes"),
    ("s3://bucket-a/x?checksum=md5", "checksum must be one of crc32, sha256"),
    ("s3://bucket-a/a//b", "bad prefix"),
    ("s3://bucket-a/../b", "bad prefix"),
])
def test_bad_store_urls_are_refused_with_a_reason(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_stores(f"s={url}")


def test_a_store_url_and_its_credentials():
    env = {"IMAGEDATA_S3_ACCESS_KEY_ID": "AK", "IMAGEDATA_S3_SECRET_ACCESS_KEY": "very-secret"}
    (cfg,) = parse_stores("s=s3://bucket-a/images/v1/?endpoint=http://127.0.0.1:1&region=r1&part_size=8388608",
                          env)
    assert (cfg.kind, cfg.s3.bucket, cfg.s3.prefix, cfg.s3.endpoint, cfg.s3.region, cfg.s3.part_size) == (
        "s3", "bucket-a", "images/v1/", "http://127.0.0.1:1", "r1", 8 << 20)
    assert (cfg.s3.access_key, cfg.s3.secret_key) == ("AK", "very-secret")
    assert "very-secret" not in repr(cfg)
    store = S3Store(cfg.store_id, cfg.s3)
    assert "very-secret" not in repr(store.describe()) and "AK" not in repr(store.describe())


@pytest.mark.parametrize("expected,number,size", [
    (None, 1, 16 * MIB), (None, 1000, 16 * MIB), (None, 1001, 32 * MIB), (None, 3001, 128 * MIB),
    (1 << 30, 1, 16 * MIB), (1 << 40, 1, 105 * MIB), (10 * (1 << 40), 1, 1049 * MIB),
])
def test_part_sizes_fit_the_upload_in_10000_parts(expected, number, size):
    assert part_size_for(16 * MIB, expected, number) == size
    if expected:
        assert size * 10_000 >= expected


@pytest.mark.parametrize("base", [5 * MIB, DEFAULT_PART_SIZE, 16 * MIB])
def test_a_chunked_upload_of_the_size_cap_fits(base):
    total, number = 0, 1
    while total < 1 << 40:
        total += part_size_for(base, None, number)
        number += 1
    assert number - 1 <= 10_000


def test_a_missing_bucket_stops_the_start(seaweedfs):
    url = f"s={seaweedfs.store_url('no-such-bucket-' + uuid.uuid4().hex[:8], 'x')}"
    (cfg,) = parse_stores(url, seaweedfs.env())
    with pytest.raises(ConfigError, match="does not exist"):
        S3Store(cfg.store_id, cfg.s3).prepare()


def test_wrong_credentials_make_the_store_unhealthy_without_naming_them(seaweedfs, contract_bucket):
    env = {"IMAGEDATA_S3_ACCESS_KEY_ID": "nobody", "IMAGEDATA_S3_SECRET_ACCESS_KEY": "wrong-secret-123"}
    (cfg,) = parse_stores(f"s={seaweedfs.store_url(contract_bucket, 'x')}", env)
    store = S3Store(cfg.store_id, cfg.s3)
    problem = store.health().problem
    assert problem and "wrong-secret-123" not in problem and "nobody" not in problem
    with pytest.raises(StoreUnavailable) as info:
        store.open_writer(IMAGE, ATTEMPT, None)
    assert "wrong-secret-123" not in info.value.message


def test_an_unreachable_endpoint_is_unavailable_quickly():
    port = free_port()  # nothing listens there
    (cfg,) = parse_stores(f"s=s3://bucket-a/x?endpoint=http://127.0.0.1:{port}", {
        "IMAGEDATA_S3_ACCESS_KEY_ID": "a", "IMAGEDATA_S3_SECRET_ACCESS_KEY": "b"})
    store = S3Store(cfg.store_id, cfg.s3)
    started = time.monotonic()
    assert "cannot be reached" in store.health().problem
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        store.open_range(IMAGE, ATTEMPT, 0, 10)
    assert time.monotonic() - started < 10


def test_health_is_cached_for_a_few_seconds(seaweedfs, contract_bucket):
    store = make_s3_store(seaweedfs, contract_bucket, "cached")
    calls = []
    real = store.bucket.client.head_bucket
    store.bucket.client.head_bucket = lambda **kw: calls.append(kw) or real(**kw)
    for _ in range(50):
        assert store.health().problem is None
    assert len(calls) <= 1


def test_stores_sharing_a_bucket_never_see_each_others_objects(seaweedfs, contract_bucket):
    outer = make_s3_store(seaweedfs, contract_bucket, f"shared-{uuid.uuid4().hex[:6]}")
    inner = make_s3_store(seaweedfs, contract_bucket, f"{outer.cfg.prefix}inner")
    write(outer, b"outer")
    write(inner, b"inner")
    pending = write(inner, b"half", image="1f5e8a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b", commit=False)
    assert kinds(outer) == [("data", IMAGE, ATTEMPT)]
    assert sorted(k[0] for k in kinds(inner)) == ["data", "unfinished"]
    for obj in outer.scan():
        outer.remove_object(obj)
    assert sorted(k[0] for k in kinds(inner)) == ["data", "unfinished"]
    assert outer.remove("1f5e8a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b", ATTEMPT, pending.state) is False  # another store's
    pending.abort()


def sent_part_headers(store) -> list[dict]:
    """Record the x-amz-* headers of every UploadPart request the store's client sends."""
    seen = []
    store.bucket.client.meta.events.register(
        "before-send.s3.UploadPart",
        lambda request, **_: seen.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                                          for k, v in request.headers.items()
                                          if k.lower().startswith("x-amz-")}))
    return seen


@pytest.mark.parametrize("checksum", ["crc32", "sha256"])
def test_each_part_is_protected_on_its_way(seaweedfs, contract_bucket, checksum):
    """crc32 (default): a CRC32 per part and an unsigned payload; sha256: a signed payload."""
    options = {} if checksum == "crc32" else {"checksum": checksum}
    store = make_s3_store(seaweedfs, contract_bucket, f"sum-{checksum}-{uuid.uuid4().hex[:6]}", **options)
    headers = sent_part_headers(store)
    data = bytes(range(256)) * ((11 << 20) // 256 + 1)  # three parts of 5 MiB, the last short
    write(store, data)
    assert read(store) == data
    assert len(headers) == 3
    for sent in headers:
        if checksum == "crc32":
            assert sent["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
            assert "x-amz-checksum-crc32" in sent
        else:
            assert len(sent["x-amz-content-sha256"]) == 64  # the payload's SHA-256, signed
            assert "x-amz-checksum-crc32" not in sent


def test_the_store_refuses_a_part_whose_checksum_does_not_match(seaweedfs, contract_bucket, monkeypatch):
    """What the store checks is what was sent: a wrong CRC32 fails the upload and leaves nothing."""
    store = make_s3_store(seaweedfs, contract_bucket, f"badsum-{uuid.uuid4().hex[:6]}")
    monkeypatch.setattr(s3writer, "zlib", types.SimpleNamespace(crc32=lambda data: zlib.crc32(data) ^ 1))
    writer = store.open_writer(IMAGE, ATTEMPT, None)
    with pytest.raises(StoreUnavailable, match="could not store a part"):
        writer.write(memoryview(b"x" * (6 << 20)))
        writer.commit()
    assert kinds(store) == []


def test_part_buffers_are_reused_not_reallocated(seaweedfs, contract_bucket, monkeypatch):
    """A 40 MiB upload in 5 MiB parts uses two part buffers, not eight."""
    store = make_s3_store(seaweedfs, contract_bucket, f"reuse-{uuid.uuid4().hex[:6]}")
    made = []
    real = s3writer.S3Writer._new_buffer

    def counting(writer):
        buffer = real(writer)
        made.append(buffer)  # kept alive, so the ids below are distinct objects
        return buffer

    monkeypatch.setattr(s3writer.S3Writer, "_new_buffer", counting)
    data = bytes(range(256)) * ((40 << 20) // 256)
    writer = write(store, data, expected=len(data))
    assert read(store) == data
    assert (writer.spare, len(writer.buffer)) == ([], 0)  # nothing held once committed
    assert len(made) == 8  # one per part, taken when its first byte comes
    assert len({id(buffer) for buffer in made}) == 2


def test_download_pieces_stay_below_the_workers_mmap_threshold(seaweedfs, contract_bucket):
    """Each piece is a new bytes object; at the workers' fixed mmap threshold or above,
    every one would be mapped, faulted in and unmapped again."""
    threshold = runpy.run_path(str(Path(__file__).parents[2] / "gunicorn.conf.py"))["MALLOC_MMAP_THRESHOLD"]
    store = make_s3_store(seaweedfs, contract_bucket, f"pieces-{uuid.uuid4().hex[:6]}")
    data = bytes(range(256)) * ((3 << 20) // 256)
    write(store, data)
    reader = store.open_range(IMAGE, ATTEMPT, 0, len(data))
    sizes = [len(piece) for piece in reader]
    assert sum(sizes) == len(data)
    assert max(sizes) + 64 < threshold  # bytes objects carry a small header
