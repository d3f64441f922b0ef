"""Two imagedata hosts on one PostgreSQL and one SeaweedFS, behind nginx with the deploy site.

Everything is real and runs as docs/scaling.rst says: separate gunicorn masters with
their own data folders and host ids, the metadata in PostgreSQL, the bytes in S3.
"""
from __future__ import annotations

import hashlib
import threading
import time

import pytest
import requests

from testkit.nginx import SiteProxy
from testkit.processes import pid_running
from tests.e2e import streams
from tests.faults.helpers import create, db_rows, delete_during_upload, put, show, upload_in_progress, wait_status
from tests.imports.helpers import GLANCE_DIRECT, Api, blob, stalled_web_download

MIB = streams.MIB
LEASE = 6
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bucket(seaweedfs):
    return seaweedfs.make_bucket("multihost")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, seaweedfs, bucket, server_database, start_module_server, origin):
    """Host A and host B (one database, one bucket) and an nginx in front of both."""
    root = tmp_path_factory.mktemp("multihost")
    shared = {"IMAGEDATA_STORES": f"images={seaweedfs.store_url(bucket, 'images')}",
              "IMAGEDATA_UPLOAD_LEASE_SECONDS": LEASE, "IMAGEDATA_UPLOAD_IDLE_TIMEOUT": 4,
              "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS": f"127.0.0.1:{origin.port}",
              **server_database("postgresql"), **seaweedfs.env()}
    hosts = {name: start_module_server(f"host-{name}", IMAGEDATA_HOST_ID=f"host-{name}", **shared)
             for name in ("a", "b")}
    proxy = SiteProxy(root / "nginx", [hosts["a"].port, hosts["b"].port], str(root / "unused-stores")).start()
    yield hosts, proxy
    proxy.stop()


@pytest.fixture(scope="module")
def token(cluster):
    hosts, _ = cluster
    return hosts["a"].token("p1")  # one database: a token made on A works on B


class Via:
    """A base URL to talk to (a host directly, or nginx), shaped like a Server for the helpers."""

    def __init__(self, url, port):
        self.url, self.port = url, port


def objects(seaweedfs, bucket, image_id):
    return [k for k in seaweedfs.keys(bucket, "images/") if image_id in k]


def test_upload_through_nginx_and_download_from_everywhere(cluster, token):
    hosts, proxy = cluster
    via = Via(proxy.url, proxy.port)
    for framing in ("content-length", "chunked"):
        image_id = create(via, token)
        body = streams.chunks(21, 24 * MIB)
        response = put(via, token, image_id, b"".join(body) if framing == "content-length" else body)
        assert response.status_code == 204, response.text
        expected = streams.digest(21, 24 * MIB)
        for place in (proxy.url, hosts["a"].url, hosts["b"].url):
            got = hashlib.sha512()
            with requests.get(f"{place}/v2/images/{image_id}/file", headers={"X-Auth-Token": token},
                              stream=True, timeout=60) as answer:
                assert answer.status_code == 200
                for piece in answer.iter_content(MIB):
                    got.update(piece)
            assert got.hexdigest() == expected, place
        ranged = requests.get(f"{proxy.url}/v2/images/{image_id}/file", timeout=30,
                              headers={"X-Auth-Token": token, "Range": "bytes=5000000-5000099"})
        assert ranged.status_code == 206 and ranged.content == streams.slice_of(21, 24 * MIB, 5000000, 100)


