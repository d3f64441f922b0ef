"""Import faults through a real gunicorn: a staging store that is full or missing, staged data
lost before its import, an image deleted while its web-download runs, a web-download past the
project's quota, and a host killed while
it stages and imports (then `imagedata recover` and `imagedata scrub`).

Each case ends the same way: a clear answer (never a 500, never a path), the image back in
`queued` or gone, nothing left in any store, the project's usage where it was.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.faults.helpers import RawUpload, assert_no_path, files_of, scrub, usage
from tests.imports.helpers import (GLANCE_DIRECT, MIB, NO_SUCH_ID, Api, blob, stalled_web_download, wait_for,
                                   web_download)

pytestmark = pytest.mark.e2e

STAGING_SPACE = 2 * MIB


@pytest.fixture(scope="module")
def server(start_module_server, origin):
    """The staging store in ``staging-area/staging``; ``staging-area`` is a 2 MiB tmpfs when
    mounting is permitted (``srv.small_staging``)."""
    srv = start_module_server("import-faults", start=False, IMAGEDATA_LOG_LEVEL="INFO",
                              IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS=f"127.0.0.1:{origin.port}",
                              IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT=3)
    area = os.path.join(srv.root, "staging-area")
    os.makedirs(area)
    srv.small_staging = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={STAGING_SPACE}", "tmpfs", area],
                                       capture_output=True).returncode == 0
    srv.staging = os.path.join(area, "staging")
    srv.env["IMAGEDATA_STAGING_STORE"] = f"file://{srv.staging}"
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        if srv.small_staging and subprocess.run(["umount", area], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", area], capture_output=True)


@pytest.fixture(scope="module")
def member(server) -> Api:
    return Api(server.url, server.token("p1", "member,reader"))


def staged_files(server) -> list[str]:
    return sorted(os.listdir(server.staging)) if os.path.isdir(server.staging) else []


def assert_nothing_left(server, member, image_id, before):
    deadline = time.monotonic() + 5
    while (files_of(server, image_id) or staged_files(server)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert files_of(server, image_id) == [] and staged_files(server) == []
    assert usage(server, member.session.headers["X-Auth-Token"]) == before


def test_a_full_staging_store_is_413_and_leaves_nothing(server, member):
    if not server.small_staging:
        pytest.skip("mounting a tmpfs is not permitted here")
    token = member.session.headers["X-Auth-Token"]
    before = usage(server, token)
    image_id = member.create()
    for body in (blob(3 * MIB, 61), iter([blob(MIB, 62)] * 3)):  # declared, then chunked
        response = member.stage(image_id, body)
        assert response.status_code == 413, response.text
        assert "os_glance_staging_store" in response.text, response.text
        assert_no_path(server, response.text)
        assert member.show(image_id)["status"] == "queued"
        assert_nothing_left(server, member, image_id, {**before, "image_count_total": before["image_count_total"] + 1})
    data = blob(MIB, 63)  # room again: staged and imported, the staged copy removed
    assert member.stage(image_id, data).status_code == 204
    task, image = member.imported(image_id, GLANCE_DIRECT)
    assert task["status"] == "success" and member.data(image_id) == data
    assert staged_files(server) == []
    assert member.delete(image_id).status_code == 204
    assert_nothing_left(server, member, image_id, before)


def test_a_missing_staging_store_is_503_and_leaves_nothing(server, member):
    token = member.session.headers["X-Auth-Token"]
    image_id = member.create()
    before = usage(server, token)
    os.rename(server.staging, server.staging + ".aside")
    try:
        response = member.stage(image_id, blob(MIB // 4, 64))
        assert response.status_code == 503, response.text
        assert "os_glance_staging_store" in response.text
        assert_no_path(server, response.text)
        assert member.show(image_id)["status"] == "queued"
    finally:
        os.rename(server.staging + ".aside", server.staging)
    assert_nothing_left(server, member, image_id, before)
    assert member.stage(image_id, blob(MIB // 4, 64)).status_code == 204
    assert member.delete(image_id).status_code == 204
    assert staged_files(server) == []


def test_staged_data_lost_before_its_import(server, member):
    token = member.session.headers["X-Auth-Token"]
    before = usage(server, token)
    image_id = member.create()
    assert member.stage(image_id, blob(MIB // 2, 65)).status_code == 204
    (name,) = staged_files(server)
    os.unlink(os.path.join(server.staging, name))
    task, image = member.imported(image_id, GLANCE_DIRECT)
    assert task["status"] == "failure" and "stage" in task["message"], task
    assert image["status"] == "queued" and image["os_glance_failed_import"] == "local"
    assert_no_path(server, task["message"])
    assert member.delete(image_id).status_code == 204
    assert_nothing_left(server, member, image_id, before)


def test_delete_during_a_web_download(server, member, origin):
    token = member.session.headers["X-Auth-Token"]
    before = usage(server, token)
    data = blob(4 * MIB, 66)
    image_id = stalled_web_download(member, origin, data, 2 * MIB)
    image = member.show(image_id)
    assert image["status"] == "importing"
    response = member.delete(image_id)
    assert response.status_code == 204, response.text
    origin.configure(data)  # the stalled answer ends; a retry finds the image gone
    assert member.session.get(f"{member.url}/v2/images/{image_id}", timeout=10).status_code == 404
    assert_nothing_left(server, member, image_id, before)
    admin = Api(server.url, server.token("ops", "admin"))
    deadline = time.monotonic() + 10
    while True:  # the task ends as failed (the tasks API, admin-only, still shows it)
        task = admin.session.get(f"{admin.url}/v2/tasks/{image['os_glance_import_task']}", timeout=10).json()
        if task["status"] == "failure" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert task["status"] == "failure" and "was deleted during its import" in task["message"], task
    assert files_of(server, image_id) == [] and scrub(server)[:2] == (0, 0)
    assert "Traceback" not in server.log()


def test_a_stalled_web_download_is_cut_soon_after_its_image_is_deleted(start_server, origin):
    """A server that stops sending does not hold the import's connection and thread until the
    idle timeout (here 120 s) once the image is deleted: the next heartbeat (1 s here) cuts it."""
    srv = start_server("cut", IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS=f"127.0.0.1:{origin.port}",
                       IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT=120, IMAGEDATA_UPLOAD_IDLE_TIMEOUT=4,
                       IMAGEDATA_UPLOAD_LEASE_SECONDS=6, IMAGEDATA_LOG_LEVEL="INFO")
    member, admin = Api(srv.url, srv.token("p1", "member,reader")), Api(srv.url, srv.token("ops", "admin"))
    image_id = stalled_web_download(member, origin, blob(4 * MIB, 67), 2 * MIB)
    task_id = member.show(image_id)["os_glance_import_task"]
    deleted = time.monotonic()
    assert member.delete(image_id).status_code == 204
    deadline = deleted + 30
    while True:  # (the origin stays stalled all along)
        task = admin.session.get(f"{admin.url}/v2/tasks/{task_id}", timeout=10).json()
        if task["status"] == "failure" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    took = time.monotonic() - deleted
    assert task["status"] == "failure" and "was deleted during its import" in task["message"], task
    assert took < 10, f"the stalled download held on for {took:.1f} s after the delete"
    assert files_of(srv, image_id) == [] and scrub(srv)[:2] == (0, 0)
    assert "Traceback" not in srv.log()


def test_a_web_download_past_the_quota_fails_and_leaves_nothing(server, origin):
    """The fetched bytes count against the project's image_size_total as an upload's do: the
    import stops past the quota, its task names it, the image is queued again, usage unchanged."""
    server.cli("quota", "set", "--project", "pq", "--image-size-total", str(MIB))
    tight = Api(server.url, server.token("pq", "member,reader"))
    before = usage(server, tight.session.headers["X-Auth-Token"])
    origin.configure(blob(4 * MIB, 67))
    image_id = tight.create()
    task, image = tight.imported(image_id, web_download(origin.url()))
    assert task["status"] == "failure" and "quota" in task["message"], task
    assert (image["status"], image["size"], image["stores"] if "stores" in image else None) == ("queued", None, None)
    assert origin.bytes_sent < 4 * MIB  # cut past the quota, not read to its end
    assert tight.delete(image_id).status_code == 204  # the image itself counts in image_count_total
    assert_nothing_left(server, tight, image_id, before)
    assert "Traceback" not in server.log()


def test_recover_and_scrub_know_staged_data(start_server, origin):
    srv = start_server("killed", IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS=f"127.0.0.1:{origin.port}")
    staging = os.path.join(srv.root, "stores", "local", "staging")  # the default staging store
    token = srv.token("p1")
    api = Api(srv.url, token)
    waiting, data = api.create(), blob(MIB // 2, 67)
    assert api.stage(waiting, data).status_code == 204  # staged, its import not asked for yet
    cut = api.create()
    upload = RawUpload(srv, token, cut, content_length=4 * MIB, path="stage")
    assert upload.send(blob(MIB, 68))
    wait_for(lambda: any(cut in name for name in os.listdir(staging)), "the stage did not start")
    whole = blob(3 * MIB, 69)
    fetched = stalled_web_download(api, origin, whole, MIB)
    srv.kill_all()
    upload.close()
    origin.configure(whole)

    recovered = srv.run_cli("recover")
    assert recovered.returncode == 0, recovered.stderr
    assert f"recovered 1 upload(s)\n  {cut}" in recovered.stdout, recovered.stdout
    assert f"took over and ran 1 import(s)\n  {fetched}" in recovered.stdout, recovered.stdout
    assert [name for name in os.listdir(staging) if waiting not in name] == []
    assert scrub(srv)[:2] == (0, 0)  # the staged data waiting for its import is no orphan

    (name,) = os.listdir(staging)
    with open(os.path.join(staging, name.replace(waiting, NO_SUCH_ID)), "wb") as f:
        f.write(b"left by nobody")
    orphans, _, report = scrub(srv)
    assert orphans == 1 and "os_glance_staging_store" in report, report
    assert scrub(srv, "--fix")[0] == 1 and os.listdir(staging) == [name]

    srv.start()
    assert api.show(cut)["status"] == "queued" and api.show(waiting)["status"] == "uploading"
    assert api.show(fetched)["status"] == "active" and api.data(fetched) == whole
    task, image = api.imported(waiting, GLANCE_DIRECT)
    assert task["status"] == "success" and api.data(waiting) == data
    assert os.listdir(staging) == [] and scrub(srv)[:2] == (0, 0)
