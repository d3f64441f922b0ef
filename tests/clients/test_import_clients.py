"""Interoperable import through the real clients, unchanged: python-glanceclient (`glance`),
python-openstackclient (`openstack image ...`) and openstacksdk as a library.

One server with two filesystem stores (``local``, the default, and ``slow``) and web-download
allowed to a loopback origin the module starts. Every import is checked by the bytes the
service then serves and by the image's stores, never by the client's word alone.
"""
from __future__ import annotations

import json
import os
import sys
import time

import openstack
import pytest

from tests.clients.helpers import api, api_create, api_show, read, run_client, sha512, table_rows, unique

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

BIN = os.path.dirname(sys.executable)
GLANCE, OPENSTACK = os.path.join(BIN, "glance"), os.path.join(BIN, "openstack")


@pytest.fixture(scope="module")
def server(start_module_server, origin, data_file):
    """The module's server: web-download allowed to the origin only, which serves ``data_file``."""
    origin.configure(data_file[1])
    return start_module_server("srv-import", IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS=f"127.0.0.1:{origin.port}")


@pytest.fixture(scope="module")
def glance(server, member, workdir):
    """glance(*args, token=member, check=True) -> Result."""

    def run(*args, token=None, check=True):
        argv = [GLANCE, "--os-image-url", server.url, "--os-auth-token", token or member, *args]
        return run_client(argv, workdir=workdir / "glance", check=check)

    return run


@pytest.fixture(scope="module")
def osc(server, member, workdir):
    """osc(*args, token=member, check=True) -> Result, with the token and the /v2 endpoint."""

    def run(*args, token=None, check=True):
        argv = [OPENSTACK, "--os-auth-type", "admin_token", "--os-token", token or member,
                "--os-endpoint", f"{server.url}/v2", *args]
        return run_client(argv, workdir=workdir / "osc", check=check)

    return run