def test_two_hosts_racing_for_one_image_give_one_204_and_one_409(cluster, token, seaweedfs, bucket):
    hosts, _ = cluster
    for _round in range(3):
        image_id = create(hosts["a"], token)
        results = {}

        def go(name):
            results[name] = put(hosts[name], token, image_id, streams.chunks(ord(name), 8 * MIB)).status_code

        threads = [threading.Thread(target=go, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == [204, 409], results
        winner = next(name for name, code in results.items() if code == 204)
        _, image = show(hosts["b"], token, image_id)
        assert image["os_hash_value"] == streams.digest(ord(winner), 8 * MIB)
        assert len(objects(seaweedfs, bucket, image_id)) == 1


def test_delete_on_one_host_while_the_other_uploads(cluster, token, seaweedfs, bucket):
    hosts, _ = cluster
    image_id = create(hosts["a"], token)
    upload = upload_in_progress(hosts["b"], token, image_id, 40 * MIB, 20, watch=hosts["a"])
    delete_during_upload(upload, hosts["a"], token, image_id, more_mib=20)
    assert seaweedfs.keys_after_cleanup(bucket, "images/", image_id) == []


def test_a_dead_host_is_recovered_by_the_other_after_the_lease(cluster, token, seaweedfs, bucket, tmp_path):
    hosts, proxy = cluster
    image_id = create(hosts["a"], token)
    upload = upload_in_progress(hosts["b"], token, image_id, 64 * MIB, 20, watch=hosts["a"])
    (row,) = db_rows(hosts["a"], f"id = '{image_id}'")
    assert row["attempt_host"] == "host-b" and '"upload_id"' in row["attempt_state"]
    killed_at = time.monotonic()
    pids = hosts["b"].kill_all()
    upload.close()
    assert not any(pid_running(pid) for pid in pids)
    # Host A cannot judge host B's process: only the heartbeat's age counts.
    assert show(hosts["a"], token, image_id)[1]["status"] == "saving"
    assert wait_status(hosts["a"], token, image_id, ("queued",), timeout=LEASE * 4) == "queued"
    assert time.monotonic() - killed_at >= LEASE - 1
    assert seaweedfs.keys_after_cleanup(bucket, "images/", image_id) == []  # the multipart upload was aborted
    assert put(hosts["a"], token, image_id, b"again, on host a").status_code == 204
    hosts["b"].start()  # nginx still has both hosts for the other tests


def test_staged_on_one_host_and_imported_through_the_other(cluster, token, seaweedfs, bucket):
    hosts, _ = cluster
    data = blob(3 * MIB, 51)
    on_a, on_b = Api(hosts["a"].url, token), Api(hosts["b"].url, token)
    image_id = on_a.create()
    assert on_a.stage(image_id, data).status_code == 204
    task, image = on_b.imported(image_id, GLANCE_DIRECT)
    assert task["status"] == "success" and image["status"] == "active", task
    assert on_a.data(image_id) == data
    assert len(objects(seaweedfs, bucket, image_id)) == 1  # the staged object went with its import


def test_a_web_download_whose_host_is_killed_is_finished_by_the_other(cluster, token, seaweedfs, bucket, origin):
    hosts, _ = cluster
    data = blob(8 * MIB, 52)
    on_a, on_b = Api(hosts["a"].url, token), Api(hosts["b"].url, token)
    image_id = stalled_web_download(on_b, origin, data, 3 * MIB)  # host B gets 3 MiB, then waits
    (row,) = db_rows(hosts["a"], f"id = '{image_id}'")
    assert row["attempt_host"] == "host-b" and row["status"] == "importing"
    killed_at = time.monotonic()
    pids = hosts["b"].kill_all()
    assert not any(pid_running(pid) for pid in pids)
    origin.configure(data)  # the origin serves the whole file from now on
    try:
        task = on_a.wait_task(image_id, timeout=LEASE * 5)
        image = on_a.show(image_id)
        assert task["status"] == "success" and image["status"] == "active", task
        assert time.monotonic() - killed_at >= LEASE - 1  # only after the lease
        assert task["result"] == {"image_id": image_id} and on_a.data(image_id) == data
        assert f"image {image_id}: import attempt {row['attempt']} (host host-b" in hosts["a"].log()
        assert image["os_glance_importing_to_stores"] == "" and "os_glance_import_task" not in image
        # what host B was writing is gone: one object, the finished copy
        assert len(seaweedfs.keys_after_cleanup(bucket, "images/", image_id, timeout=5)) == 1
    finally:
        hosts["b"].start()  # nginx still has both hosts for the other tests
