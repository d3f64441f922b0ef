"""python-glanceclient 4.13.0 (`glance`), unchanged, against a real gunicorn server.

Every command runs with a fresh HOME (no cached schema), both unpinned (GET /versions first) and pinned
with ``--os-image-api-version 2`` where the command is version-sensitive. glanceclient always sends
``Accept: */*`` and percent-encodes the token; errors reach it as text/plain.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.clients.helpers import (
    BIG_SIZE, CAP, HAVE_SCRIPT, api, api_create, api_show, api_upload, assert_clean_error,
    corrupt, property_table, read, run_client, sha512, store_file, table_rows, unique,
)
from tests.helpers import skip_or_fail

pytestmark = pytest.mark.e2e

GLANCE = os.path.join(os.path.dirname(sys.executable), "glance")
VERSIONS = {"unpinned": (), "pinned-v2": ("--os-image-api-version", "2")}


@pytest.fixture(scope="module")
def glance(server, member, workdir):
    """glance(*args, token=member, version="unpinned", tty=False, check=True) -> Result."""

    def run(*args, token=None, version="unpinned", tty=False, check=True):
        argv = [GLANCE, *VERSIONS[version], "--os-image-url", server.url,
                "--os-auth-token", token or member, *args]
        return run_client(argv, workdir=workdir / "glance", tty=tty, check=check)

    return run


@pytest.fixture(scope="module")
def session(server, member):
    return api(server, member)


def create_args(name, *extra):
    return ["image-create", "--name", name, "--disk-format", "raw", "--container-format", "bare", *extra]


def assert_active(props, data, store=None):
    assert props["status"] == "active", props
    assert props["size"] == str(len(data))
    assert props["os_hash_algo"] == "sha512"
    assert props["os_hash_value"] == sha512(data)
    if store:
        assert props["stores"] == store


def download(glance, image_id, path, *, version="unpinned", progress=False, token=None, check=True):
    args = ["image-download", "--file", str(path), image_id] + (["--progress"] if progress else [])
    return glance(*args, version=version, tty=progress and HAVE_SCRIPT, token=token, check=check)


@pytest.mark.parametrize("version", VERSIONS)
def test_create_with_file_show_download_delete(glance, session, data_file, workdir, version):
    path, data = data_file
    name = unique("gc-file")
    props = property_table(glance(*create_args(name, "--file", path), version=version).stdout)
    image_id = props["id"]
    assert props["name"] == name
    assert_active(props, data, store="local")

    shown = property_table(glance("image-show", image_id, version=version).stdout)
    assert_active(shown, data, store="local")
    assert shown["checksum"] == props["checksum"] and len(shown["checksum"]) == 32

    out = workdir / f"{image_id}.out"
    download(glance, image_id, out, version=version)
    assert read(out) == data

    assert glance("image-delete", image_id, version=version).output.strip() == ""
    assert api_show(session, image_id).status_code == 404
    # the 404, through the client: a message, not a traceback
    assert_clean_error(glance("image-show", image_id, version=version, check=False), "HTTP 404 Not Found", image_id)


@pytest.mark.skipif(not HAVE_SCRIPT, reason="needs script(1) for a TTY")
def test_progress_bars_on_upload_and_download(glance, data_file, workdir):
    path, data = data_file
    created = glance(*create_args(unique("gc-progress"), "--file", path, "--progress"), tty=True)
    assert "100%" in created.stdout, str(created)
    props = property_table(created.stdout)
    assert_active(props, data)

    out = workdir / "progress.out"
    downloaded = download(glance, props["id"], out, progress=True)
    assert "100%" in downloaded.stdout, str(downloaded)
    assert read(out) == data


def test_create_with_file_into_named_store(glance, server, data_file, workdir):
    path, data = data_file
    props = property_table(glance(*create_args(unique("gc-store"), "--file", path, "--store", "slow"),
                                  version="pinned-v2").stdout)
    assert_active(props, data, store="slow")
    assert f"{os.sep}slow{os.sep}" in store_file(server, props["id"])
    out = workdir / f"{props['id']}.out"
    download(glance, props["id"], out, version="pinned-v2")
    assert read(out) == data


@pytest.mark.parametrize("store", [None, "slow"], ids=["default-store", "named-store"])
def test_create_without_data_then_upload(glance, server, session, data_file, workdir, store):
    """stdin closed: a queued image, no PUT. Then image-upload (chunked, x-openstack-image-size)."""
    path, data = data_file
    props = property_table(glance(*create_args(unique("gc-queued"))).stdout)
    image_id = props["id"]
    assert (props["status"], props["size"], props["checksum"]) == ("queued", "None", "None")
    assert [p for p in server.store_files() if image_id in p] == []

    upload = ["image-upload", "--file", path, image_id] + (["--store", store] if store else [])
    assert glance(*upload, version="pinned-v2").output.strip() == ""

    image = api_show(session, image_id).json()
    assert (image["status"], image["size"], image["os_hash_value"]) == ("active", len(data), sha512(data))
    assert image["stores"] == (store or "local")
    out = workdir / f"{image_id}.out"
    download(glance, image_id, out)
    assert read(out) == data


def test_list_follows_next_across_pages(glance, server):
    """More images than one page: --page-size makes the client follow `next` (keeping limit=N in it)."""
    project = unique("list")
    token = server.token(project, "member,reader")
    session = api(server, token)
    ids = {api_create(session, f"gc-list-{i}") for i in range(5)}

    listed = table_rows(glance("image-list", "--page-size", "2", token=token).stdout)
    assert listed[0] == ["ID", "Name"]
    assert {row[0] for row in listed[1:]} == ids
    assert [row[1] for row in listed[1:]] == [f"gc-list-{i}" for i in range(5)]  # sort_key=name

    # --limit with --page-size: the client rewrites limit=2 in `next` to the remainder and stops at 3
    limited = table_rows(glance("image-list", "--page-size", "2", "--limit", "3", token=token,
                                version="pinned-v2").stdout)
    assert [row[1] for row in limited[1:]] == ["gc-list-0", "gc-list-1", "gc-list-2"]


def test_update_properties_name_and_tags(glance, session, data_file):
    path, data = data_file
    image_id = api_create(session, unique("gc-update"))
    api_upload(session, image_id, data)

    updated = property_table(glance("image-update", "--property", "k=v", "--property", "k2=v2",
                                    "--name", "renamed", image_id).stdout)
    assert (updated["name"], updated["k"], updated["k2"], updated["id"]) == ("renamed", "v", "v2", image_id)

    # k exists now: glanceclient sends op "replace" for it
    again = property_table(glance("image-update", "--property", "k=v3", image_id, version="pinned-v2").stdout)
    assert (again["k"], again["k2"], again["name"]) == ("v3", "v2", "renamed")

    tagged = table_rows(glance("image-tag-update", image_id, "tagA").stdout)
    assert tagged[1] == [image_id, "['tagA']"]
    image = api_show(session, image_id).json()
    assert (image["tags"], image["name"], image["k"], image["k2"]) == (["tagA"], "renamed", "v3", "v2")


def test_stores_info(glance):
    props = property_table(glance("stores-info").stdout)
    stores = json.loads(props["stores"])
    assert [s["id"] for s in stores] == ["local", "slow"]
    assert stores[0].get("default") in ("true", True)
    assert "default" not in stores[1]


def test_deactivate_refuses_download_until_reactivated(glance, session, admin, data_file, workdir):
    path, data = data_file
    image_id = api_create(session, unique("gc-deact"))
    api_upload(session, image_id, data)

    assert glance("image-deactivate", image_id).output.strip() == ""
    assert api_show(session, image_id).json()["status"] == "deactivated"

    refused_out = workdir / f"{image_id}.refused"
    refused = download(glance, image_id, refused_out, check=False)
    assert_clean_error(refused, f"Unable to download image '{image_id}'", "403 Forbidden", "deactivated")
    assert not refused_out.exists()

    admin_out = workdir / f"{image_id}.admin"  # an admin still may (as in Glance)
    download(glance, image_id, admin_out, token=admin)
    assert read(admin_out) == data

    assert glance("image-reactivate", image_id, version="pinned-v2").output.strip() == ""
    assert api_show(session, image_id).json()["status"] == "active"
    out = workdir / f"{image_id}.out"
    download(glance, image_id, out)
    assert read(out) == data


def test_corrupted_store_file_fails_the_download(glance, server, session, data_file, workdir):
    path, data = data_file
    image_id = api_create(session, unique("gc-corrupt"))
    api_upload(session, image_id, data)
    corrupt(store_file(server, image_id))

    out = workdir / f"{image_id}.out"
    result = download(glance, image_id, out, check=False)
    assert_clean_error(result, "Corrupt image download", f"expected {sha512(data)}")


# ------------------------------------------------------------------ errors reach the user as messages

def test_409_upload_to_active_image(glance, session, data_file):
    path, data = data_file
    image_id = api_create(session, unique("gc-409"))
    api_upload(session, image_id, data)
    result = glance("image-upload", "--file", path, image_id, check=False)
    assert_clean_error(result, "HTTP 409 Conflict", f"Image {image_id} already has data (status active); image "
                       "data is never replaced: create a new image to upload other data.")
    assert api_show(session, image_id).json()["os_hash_value"] == sha512(data)


def test_a_qcow2_declared_raw_shows_what_was_found(glance, workdir):
    """Stored as raw, as declared; `glance image-create` shows the format the data really is."""
    if shutil.which("qemu-img") is None:
        skip_or_fail("qemu-img is not installed (Debian package qemu-utils; .ci/run installs it)")
    path = workdir / "real.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "8M"], check=True, timeout=60)
    props = property_table(glance(*create_args(unique("gc-detected"), "--file", str(path))).stdout)
    assert (props["status"], props["disk_format"], props["imagedata_detected_format"]) == ("active", "raw", "qcow2")


def test_413_over_the_size_cap(glance, session, big_file):
    path, _ = big_file
    assert BIG_SIZE > CAP
    name = unique("gc-413")
    result = glance(*create_args(name, "--file", path), check=False)
    assert_clean_error(result, "HTTP 413 Request Entity Too Large", "too large")
    # glanceclient leaves the queued image behind (as with Glance); it is still usable
    queued = [image for image in session.get(f"{session.base}/v2/images?name={name}").json()["images"]]
    assert [(image["status"], image["size"]) for image in queued] == [("queued", None)]

    upload = glance("image-upload", "--file", path, queued[0]["id"], check=False)
    assert_clean_error(upload, "HTTP 413 Request Entity Too Large")
    assert api_show(session, queued[0]["id"]).json()["status"] == "queued"


def test_401_unknown_token(glance):
    result = glance("image-list", token="not-a-token", check=False)
    assert_clean_error(result, "Invalid OpenStack Identity credentials")
