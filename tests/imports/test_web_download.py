"""web-download end to end: a real gunicorn fetching from a loopback origin the test starts.

Each import is checked by what a client sees (the task, the image, the bytes of GET /file)
and by what the origin logged (connections, requests, bytes sent). Failures must end the
task with a message naming the reason, return the image to `queued` and leave no file.
"""
from __future__ import annotations

import base64

import pytest
import requests

from tests.faults.helpers import db_rows, files_of
from tests.imports.conftest import CAP, IDLE
from tests.imports.helpers import MIB, blob, sha512, web_download
from tests.webfetch.origin import Origin

pytestmark = pytest.mark.e2e

SIZE = 6 * MIB
# A reset drops what the origin's kernel still held unsent, as a crashed server does; a small
# send buffer keeps that loss small, so that the byte count measures the service.
SNDBUF = 256 << 10


@pytest.fixture(scope="module")
def data():
    return blob(SIZE, 27)


def assert_failed_cleanly(server, member, image_id, task, *needles):
    """The task failed naming the reason; the image is queued with nothing kept or reserved."""
    assert task["status"] == "failure", task
    for needle in needles:
        assert needle in task["message"], task["message"]
    image = member.show(image_id)
    assert image["status"] == "queued" and image["size"] is None and image["checksum"] is None, image
    assert image["os_glance_failed_import"] == "local" and image["os_glance_importing_to_stores"] == ""
    assert "os_glance_import_task" not in image
    assert files_of(server, image_id) == []
    (row,) = db_rows(server, f"id = '{image_id}'")
    assert row["reserved_bytes"] == 0 and row["attempt"] is None


def test_a_plain_web_download(server, member, origin, data):
    origin.configure(data)
    image_id = member.create()
    response = member.start(image_id, web_download(origin.url()))
    assert response.status_code == 202 and response.content == b""
    task = member.wait_task(image_id)
    assert task["status"] == "success", task
    assert task["type"] == "api_image_import" and task["message"] == "Copied 6 MiB to store local"
    assert task["request_id"] == response.headers["x-openstack-request-id"]
    assert task["input"] == {"image_id": image_id, "import_req": web_download(origin.url()), "backend": ["local"]}
    assert task["result"] == {"image_id": image_id} and task["expires_at"]
    image = member.show(image_id)
    assert image["status"] == "active" and image["stores"] == "local" and image["size"] == SIZE
    assert image["os_hash_value"] == sha512(data) and image["os_glance_failed_import"] == ""
    assert member.data(image_id) == data
    assert len(origin.connections) == 1 and origin.bytes_sent == SIZE
    assert origin.requests[0]["headers"]["User-Agent"].startswith("imagedata/")


def test_an_origin_that_resets_every_2_mib_is_resumed(server, member, origin, data):
    origin.configure(data, reset_every=2 * MIB, sndbuf=SNDBUF)
    image_id = member.create()
    task, image = member.imported(image_id, web_download(origin.url()))
    assert task["status"] == "success", task
    assert image["status"] == "active" and image["os_hash_value"] == sha512(data)
    assert member.data(image_id) == data
    assert origin.resets >= 2 and origin.bytes_sent < 1.2 * SIZE, (origin.resets, origin.bytes_sent / SIZE)
    resumed = [r["headers"].get("Range") for r in origin.requests[1:]]
    assert resumed and all(r and r.startswith("bytes=") and r != "bytes=0-" for r in resumed), resumed


def test_a_file_changed_after_a_reset_is_read_again_from_the_start(server, member, origin, data):
    new = data[::-1]
    origin.configure(data, reset_every=2 * MIB, resets=1, changed=(new, '"v2"'), sndbuf=SNDBUF)
    image_id = member.create()
    task, image = member.imported(image_id, web_download(origin.url()))
    assert task["status"] == "success", task
    assert image["os_hash_value"] == sha512(new) and member.data(image_id) == new
    assert origin.requests[1]["headers"]["If-Range"] == '"v1"'
    assert "starts over from byte 0: the file changed (new ETag)" in server.log()


