"""copy-image and several stores: where a copy is read from, and what a failed copy leaves.

Three filesystem stores: ``local`` (the default), ``slow``, and ``tiny``, a 2 MiB tmpfs (a store
that fills up in the middle of a copy; with no permission to mount, a folder and the tests
that need it full are skipped). A copy is read from an active copy that can be read and
matches the image's digests; a copy that fails touches no other copy; with
``all_stores_must_succeed`` (the default) a failed copy-image removes the copies it made, as
Glance's revert does, and the image stays active on the copies it had.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import time

import pytest

from tests.faults.helpers import scrub
from tests.imports.helpers import MIB, Api, blob, copy_image, web_download

pytestmark = pytest.mark.e2e

TINY = 2 * MIB  # the tmpfs of store ``tiny``
DATA = blob(3 * MIB, 41)  # does not fit in ``tiny``
SMALL = blob(MIB // 2, 42)
BIG = blob(96 * MIB, 43)  # a copy that takes a while: ~0.1 s per store here


@pytest.fixture(scope="module")
def three(start_module_server, origin):
    """A server with the stores local, slow and tiny; ``tiny_full`` says whether tiny is a tmpfs."""
    srv = start_module_server("three", start=False, IMAGEDATA_LOG_LEVEL="INFO",
                              IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS=f"127.0.0.1:{origin.port}")
    stores = os.path.join(srv.root, "stores")
    srv.env["IMAGEDATA_STORES"] = ",".join(f"{name}=file://{stores}/{name}" for name in ("local", "slow", "tiny"))
    tiny = os.path.join(stores, "tiny")
    os.makedirs(tiny)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TINY}", "tmpfs", tiny],
                             capture_output=True).returncode == 0
    try:
        srv.start()
        srv.tiny_full = mounted
        yield srv
    finally:
        srv.stop()
        if mounted and subprocess.run(["umount", tiny], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", tiny], capture_output=True)


@pytest.fixture(scope="module")
def admin3(three) -> Api:
    return Api(three.url, three.token("p1", "admin,member,reader"))


def _active(api: Api, data: bytes, store: str | None = None) -> str:
    image_id = api.create()
    headers = {"X-Image-Meta-Store": store} if store else {}
    assert api.upload(image_id, data, **headers).status_code == 204
    return image_id


def _files(srv, store: str, image_id: str) -> list[str]:
    root = os.path.join(srv.root, "stores", store)
    return sorted(name for name in os.listdir(root) if image_id in name)


def _data_file(srv, store: str, image_id: str) -> str:
    names = _files(srv, store, image_id)
    assert len(names) == 1, names
    return os.path.join(srv.root, "stores", store, names[0])


def test_a_copy_is_read_from_a_copy_that_matches_the_image(three, admin3):
    image_id = _active(admin3, SMALL)
    assert admin3.imported(image_id, copy_image("slow"))[0]["status"] == "success"
    with open(_data_file(three, "local", image_id), "r+b") as f:  # same size, other bytes
        f.write(b"\0" * 4096)
    task, image = admin3.imported(image_id, copy_image("tiny"))
    assert task["status"] == "success", task
    assert sorted(image["stores"].split(",")) == ["local", "slow", "tiny"]
    with open(_data_file(three, "tiny", image_id), "rb") as f:
        assert hashlib.sha512(f.read()).hexdigest() == hashlib.sha512(SMALL).hexdigest()


def test_a_missing_copy_is_passed_over(three, admin3):
    image_id = _active(admin3, SMALL)
    assert admin3.imported(image_id, copy_image("slow"))[0]["status"] == "success"
    os.unlink(_data_file(three, "local", image_id))
    task, image = admin3.imported(image_id, copy_image("tiny"))
    assert task["status"] == "success", task
    with open(_data_file(three, "tiny", image_id), "rb") as f:
        assert f.read() == SMALL


def test_copy_after_the_hash_algorithm_changed(start_module_server):
    srv = start_module_server("algo", IMAGEDATA_HASH_ALGO="sha256")
    api = Api(srv.url, srv.token("p1", "admin,member,reader"))
    image_id = _active(api, SMALL)
    srv.stop()
    srv = start_module_server("algo", IMAGEDATA_HASH_ALGO="sha512")  # the same folder, another setting
    api = Api(srv.url, srv.token("p1", "admin,member,reader"))
    task, image = api.imported(image_id, copy_image("slow"))
    assert task["status"] == "success", task
    assert image["os_hash_algo"] == "sha256" and image["stores"] == "local,slow"


@pytest.mark.parametrize("must", [True, False], ids=["must-succeed", "may-fail"])
def test_a_copy_that_fills_its_store(three, admin3, must):
    if not three.tiny_full:
        pytest.skip("mounting a tmpfs is not permitted here")
    image_id = _active(admin3, DATA)
    body = copy_image("slow", "tiny", all_stores_must_succeed=must)
    task, image = admin3.imported(image_id, body)
    assert image["status"] == "active" and image["os_glance_failed_import"] == "tiny"
    assert image["os_glance_importing_to_stores"] == "" and "os_glance_import_task" not in image
    assert _files(three, "tiny", image_id) == []
    if must:  # Glance reverts every store of the task: the copy it made goes too
        assert task["status"] == "failure" and "tiny" in task["message"], task
        assert image["stores"] == "local" and _files(three, "slow", image_id) == []
    else:
        assert task["status"] == "success" and "tiny" in task["message"], task
        assert image["stores"] == "local,slow"
    assert admin3.data(image_id) == DATA and len(_files(three, "local", image_id)) == 1
    assert admin3.delete(image_id).status_code == 204
    assert _files(three, "local", image_id) == _files(three, "slow", image_id) == []


def _usage(api: Api) -> dict:
    response = api.session.get(f"{api.url}/v2/info/usage", timeout=30)
    assert response.status_code == 200, response.text
    return {name: value["usage"] for name, value in response.json()["usage"].items()}


@pytest.mark.parametrize("must", [True, False], ids=["must-succeed", "may-fail"])
def test_a_web_download_into_a_store_that_fills(three, admin3, origin, must):
    if not three.tiny_full:
        pytest.skip("mounting a tmpfs is not permitted here")
    origin.configure(DATA)
    image_id = admin3.create()
    before = _usage(admin3)
    task, image = admin3.imported(image_id, web_download(origin.url("/image"), stores=["slow", "tiny"],
                                                         all_stores_must_succeed=must))
    assert image["os_glance_failed_import"] == "tiny" and _files(three, "tiny", image_id) == []
    if must:  # back to queued: no copy, no reservation
        assert task["status"] == "failure" and image["status"] == "queued", task
        assert "stores" not in image and _files(three, "slow", image_id) == [] and _usage(admin3) == before
    else:
        assert task["status"] == "success" and image["status"] == "active", task
        assert image["stores"] == "slow" and admin3.data(image_id) == DATA
        assert _usage(admin3) == {**before, "image_size_total": before["image_size_total"] + len(DATA)}


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.2])
def test_an_image_deleted_while_it_is_copied_leaves_nothing_anywhere(three, admin3, delay):
    """A delete at any moment of a copy-image (before it starts, mid-copy, while the copy is
    recorded, after it): 204, then 404; the task ends, failed when the delete met it (done
    when the copies were made before); no file of the image in any store, nothing for scrub."""
    image_id = _active(admin3, BIG)
    response = admin3.start(image_id, copy_image("slow", "tiny", all_stores_must_succeed=False))
    assert response.status_code == 202, response.text
    time.sleep(delay)
    task_id = admin3.tasks(image_id)[0]["id"]
    assert admin3.delete(image_id).status_code == 204
    assert admin3.session.get(f"{admin3.url}/v2/images/{image_id}", timeout=10).status_code == 404
    deadline = time.monotonic() + 30
    while True:
        task = admin3.session.get(f"{admin3.url}/v2/tasks/{task_id}", timeout=10).json()
        if task["status"] in ("success", "failure"):
            break
        assert time.monotonic() < deadline, f"the copy did not end after the delete: {task}"
        time.sleep(0.05)
    # A copy that met the delete fails (it once ended "success: Some stores failed: ... deleted").
    if task["status"] == "failure" or "deleted" in (task.get("message") or ""):
        assert task["status"] == "failure" and "was deleted during its import" in task["message"], task
    deadline = time.monotonic() + 5
    while any(_files(three, store, image_id) for store in ("local", "slow", "tiny")):
        assert time.monotonic() < deadline, {store: _files(three, store, image_id) for store in ("local", "slow")}
        time.sleep(0.05)
    orphans, _broken, report = scrub(three)  # (earlier tests of the module leave broken copies on purpose)
    assert orphans == 0 and image_id not in report, report
    assert "Traceback" not in three.log()

