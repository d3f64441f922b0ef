"""This host's image cache end to end: real gunicorn, real SeaweedFS behind a byte-counting
forwarder (so "no read of the object" and "one read" are counted, not assumed), real files.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import time

import pytest
import requests

from tests.e2e import streams
from testkit.nginx import SiteProxy, nginx_binary
from tests.e2e.cachekit import cache_dir, cache_server, fetch, listed, metric, object_key, upload, wait_cached
from tests.e2e.proxy import Forwarder

MIB = streams.MIB
pytestmark = pytest.mark.e2e
SAME_HEADERS = ("Content-Length", "Content-Range", "Content-MD5", "ETag", "Repr-Digest", "Accept-Ranges",
                "Content-Type")


@pytest.fixture(scope="module")
def bucket(seaweedfs):
    return seaweedfs.make_bucket("cache-e2e")


@pytest.fixture(scope="module")
def counter(s3_forwarder):
    """A forwarder in front of SeaweedFS: ``server_bytes`` is every byte the store sent."""
    return s3_forwarder


@pytest.fixture(scope="module")
def srv(tmp_path_factory, seaweedfs, bucket, counter):
    server = cache_server(tmp_path_factory.mktemp("cache-e2e"), seaweedfs, bucket, counter.port).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token(srv):
    return srv.token("p1")


@pytest.fixture(scope="module")
def admin(srv):
    return srv.token("ops", "admin")


def test_first_download_fills_and_the_cache_serves_after_the_object_is_gone(srv, token, admin, counter, seaweedfs,
                                                                             bucket):
    size = 8 * MIB + 17
    image_id = upload(srv, token, size, seed=3)
    expected = streams.slice_of(3, size, 0, size)
    status, first, data = fetch(srv, token, image_id)
    assert status == 200 and data == expected
    wait_cached(srv, image_id)
    entry = next(e for e in listed(srv, admin)["cached_images"] if e["image_id"] == image_id)
    assert entry["size"] == size and entry["hits"] == 0 and entry["last_modified"] > 0

    seaweedfs.client().delete_object(Bucket=bucket, Key=object_key(seaweedfs, bucket, image_id))
    before = counter.server_bytes
    status, again, data = fetch(srv, token, image_id)
    assert status == 200 and data == expected
    assert {h: again.get(h) for h in SAME_HEADERS} == {h: first.get(h) for h in SAME_HEADERS}
    for header, (start, end) in {"bytes=100-199": (100, 200), "bytes=-1000": (size - 1000, size),
                                 f"bytes={5 * MIB}-": (5 * MIB, size)}.items():
        status, part, data = fetch(srv, token, image_id, Range=header)
        assert status == 206 and data == expected[start:end], header
        assert part["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert part["Content-MD5"] == first["Content-MD5"] and part["ETag"] == first["ETag"]
    assert counter.server_bytes - before < 64 * 1024  # no read of the object (a starting worker checks the bucket)
    assert next(e for e in listed(srv, admin)["cached_images"] if e["image_id"] == image_id)["hits"] == 4
    assert metric(srv, admin, 'imagedata_cache_lookups_total{result="hit"}') >= 4
    assert metric(srv, admin, "imagedata_cache_served_bytes_total") >= size + 100 + 1000 + (size - 5 * MIB)
    assert metric(srv, admin, "imagedata_cache_bytes") >= size
    health = requests.get(f"{srv.url}/v2/info/health", headers={"X-Auth-Token": admin}, timeout=10).json()
    assert health["cache"]["cached_images"] >= 1 and health["cache"]["used_bytes"] >= size
    assert health["cache"]["max_bytes"] == 40 * MIB and health["cache"]["problem"] is None


def test_eight_simultaneous_first_downloads_read_the_object_once(tmp_path, seaweedfs, bucket):
    slow = Forwarder(seaweedfs.s3_port, rate_down=40 * MIB)  # the fill takes about half a second
    server = cache_server(tmp_path, seaweedfs, bucket, slow.port).start()
    try:
        token = server.token("p1")
        size = 16 * MIB + 5
        image_id = upload(server, token, size, seed=8)
        before, results = slow.server_bytes, [None] * 8
        barrier = threading.Barrier(8)

        def download(slot):
            barrier.wait()
            results[slot] = hashlib.sha256(fetch(server, token, image_id)[2]).hexdigest()

        threads = [threading.Thread(target=download, args=(slot,)) for slot in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        expected = hashlib.sha256(streams.slice_of(8, size, 0, size)).hexdigest()
        assert results == [expected] * 8
        read = slow.server_bytes - before
        assert size <= read < size + MIB, f"the store sent {read} bytes for a {size}-byte image"
        wait_cached(server, image_id)
    finally:
        server.stop()
        slow.stop()


def test_eviction_keeps_the_cache_under_its_limit(tmp_path, seaweedfs, bucket, counter):
    server = cache_server(tmp_path, seaweedfs, bucket, counter.port, max_bytes=20 * MIB).start()
    try:
        token, admin = server.token("p1"), server.token("ops", "admin")
        images = [upload(server, token, 6 * MIB, seed=20 + n) for n in range(4)]
        peak, watching = [0], [True]

        def watch():  # what the cache folder holds, copies and fills, sampled all along
            while watching[0]:
                total = 0
                for folder in (cache_dir(server), os.path.join(cache_dir(server), ".fill")):
                    for name in os.listdir(folder):
                        try:
                            total += os.stat(os.path.join(folder, name)).st_blocks * 512 if \
                                re.match(r"^[0-9a-f-]{36}$", name) else 0
                        except FileNotFoundError:
                            pass
                peak[0] = max(peak[0], total)
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        for image_id in images[:3]:
            assert fetch(server, token, image_id)[0] == 200
            wait_cached(server, image_id)
        assert fetch(server, token, images[0], Range="bytes=0-0")[0] == 206  # used again: not the LRU
        assert fetch(server, token, images[3])[0] == 200
        wait_cached(server, images[3])
        watching[0] = False
        watcher.join()
        cached = {e["image_id"] for e in listed(server, admin)["cached_images"]}
        assert cached == {images[0], images[2], images[3]}
        assert not os.path.exists(os.path.join(cache_dir(server), images[1]))
        assert 0 < peak[0] <= 20 * MIB, peak[0]
        assert metric(server, admin, "imagedata_cache_evictions_total") == 1
        big = upload(server, token, 21 * MIB, seed=29)  # larger than the cache: never cached
        assert fetch(server, token, big)[2] == streams.slice_of(29, 21 * MIB, 0, 21 * MIB)
        time.sleep(0.3)
        assert big not in {e["image_id"] for e in listed(server, admin)["cached_images"]}
    finally:
        server.stop()


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed; CI installs it")
def test_nginx_sends_cached_copies_with_x_accel_redirect(tmp_path, seaweedfs, bucket, counter):
    server = cache_server(tmp_path / "srv", seaweedfs, bucket, counter.port, IMAGEDATA_ACCEL_REDIRECT="/_accel")
    server.start()
    nginx = SiteProxy(tmp_path / "nginx", server.port, str(tmp_path / "srv" / "stores"), cache_dir(server)).start()
    try:
        token = server.token("p1")
        size = 3 * MIB + 11
        image_id = upload(server, token, size, seed=9)
        expected = streams.slice_of(9, size, 0, size)
        first = requests.get(f"{nginx.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token}, timeout=30)
        assert first.status_code == 200 and first.content == expected  # a miss: streamed by gunicorn
        wait_cached(server, image_id)
        seaweedfs.client().delete_object(Bucket=bucket, Key=object_key(seaweedfs, bucket, image_id))
        direct = requests.get(f"{server.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token}, timeout=30)
        assert direct.headers["X-Accel-Redirect"] == f"/_accel/_cache/{image_id}" and direct.content == b""
        again = requests.get(f"{nginx.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token}, timeout=30)
        assert again.status_code == 200 and again.content == expected
        for name in ("Content-MD5", "ETag", "Content-Length", "Content-Type"):
            assert again.headers[name] == first.headers[name], name
        part = requests.get(f"{nginx.url}/v2/images/{image_id}/file",
                            headers={"X-Auth-Token": token, "Range": "bytes=1000-1999"}, timeout=30)
        assert part.status_code == 206 and part.content == expected[1000:2000]
        assert part.headers["Content-Range"] == f"bytes 1000-1999/{size}"
        assert requests.get(f"{nginx.url}/_accel/_cache/{image_id}", timeout=10).status_code == 404
    finally:
        nginx.stop()
        server.stop()


def copied_to(server, admin, image_id, store_id, timeout=60.0) -> None:
    """Copy an active image into another store (copy-image import) and wait for the copy."""
    headers = {"X-Auth-Token": admin}
    started = requests.post(f"{server.url}/v2/images/{image_id}/import", headers=headers, timeout=10,
                            json={"method": {"name": "copy-image"}, "stores": [store_id]})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + timeout
    while store_id not in requests.get(f"{server.url}/v2/images/{image_id}", headers=headers,
                                       timeout=10).json().get("stores", ""):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)


def test_a_copy_taken_out_of_service_leaves_the_cache(tmp_path, seaweedfs, bucket):
    """Removing the remote copy (DELETE /v2/stores/...) or verify flagging it corrupt: the image
    is read from its other copy, and this host's cache lets go of it."""
    server = cache_server(tmp_path, seaweedfs, bucket, seaweedfs.s3_port,
                          IMAGEDATA_STORES=f"s3={seaweedfs.store_url(bucket, 'images')}&part_size={5 * MIB},"
                                           f"local=file://{tmp_path}/stores/local").start()
    try:
        token, admin = server.token("p1"), server.token("ops", "admin")
        images = {seed: upload(server, token, MIB + seed, seed=seed) for seed in (61, 62)}
        for seed, image_id in images.items():
            assert fetch(server, token, image_id)[2] == streams.slice_of(seed, MIB + seed, 0, MIB + seed)
            wait_cached(server, image_id)
            copied_to(server, admin, image_id, "local")
        removed, flagged = images[61], images[62]
        assert requests.delete(f"{server.url}/v2/stores/s3/{removed}", headers={"X-Auth-Token": admin},
                               timeout=10).status_code == 204
        key = object_key(seaweedfs, bucket, flagged)
        wrong = bytearray(streams.slice_of(62, MIB + 62, 0, MIB + 62))
        wrong[5] ^= 1  # the same size: only the digests tell
        seaweedfs.client().put_object(Bucket=bucket, Key=key, Body=bytes(wrong))
        done = server.run_cli("verify", "--store", "s3", "--deactivate")
        assert done.returncode == 1 and f"corrupt\t{flagged}\ts3" in done.stdout, done.stdout + done.stderr
        assert {e["image_id"] for e in listed(server, admin)["cached_images"]}.isdisjoint(images.values())
        for seed, image_id in images.items():
            assert not os.path.exists(os.path.join(cache_dir(server), image_id))
            status, _, data = fetch(server, token, image_id)  # from the local copy
            assert status == 200 and data == streams.slice_of(seed, MIB + seed, 0, MIB + seed)
        time.sleep(0.3)
        assert listed(server, admin)["cached_images"] == []  # local copies are never cached
    finally:
        server.stop()