def wait_image(session, image_id, check, timeout=30) -> dict:
    """The image once ``check(image)`` holds (imports end in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        image = api_show(session, image_id).json()
        if check(image):
            return image
        assert time.monotonic() < deadline, f"image {image_id} did not get there: {image}"
        time.sleep(0.1)


def data_of(session, image_id) -> bytes:
    response = session.get(f"{session.base}/v2/images/{image_id}/file", timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def in_stores(*stores):
    return lambda image: image["status"] == "active" and sorted(image["stores"].split(",")) == sorted(stores)


def test_glance_create_via_import_stage_import_copy_and_delete_a_copy(glance, server, member, admin, data_file,
                                                                     origin):
    path, data = data_file
    session, ops = api(server, member), api(server, admin)
    fields = ["--disk-format", "raw", "--container-format", "bare"]

    shown = glance("image-create-via-import", "--name", unique("gd"), *fields, "--import-method", "glance-direct",
                   "--file", path)
    direct = dict(row for row in table_rows(shown.stdout) if len(row) == 2)["id"]
    wait_image(session, direct, in_stores("local"))
    assert data_of(session, direct) == data

    shown = glance("image-create-via-import", "--name", unique("wd"), *fields, "--import-method", "web-download",
                   "--uri", origin.url())
    fetched = dict(row for row in table_rows(shown.stdout) if len(row) == 2)["id"]
    image = wait_image(session, fetched, in_stores("local"))
    assert image["os_hash_value"] == sha512(data) and data_of(session, fetched) == data

    staged = api_create(session, unique("stage"))
    glance("image-stage", "--file", path, staged)
    assert api_show(session, staged).json()["status"] == "uploading"
    glance("image-import", "--import-method", "glance-direct", staged)
    wait_image(session, staged, in_stores("local"))

    # copy-image is admin-only (Glance's default policy): the member is refused, an admin copies
    refused = glance("image-import", "--import-method", "copy-image", "--stores", "slow", direct, check=False)
    assert refused.returncode == 1 and "403" in refused.output, str(refused)
    glance("image-import", "--import-method", "copy-image", "--stores", "slow", direct, token=admin)
    wait_image(session, direct, in_stores("local", "slow"))
    tasks = [row for row in table_rows(glance("image-tasks", direct, token=admin).stdout)[1:]]
    assert sorted((row[0], row[1]) for row in tasks) == [("Copied 2 MiB to store local", "success"),
                                                         ("Copied 2 MiB to store slow", "success")], tasks

    glance("stores-delete", "--store", "local", direct, token=admin)
    assert api_show(session, direct).json()["stores"] == "slow" and data_of(session, direct) == data
    last = glance("stores-delete", "--store", "slow", direct, token=admin, check=False)
    assert last.returncode == 1 and "last copy" in last.output, str(last)
    assert ops.delete(f"{server.url}/v2/images/{direct}", timeout=30).status_code == 204


def test_openstack_create_import_stage_import_copy_and_delete_from_a_store(osc, server, member, admin, data_file,
                                                                          origin):
    path, data = data_file
    session = api(server, member)
    created = json.loads(osc("image", "create", "--import", "--disk-format", "raw", "--container-format", "bare",
                             "--file", path, unique("osc-import"), "-f", "json").stdout)
    image_id = created["id"]
    wait_image(session, image_id, in_stores("local"))
    assert data_of(session, image_id) == data
    assert api(server, member).get(f"{server.url}/v2/images/{image_id}/tasks", timeout=30).json()["tasks"][0][
        "input"]["import_req"]["method"]["name"] == "glance-direct"

    staged = api_create(session, unique("osc-stage"))
    osc("image", "stage", "--file", path, staged)
    osc("image", "import", "--method", "glance-direct", staged)
    wait_image(session, staged, in_stores("local"))

    fetched = api_create(session, unique("osc-web"))
    osc("image", "import", "--method", "web-download", "--uri", origin.url(), fetched)
    wait_image(session, fetched, in_stores("local"))
    assert data_of(session, fetched) == data

    # `image import` sends all_stores_must_succeed=false unless --disallow-failure
    osc("image", "import", image_id, "--method", "copy-image", "--store", "slow", token=admin)
    wait_image(session, image_id, in_stores("local", "slow"))
    task = api(server, admin).get(f"{server.url}/v2/images/{image_id}/tasks", timeout=30).json()["tasks"]
    copy = next(t for t in task if t["input"]["import_req"]["method"]["name"] == "copy-image")
    assert copy["input"]["import_req"]["all_stores_must_succeed"] is False
    osc("image", "delete", "--store", "slow", image_id, token=admin)
    image = api_show(session, image_id).json()
    assert image["status"] == "active" and image["stores"] == "local" and data_of(session, image_id) == data

    # --disallow-failure: every store must succeed (Glance's revert if one fails)
    osc("image", "import", image_id, "--method", "copy-image", "--store", "slow", "--disallow-failure", token=admin)
    wait_image(session, image_id, in_stores("local", "slow"))
    task = api(server, admin).get(f"{server.url}/v2/images/{image_id}/tasks", timeout=30).json()["tasks"]
    assert [t["status"] for t in task if t["input"]["import_req"].get("all_stores_must_succeed") is True
            and t["input"]["import_req"]["method"]["name"] == "copy-image"] == ["success"], task
    assert data_of(session, image_id) == data


def test_sdk_create_image_use_import_and_import_image(server, member, data_file, origin, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path, data = data_file
    session = api(server, member)
    conn = openstack.connect(auth_type="admin_token", auth={"token": member, "endpoint": f"{server.url}/v2"},
                             load_yaml_config=False, load_envvars=False)
    try:
        image = conn.image.create_image(name=unique("sdk-import"), filename=path, disk_format="raw",
                                        container_format="bare", use_import=True)
        # the SDK returns once the import is started (its wait covers only the task API)
        wait_image(session, image.id, in_stores("local"))
        assert data_of(session, image.id) == data == read(path)
        queued = conn.image.create_image(name=unique("sdk-web"), disk_format="raw", container_format="bare",
                                         allow_duplicates=True)
        conn.image.import_image(queued, method="web-download", uri=origin.url())
        found = wait_image(session, queued.id, in_stores("local"))
        assert found["os_hash_value"] == sha512(data) and data_of(session, queued.id) == data
    finally:
        conn.close()
