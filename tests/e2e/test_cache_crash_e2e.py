"""The image cache across restarts, kill -9 in the middle of a fill, a full cache disk and
``imagedata verify --cache``: nothing unverified is ever served, nothing is left behind."""
from __future__ import annotations

import os
import shutil
import signal
import time
import uuid

import pytest
import requests

from tests.e2e import streams
from tests.e2e.cachekit import MIB, cache_dir, cache_server, fetch, listed, metric, upload, wait_cached
from tests.e2e.proxy import Forwarder
from tests.helpers import skip_or_fail

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bucket(seaweedfs):
    return seaweedfs.make_bucket("cache-crash")


def test_a_restart_keeps_the_cache_and_discards_unfinished_fills(tmp_path, seaweedfs, bucket):
    counter = Forwarder(seaweedfs.s3_port)
    server = cache_server(tmp_path, seaweedfs, bucket, counter.port).start()
    try:
        token = server.token("p1")
        image_id = upload(server, token, 4 * MIB, seed=51)
        assert fetch(server, token, image_id)[0] == 200
        wait_cached(server, image_id)
        server.stop()
        leftover = os.path.join(cache_dir(server), ".fill", str(uuid.uuid4()))
        with open(leftover, "wb") as f:
            f.write(b"a fill that never finished")
        server.start()
        assert not os.path.exists(leftover)
        before = counter.server_bytes
        status, _, data = fetch(server, token, image_id)
        assert status == 200 and data == streams.slice_of(51, 4 * MIB, 0, 4 * MIB)
        # Served from the copy made before the restart: not one piece of the 4 MiB object (a
        # worker still starting checks the bucket, a few hundred bytes).
        assert counter.server_bytes - before < 64 * 1024
    finally:
        server.stop()
        counter.stop()


def _filling_worker(server, image_id) -> int | None:
    partial = os.path.join(cache_dir(server), ".fill", image_id)
    for pid in server.worker_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == partial:
                    return pid
        except OSError:
            continue
    return None


def test_kill_9_during_a_fill_never_leaves_a_copy_that_is_served(tmp_path, seaweedfs, bucket):
    slow = Forwarder(seaweedfs.s3_port, rate_down=8 * MIB)  # a 16 MiB fill takes two seconds
    server = cache_server(tmp_path, seaweedfs, bucket, slow.port).start()
    try:
        token, admin = server.token("p1"), server.token("ops", "admin")
        size = 16 * MIB
        image_id = upload(server, token, size, seed=52)
        response = requests.get(f"{server.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token},
                                stream=True, timeout=60)
        next(response.iter_content(MIB))
        deadline = time.monotonic() + 10
        while (pid := _filling_worker(server, image_id)) is None:
            assert time.monotonic() < deadline, "no worker is filling"
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(requests.RequestException):
            for _ in response.iter_content(MIB):
                pass
        assert not os.path.exists(os.path.join(cache_dir(server), image_id))
        assert image_id not in {e["image_id"] for e in listed(server, admin)["cached_images"]}
        status, _, data = fetch(server, token, image_id)  # a new fill replaces the dead one
        assert status == 200 and data == streams.slice_of(52, size, 0, size)
        wait_cached(server, image_id)
        with open(os.path.join(cache_dir(server), image_id), "rb") as f:
            assert f.read() == data
        assert os.listdir(os.path.join(cache_dir(server), ".fill")) == []
    finally:
        server.stop()
        slow.stop()


def test_a_full_cache_disk_serves_from_the_store_and_leaves_nothing(tmp_path, seaweedfs, bucket):
    """The cache folder is an 8 MiB tmpfs mounted in the server's own mount namespace (it goes
    away with the server), under a limit of 64 MiB: the disk fills before the limit."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_or_fail("a private tmpfs needs root and unshare (util-linux)")
    server = cache_server(tmp_path, seaweedfs, bucket, seaweedfs.s3_port, max_bytes=64 * MIB)
    os.makedirs(cache_dir(server))
    server.wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                      'mount -t tmpfs -o size=8m,mode=0750 imagedata-cache "$0" && exec "$@"', cache_dir(server)]
    server.start()
    try:
        token, admin = server.token("p1"), server.token("ops", "admin")
        seen = f"/proc/{server.proc.pid}/root{cache_dir(server)}"  # the folder as the server sees it
        first, second = upload(server, token, 5 * MIB, seed=53), upload(server, token, 5 * MIB, seed=54)
        assert fetch(server, token, first)[2] == streams.slice_of(53, 5 * MIB, 0, 5 * MIB)
        wait_cached(server, first, root=seen)
        for _ in range(2):  # no room on the disk: each download comes from the store, whole
            status, _, data = fetch(server, token, second)
            assert status == 200 and data == streams.slice_of(54, 5 * MIB, 0, 5 * MIB)
        time.sleep(0.2)
        assert sorted(n for n in os.listdir(seen) if not n.startswith(".")) == [first]
        assert os.listdir(os.path.join(seen, ".fill")) == []
        assert [n for n in os.listdir(cache_dir(server)) if not n.startswith(".")] == []  # (tmpfs: private)
        assert [e["image_id"] for e in listed(server, admin)["cached_images"]] == [first]
        assert metric(server, admin, 'imagedata_cache_fills_total{outcome="disk_full"}') == 2
    finally:
        server.stop()


def test_verify_cache_drops_a_corrupt_copy_and_says_so(tmp_path, seaweedfs, bucket):
    server = cache_server(tmp_path, seaweedfs, bucket, seaweedfs.s3_port).start()
    try:
        token = server.token("p1")
        good, bad = upload(server, token, MIB, seed=55), upload(server, token, MIB + 3, seed=56)
        for image_id in (good, bad):
            assert fetch(server, token, image_id)[0] == 200
            wait_cached(server, image_id)
        assert server.run_cli("verify", "--cache").returncode == 0
        with open(os.path.join(cache_dir(server), bad), "r+b") as f:
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 1]))
        done = server.run_cli("verify", "--cache")
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"corrupt\t{bad}\tcache\tmd5 (checksum) does not match" in done.stdout
        assert sorted(os.listdir(cache_dir(server))) == sorted([".fill", ".locks", ".index.sqlite",
                                                                 ".index.sqlite-shm", ".index.sqlite-wal", good])
        assert server.run_cli("verify", "--cache").returncode == 0
        status, _, data = fetch(server, token, bad)  # from the store again, right
        assert status == 200 and data == streams.slice_of(56, MIB + 3, 0, MIB + 3)
    finally:
        server.stop()
