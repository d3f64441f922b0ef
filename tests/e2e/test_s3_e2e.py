"""The S3 store end to end: real gunicorn, real SeaweedFS, real sockets.

Every answer is compared with the filesystem store's answer for the same bytes, and every
failure path is checked for what it leaves in the bucket: nothing.
"""
from __future__ import annotations

import os
import time

import pytest
import requests

from tests.e2e import streams
from tests.faults.helpers import (RawUpload, create, delete_during_upload, kept_offset, put, scrub, show,
                                  upload_in_progress, wait_status)
from tests.imports.helpers import Api, blob, copy_image

MIB = streams.MIB
PART = 5 * MIB
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bucket(seaweedfs):
    return seaweedfs.make_bucket("e2e-images")


@pytest.fixture(scope="module")
def relay(s3_forwarder):
    """A forwarder in front of SeaweedFS that a test can cut, to make the store unreachable."""
    return s3_forwarder


@pytest.fixture(scope="module")
def srv(start_module_server, seaweedfs, bucket, relay):
    url = f"{seaweedfs.store_url(bucket, 'images')}&part_size={PART}"
    cut = seaweedfs.store_url(bucket, "cut").replace(str(seaweedfs.s3_port), str(relay.port))
    server = start_module_server("s3-e2e", start=False, IMAGEDATA_UPLOAD_LEASE_SECONDS=4,
                                 IMAGEDATA_UPLOAD_IDLE_TIMEOUT=2, IMAGEDATA_LOG_LEVEL="INFO", **seaweedfs.env())
    server.env["IMAGEDATA_STORES"] = f"s3={url},local=file://{server.root}/stores/local,cut={cut}"
    return server.start()


@pytest.fixture(scope="module")
def token(srv):
    return srv.token("p1")


def objects(seaweedfs, bucket, image_id=None, prefix="images/"):
    """Keys and unfinished uploads in the store's prefix (optionally only one image's)."""
    return [k for k in seaweedfs.keys(bucket, prefix) if image_id is None or image_id in k]


def upload_pair(srv, token, size, seed):
    """The same bytes uploaded to the S3 store and to the filesystem store."""
    ids = {}
    for store in ("s3", "local"):
        image_id = create(srv, token)
        response = put(srv, token, image_id, streams.chunks(seed, size), **{"X-Image-Meta-Store": store})
        assert response.status_code == 204, response.text
        ids[store] = image_id
    return ids


def fetch(srv, token, image_id, **headers):
    response = requests.get(f"{srv.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token, **headers},
                            timeout=60)
    return response.status_code, response.headers, response.content


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_and_download_through_s3(srv, token, seaweedfs, bucket, framing):
    size = 3 * PART + 12345  # four parts, the last one short
    image_id = create(srv, token)
    body = streams.chunks(7, size)
    headers = {"X-Image-Meta-Store": "s3"}
    if framing == "content-length":
        body = b"".join(body)
    response = put(srv, token, image_id, body, **headers)
    assert response.status_code == 204, response.text
    _, image = show(srv, token, image_id)
    assert (image["status"], image["size"], image["stores"]) == ("active", size, "s3")
    assert image["os_hash_value"] == streams.digest(7, size)
    status, got_headers, data = fetch(srv, token, image_id)
    assert status == 200 and int(got_headers["Content-Length"]) == size
    assert data == streams.slice_of(7, size, 0, size)
    assert got_headers["Content-MD5"] == image["checksum"]
    assert objects(seaweedfs, bucket, image_id) == [f"images/{image_id}.{_attempt_of(srv, image_id)}"]


def _attempt_of(srv, image_id):
    done = srv.run_cli("locate", image_id)
    data = dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)
    return data["data"].rsplit(".", 1)[1]


RANGES = ["bytes=0-0", "bytes=10-19", "bytes=-1", "bytes=-100000", f"bytes={PART - 1}-{PART}", "bytes=5-",
          "bytes=0-", f"bytes={2 * PART}-{3 * PART}", "bytes=99999999-", "bytes=0-1,5-6", "bytes=abc", "bytes=-0"]


@pytest.fixture(scope="module")
def pair(srv, token):
    return upload_pair(srv, token, 2 * PART + 777, seed=11)


@pytest.mark.parametrize("header", RANGES)
def test_ranges_answer_exactly_as_the_filesystem_store(srv, token, pair, header):
    s3 = fetch(srv, token, pair["s3"], Range=header)
    local = fetch(srv, token, pair["local"], Range=header)
    assert s3[0] == local[0]
    for name in ("Content-Length", "Content-Range", "Content-MD5", "ETag", "Accept-Ranges", "Content-Type"):
        assert s3[1].get(name) == local[1].get(name), name
    assert s3[2] == local[2]