@pytest.mark.parametrize("case", ["404", "over-cap-declared", "over-cap-chunked", "stall"])
def test_a_failed_download_names_its_reason_and_leaves_nothing(server, member, origin, case):
    big = blob(CAP + MIB, 5)
    url, needles = origin.url(), ()
    if case == "404":
        origin.configure(b"")
        url = origin.url("/status/404")
        needles = ("404 Not Found", url)
    elif case == "over-cap-declared":
        origin.configure(big, sndbuf=SNDBUF)
        needles = (f"is {CAP + MIB} bytes, larger than the limit of {CAP} bytes; nothing was downloaded",)
    elif case == "over-cap-chunked":
        origin.configure(big, chunked=True, sndbuf=SNDBUF)
        needles = (f"larger than the limit of {CAP} bytes; the download was stopped there",)
    else:
        origin.configure(big[:SIZE], stall_after=3 * MIB)
        needles = (f"sent nothing for {IDLE} seconds after", "IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT")
    image_id = member.create()
    task, _ = member.imported(image_id, web_download(url))
    assert_failed_cleanly(server, member, image_id, task, *needles)
    if case == "over-cap-declared":
        assert origin.bytes_sent < 2 * MIB  # refused from its Content-Length, not read (what the kernels took)
    if case == "over-cap-chunked":
        assert origin.bytes_sent < CAP + 2 * MIB


def test_credentials_in_the_url_are_used_and_never_shown(server, member, admin, origin, data):
    secret = "pa55-Word-1y2x"
    origin.configure(data)
    url = origin.url("/status/404").replace("http://", f"http://alice:{secret}@") + f"?signature={secret}x"
    image_id = member.create()
    response = member.start(image_id, web_download(url))
    assert response.status_code == 202
    task = member.wait_task(image_id)
    assert task["status"] == "failure" and "404 Not Found" in task["message"]
    sent = origin.requests[0]["headers"]["Authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == f"alice:{secret}"  # the credentials were used
    shown = [requests.get(f"{server.url}{path}", headers={"X-Auth-Token": token}, timeout=10).text
             for path, token in ((f"/v2/images/{image_id}/tasks", member.session.headers["X-Auth-Token"]),
                                 (f"/v2/tasks/{task['id']}", admin.session.headers["X-Auth-Token"]))]
    assert "alice:***" not in shown[0] and "***@127.0.0.1" in shown[0], shown[0]
    refused = member.start(member.create(), web_download(f"http://bob:{secret}@10.0.0.5/disk.img"))
    assert refused.status_code == 400 and "***@10.0.0.5" in refused.text
    for text in shown + [refused.text, task["message"], server.log()]:
        assert secret not in text


def test_redirects_to_refused_places_end_the_task_and_are_never_fetched(server, member, origin, data):
    """Only the origin is allowed: a redirect to another loopback address, or to another port
    of the same address, is refused before anything connects there."""
    origin.configure(data)
    with Origin(data, host="127.0.0.2") as elsewhere, Origin(data) as other_port:
        for target, why in ((elsewhere.url(), f"127.0.0.2:{elsewhere.port} is not in"),
                            (other_port.url(), f"127.0.0.1:{other_port.port} is not in")):
            image_id = member.create()
            task, _ = member.imported(image_id, web_download(origin.url(f"/redirect?to={target}")))
            assert_failed_cleanly(server, member, image_id, task, f"to {target} is refused", why)
        assert elsewhere.connections == [] and other_port.connections == []
    origin.configure(data)
    image_id = member.create()
    task, _ = member.imported(image_id, web_download(origin.url("/loop/0")))
    assert_failed_cleanly(server, member, image_id, task, "redirected more than 5 times")
    assert len(origin.connections) == 6  # the URL and five hops; the sixth hop is never fetched


def test_a_web_download_to_every_store_fetches_once_and_copies_the_first_copy(server, member, origin, data):
    origin.configure(data)
    image_id = member.create()
    task, image = member.imported(image_id, web_download(origin.url(), all_stores=True))
    assert task["status"] == "success", task
    assert task["input"]["backend"] == ["local", "slow"] and task["message"] == "Copied 6 MiB to store slow"
    assert image["status"] == "active" and image["stores"] == "local,slow" and image["os_hash_value"] == sha512(data)
    assert len(origin.connections) == 1  # the second store is filled from the first copy
    copies = files_of(server, image_id)
    assert len(copies) == 2 and {open(path, "rb").read() == data for path in copies} == {True}