def test_a_swapped_object_is_never_cached_and_the_fill_leaves_the_records_alone(srv, token, admin, seaweedfs,
                                                                                  bucket):
    size = 2 * MIB + 7
    image_id = upload(srv, token, size, seed=71)
    wrong = bytearray(streams.slice_of(71, size, 0, size))
    wrong[size // 2] ^= 1  # the same size: only the digests tell
    seaweedfs.client().put_object(Bucket=bucket, Key=object_key(seaweedfs, bucket, image_id), Body=bytes(wrong))
    corrupt = 'imagedata_cache_fills_total{outcome="corrupt"}'
    before = metric(srv, admin, corrupt)
    got = bytearray()
    with pytest.raises(requests.exceptions.RequestException):  # cut short, never completed with bad bytes
        with requests.get(f"{srv.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token}, stream=True,
                          timeout=30) as response:
            assert response.status_code == 200
            for piece in response.iter_content(1 << 16):
                got += piece
    assert len(got) < size
    assert metric(srv, admin, corrupt) == before + 1
    assert image_id not in {e["image_id"] for e in listed(srv, admin)["cached_images"]}
    assert not os.path.exists(os.path.join(cache_dir(srv), image_id))
    record = requests.get(f"{srv.url}/v2/images/{image_id}", headers={"X-Auth-Token": admin}, timeout=10).json()
    assert (record["status"], record["stores"]) == ("active", "s3")  # taking it out of service is verify's job