def test_conditional_and_head_requests(srv, token, pair):
    _, headers, _ = fetch(srv, token, pair["s3"])
    assert fetch(srv, token, pair["s3"], **{"If-None-Match": headers["ETag"]})[0] == 304
    head = requests.head(f"{srv.url}/v2/images/{pair['s3']}/file", headers={"X-Auth-Token": token}, timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == headers["Content-Length"]
    status, _, data = fetch(srv, token, pair["s3"], Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert status == 200 and len(data) == 2 * PART + 777


def _assert_nothing_left(srv, token, seaweedfs, bucket, image_id, expected_status="queued"):
    assert seaweedfs.keys_after_cleanup(bucket, "images/", image_id) == []
    code, image = show(srv, token, image_id)
    if expected_status is None:
        assert code == 404
    else:
        assert image["status"] == expected_status and image["size"] is None


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_client_gone_aborts_the_multipart_upload(srv, token, seaweedfs, bucket, chunked):
    image_id = create(srv, token)
    upload = RawUpload(srv, token, image_id, content_length=None if chunked else 4 * PART, chunked=chunked,
                       extra=[("X-Image-Meta-Store", "s3")])
    for _ in range(12):  # two parts sent, a third half received
        upload.send(os.urandom(MIB))
    assert wait_status(srv, token, image_id, ("saving",)) == "saving"
    assert any("(upload)" in k for k in objects(seaweedfs, bucket, image_id))
    upload.close()
    assert wait_status(srv, token, image_id, ("queued",)) == "queued"
    if chunked:  # no declared size: nothing to resume, nothing kept
        _assert_nothing_left(srv, token, seaweedfs, bucket, image_id)
    else:  # the upload is completed as a kept object of what arrived, for a resume
        deadline = time.monotonic() + 10
        while kept_offset(srv, token, image_id) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert kept_offset(srv, token, image_id) >= 2 * PART
        assert [k for k in objects(seaweedfs, bucket, image_id) if "(upload)" in k] == []
        assert len(objects(seaweedfs, bucket, image_id)) == 1
    retry = put(srv, token, image_id, b"again", **{"X-Image-Meta-Store": "s3"})
    assert retry.status_code == 204
    assert len(objects(seaweedfs, bucket, image_id)) == 1  # the kept object is gone with the restart


def test_quota_413_aborts_the_multipart_upload(srv, token, seaweedfs, bucket):
    srv.cli("quota", "set", "--project", "p9", "--image-size-total", str(2 * PART))
    p9 = srv.token("p9")
    image_id = create(srv, p9)
    response = put(srv, p9, image_id, streams.chunks(3, 3 * PART), **{"X-Image-Meta-Store": "s3"})
    assert response.status_code == 413, response.text
    _assert_nothing_left(srv, p9, seaweedfs, bucket, image_id)


def test_size_mismatch_aborts_the_multipart_upload(srv, token, seaweedfs, bucket):
    image_id = create(srv, token)
    response = put(srv, token, image_id, streams.chunks(3, 2 * PART), **{"X-Image-Meta-Store": "s3",
                                                                          "x-openstack-image-size": str(PART)})
    assert response.status_code == 400, response.text
    _assert_nothing_left(srv, token, seaweedfs, bucket, image_id)


def test_delete_during_upload_is_410_and_leaves_nothing(srv, token, seaweedfs, bucket):
    image_id = create(srv, token)
    upload = upload_in_progress(srv, token, image_id, 4 * PART, 7, extra=[("X-Image-Meta-Store", "s3")])
    delete_during_upload(upload, srv, token, image_id, more_mib=13)
    _assert_nothing_left(srv, token, seaweedfs, bucket, image_id, expected_status=None)


def test_kill_9_of_the_worker_is_recovered_and_the_upload_aborted(srv, token, seaweedfs, bucket):
    image_id = create(srv, token)
    upload = upload_in_progress(srv, token, image_id, 4 * PART, 7, extra=[("X-Image-Meta-Store", "s3")])
    pid = next(r for r in _rows(srv, image_id))["attempt_pid"]
    os.kill(pid, 9)
    upload.close()
    assert wait_status(srv, token, image_id, ("queued",), timeout=20) == "queued"
    _assert_nothing_left(srv, token, seaweedfs, bucket, image_id)
    assert put(srv, token, image_id, b"after the crash", **{"X-Image-Meta-Store": "s3"}).status_code == 204


def _rows(srv, image_id):
    from tests.faults.helpers import db_rows

    return db_rows(srv, f"id = '{image_id}'")


def test_missing_object_is_503_and_scrub_reports_it(srv, token, seaweedfs, bucket):
    image_id = create(srv, token)
    assert put(srv, token, image_id, b"soon gone", **{"X-Image-Meta-Store": "s3"}).status_code == 204
    key = objects(seaweedfs, bucket, image_id)[0]
    seaweedfs.client().delete_object(Bucket=bucket, Key=key)
    status, _, body = fetch(srv, token, image_id)
    assert status == 503 and b"missing" in body
    _orphans, broken, output = scrub(srv)
    assert broken >= 1 and image_id in output


def test_scrub_finds_and_removes_stale_multipart_uploads_and_orphans(srv, seaweedfs, bucket):
    client = seaweedfs.client()
    ghost = "9f5e8a4c-1b2d-4e3f-9a8b-7c6d5e4f3a2b"
    client.create_multipart_upload(Bucket=bucket, Key=f"images/{ghost}.{'c' * 32}")
    client.put_object(Bucket=bucket, Key=f"images/{ghost}.{'d' * 32}", Body=b"orphan")
    client.put_object(Bucket=bucket, Key="images/not-ours.txt", Body=b"someone else's")
    orphans, _broken, output = scrub(srv)
    assert ghost in output and "not-ours.txt" in output and orphans >= 3
    scrub(srv, "--fix")
    assert [k for k in seaweedfs.keys(bucket, "images/") if ghost in k] == []
    assert "images/not-ours.txt" in seaweedfs.keys(bucket, "images/")  # a shared bucket: never removed
    client.delete_object(Bucket=bucket, Key="images/not-ours.txt")


def test_copy_image_from_the_file_store_to_s3_and_back_and_a_store_that_is_down(srv, token, relay, seaweedfs,
                                                                                 bucket):
    member, admin = Api(srv.url, token), Api(srv.url, srv.token("ops", "admin"))
    data = blob(7 * MIB, 71)  # more than one part
    image_id = member.create()
    assert member.upload(image_id, data, **{"X-Image-Meta-Store": "local"}).status_code == 204
    assert admin.imported(image_id, copy_image("s3"))[0]["status"] == "success"
    assert admin.delete_copy("local", image_id).status_code == 204
    task, image = admin.imported(image_id, copy_image("local"))  # and back, read from S3
    assert task["status"] == "success" and sorted(image["stores"].split(",")) == ["local", "s3"], task
    assert member.session.get(f"{srv.url}/v2/images/{image_id}/file?prefer=local", timeout=60).content == data
    assert len(objects(seaweedfs, bucket, image_id)) == 1
    # a download that prefers a store which is down is served from another copy
    assert admin.imported(image_id, copy_image("cut"))[0]["status"] == "success"
    relay.refusing = True
    relay.cut()
    try:
        response = member.session.get(f"{srv.url}/v2/images/{image_id}/file?prefer=cut", timeout=60)
        assert response.status_code == 200 and response.content == data
    finally:
        relay.refusing = False
    assert member.delete(image_id).status_code == 204
    time.sleep(5.1)  # every worker's cached health of store cut expires (the next test writes there)
    assert seaweedfs.keys_after_cleanup(bucket, "", image_id) == []


def test_unreachable_store_is_a_clear_503_and_never_a_hang(srv, token, relay, seaweedfs, bucket):
    image_id = create(srv, token)
    assert put(srv, token, image_id, b"behind the relay", **{"X-Image-Meta-Store": "cut"}).status_code == 204
    relay.stop()
    started = time.monotonic()
    status, _, body = fetch(srv, token, image_id)
    assert status == 503 and b"cannot be reached" in body, body
    other = create(srv, token)
    time.sleep(5.1)  # the cached health check expires
    response = put(srv, token, other, b"x" * 1000, **{"X-Image-Meta-Store": "cut"})
    assert response.status_code == 503 and "cannot accept data" in response.text
    assert time.monotonic() - started < 30
    assert show(srv, token, other)[1]["status"] == "queued"


def test_secrets_are_never_shown_or_logged(srv, seaweedfs):
    admin = srv.token("ops", "admin")
    detail = requests.get(f"{srv.url}/v2/info/stores/detail", headers={"X-Auth-Token": admin}, timeout=10)
    assert detail.status_code == 200
    s3 = next(s for s in detail.json()["stores"] if s["id"] == "s3")
    assert s3["type"] == "s3" and s3["properties"]["bucket"] == "e2e-images"
    secret = seaweedfs.env()["IMAGEDATA_S3_SECRET_ACCESS_KEY"]
    assert secret not in detail.text
    assert secret not in srv.log()
    assert secret not in srv.run_cli("locate", create(srv, admin)).stdout
