"""Issue 28 items 2 and 3, as the upload state-machine refactor must leave them (two hosts on a
private PostgreSQL and SeaweedFS, as in "Scaling out").

2. A host killed while it resumes an upload on S3 (copying the kept data into the new
   multipart upload): once the lease has expired and ``imagedata recover`` ran, no multipart
   upload is left in the bucket and every object left is one the image accounts for.
3. PostgreSQL restarted while an upload streams: the client gets 503 and the image is
   `queued` again at once (not after the lease), so a retry works.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.e2e import streams
from tests.faults.helpers import RawUpload, create
from tests.soak.cluster import BUCKET, LEASE, PREFIX
from tests.soak.ops import cut_upload

MIB = streams.MIB
KEPT, TOTAL = 256 * MIB, 288 * MIB  # copying 256 MiB of kept data takes 3-8 s on SeaweedFS here
PART = 8 * MIB  # the S3 store's part size: the resume copies KEPT / PART parts
pytestmark = pytest.mark.e2e


def require(condition, message: str) -> None:
    """A precondition of the scenario: missing it fails the test, never as the expected failure."""
    if not condition:
        pytest.fail(f"precondition: {message}")


def image_status(host, token, image_id) -> str | None:
    """The status, asking again while the host answers 503 (stale database connections after a restart)."""
    for _ in range(50):
        answer = requests.get(f"{host.url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=10)
        if answer.status_code != 503:
            assert answer.status_code == 200, answer.text
            return answer.json()["status"]
        time.sleep(0.05)
    return None


def kept_bytes(host, token, image_id) -> int | None:
    """The Upload-Offset that HEAD advertises (kept data of an interrupted upload), or None."""
    answer = requests.head(f"{host.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token}, timeout=10)
    return int(answer.headers["Upload-Offset"]) if "Upload-Offset" in answer.headers else None


def bucket_entries(cluster, image_id) -> tuple[list, list]:
    """(objects as (key, size), multipart uploads' keys) of one image in the bucket."""
    s3 = cluster.s3()
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Contents", [])
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Uploads", [])
    return ([(o["Key"], o["Size"]) for o in objects if image_id in o["Key"]],
            [u["Key"] for u in uploads if image_id in u["Key"]])


def parts_copied(cluster, image_id) -> list[int]:
    """The number of parts of each multipart upload of the image (a resume copying its kept data)."""
    s3 = cluster.s3()
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Uploads", [])
    return [len(s3.list_parts(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))
            for u in uploads if image_id in u["Key"]]


def test_a_host_killed_while_it_resumes_on_s3_leaves_no_multipart_upload(shared_cluster):
    cluster = shared_cluster
    a, b = cluster.hosts["a"], cluster.hosts["b"]
    token = cluster.tokens_of("recovery")["member"]
    image_id = create(b, token)
    cut_upload(b.url, token, image_id, 7, TOTAL, KEPT)
    deadline = time.monotonic() + 60
    while kept_bytes(a, token, image_id) != KEPT and time.monotonic() < deadline:
        time.sleep(0.2)
    require(kept_bytes(a, token, image_id) == KEPT, f"the cut upload keeps {KEPT} bytes")
    resume = RawUpload(b, token, image_id, content_length=TOTAL - KEPT,
                       extra=[("Content-Range", f"bytes {KEPT}-{TOTAL - 1}/{TOTAL}")])
    try:
        resume.send(b"".join(streams.chunks(7, KEPT + MIB))[KEPT:])
        # The resume opens a multipart upload and copies the kept parts into it (server-side on
        # SeaweedFS, often done within a second), then waits for the rest of the body: killed
        # in either stage, the multipart upload is open.
        deadline = time.monotonic() + 10
        while len(parts_copied(cluster, image_id)) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        copying = parts_copied(cluster, image_id)
        require(len(copying) == 1, f"the resume has one multipart upload open when its host is killed: {copying}")
        require(image_status(a, token, image_id) == "saving", "the resume holds the lease")
        b.kill_all()
        print(f"killed with {copying[0]} of {KEPT // PART} kept parts copied")
    finally:
        resume.close()
    try:
        time.sleep(LEASE + 2)
        recovered = a.run_cli("recover")
        assert recovered.returncode == 0, recovered.stderr
        assert image_status(a, token, image_id) == "queued"
        objects, uploads = bucket_entries(cluster, image_id)
        assert uploads == [], f"multipart upload(s) left after recovery: {uploads}"
        kept = kept_bytes(a, token, image_id)
        assert objects == ([] if kept is None else [(objects[0][0], kept)]), (objects, kept)
    finally:
        b.start()


def test_a_postgresql_restart_during_an_upload_is_a_503_and_the_image_is_queued_at_once(shared_cluster):
    cluster = shared_cluster
    a = cluster.hosts["a"]
    token = cluster.tokens_of("recovery")["member"]
    image_id = create(a, token)
    upload = RawUpload(a, token, image_id, content_length=32 * MIB)
    try:
        pieces = streams.chunks(3, 32 * MIB)
        for _ in range(8):
            upload.send(next(pieces))
        require(image_status(a, token, image_id) == "saving", "the upload holds the lease")
        cluster.pg.restart()
        for piece in pieces:
            if not upload.send(piece):
                break
        answer = upload.wait(60)
    finally:
        upload.close()
    answered = time.monotonic()
    assert answer is not None and answer.status == 503, answer
    while image_status(a, token, image_id) == "saving" and time.monotonic() - answered < 2.0:
        time.sleep(0.1)
    status = image_status(a, token, image_id)
    assert status == "queued", f"{status} {time.monotonic() - answered:.1f}s after the 503 (lease {LEASE}s)"
    retry = requests.put(f"{a.url}/v2/images/{image_id}/file", data=b"".join(streams.chunks(3, 4 * MIB)),
                         headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"}, timeout=60)
    assert retry.status_code == 204, retry.text
