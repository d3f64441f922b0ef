"""A full disk (small tmpfs, or RLIMIT_FSIZE) and a store that is missing, replaced by a file, or
mounted read-only: answers name the store and never a path, images go back to `queued`,
nothing is left behind, other stores are unaffected, and /healthcheck tells."""
from __future__ import annotations

import os
import resource
import subprocess
import time

import pytest
import requests

from tests.e2e import streams
from tests.faults.helpers import (MIB, RawUpload, assert_no_path, create, download_sha512, files_of, put,
                                  raw_request, request_head, scrub, show, usage, wait_status)

pytestmark = pytest.mark.e2e

SMALL = 8 * MIB


def _tree_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_blocks * 512
    return total


@pytest.fixture(scope="module", params=["tmpfs", "fsize"])
def full_server(request, start_module_server):
    """A server whose `local` store can hold only 8 MiB: a tmpfs of that size as the store root or,
    if mounting is not permitted, a file-size limit on the server process."""
    srv = start_module_server(f"full-{request.param}", start=False, IMAGEDATA_LOG_LEVEL="WARNING")
    local = os.path.join(srv.root, "stores", "local")
    mounted = False
    if request.param == "tmpfs":
        os.makedirs(local)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", local],
                                 capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("mount not permitted here; the fsize variant covers a full store")
    else:
        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (SMALL, SMALL))
        srv.preexec_fn = limit
    try:
        srv.start()
        yield srv, request.param
    finally:
        srv.stop()
        if mounted and subprocess.run(["umount", local], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", local], capture_output=True)


def _assert_413_names_store(srv, response):
    assert response is not None and response.status == 413, response
    assert "store 'local'" in response.text and ("storage" in response.text.lower() or "full" in response.text)
    assert_no_path(srv, response.text)


@pytest.mark.parametrize("declared", [["Content-Length"], ["x-openstack-image-size", "Content-Length"],
                                      ["x-openstack-image-size", "chunked"]],
                         ids=["content-length", "image-size+content-length", "image-size+chunked"])
def test_declared_size_over_free_space_is_413_before_the_body(full_server, declared):
    srv, _kind = full_server
    token = srv.token("p1")
    image_id = create(srv, token)
    size = 16 * MIB
    headers = [("Content-Type", "application/octet-stream")]
    for name in declared:
        headers.append(("Transfer-Encoding", "chunked") if name == "chunked" else (name, str(size)))
    started = time.monotonic()
    # Only the headers are sent: the answer must come without the body (fallocate, not writing).
    response = raw_request(srv, request_head("PUT", f"/v2/images/{image_id}/file", token, headers), timeout=5)
    assert time.monotonic() - started < 5
    _assert_413_names_store(srv, response)
    _after_full(srv, token, image_id)


def test_chunked_upload_fills_the_store_413(full_server):
    srv, _kind = full_server
    token = srv.token("p1")
    image_id = create(srv, token)
    upload = RawUpload(srv, token, image_id, chunked=True)
    sent = 0
    for part in streams.chunks(11, 16 * MIB, 256 * 1024):
        if upload.done.is_set() or not upload.send(part):
            break
        sent += len(part)
    upload.end()
    response = upload.wait(20)
    upload.close()
    _assert_413_names_store(srv, response)
    _after_full(srv, token, image_id)


def _after_full(srv, token, image_id):
    assert wait_status(srv, token, image_id, ("queued",), timeout=10) == "queued"
    deadline = time.monotonic() + 5
    while files_of(srv, image_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert files_of(srv, image_id) == [], "partial left behind"
    assert _tree_bytes(os.path.join(srv.root, "stores", "local")) == 0, "space not given back"
    assert usage(srv, token)["image_count_uploading"] == 0
    # Space is free again: a small upload to the same store works.
    response = put(srv, token, image_id, streams.chunks(12, 2 * MIB))
    assert response.status_code == 204, response.text
    assert download_sha512(srv, token, image_id)[1] == streams.digest(12, 2 * MIB)
    # Another store is unaffected (with RLIMIT_FSIZE every file is limited, so keep it under 8 MiB).
    other = create(srv, token)
    response = put(srv, token, other, streams.chunks(13, 3 * MIB), **{"X-Image-Meta-Store": "slow"})
    assert response.status_code == 204, response.text
    assert show(srv, token, other)[1]["stores"] == "slow"
    assert scrub(srv)[:2] == (0, 0)
    # Leave the small store empty for the next case.
    assert requests.delete(f"{srv.url}/v2/images/{image_id}", headers={"X-Auth-Token": token}).status_code == 204


# -- store unusable -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server(start_module_server):
    return start_module_server("unusable", IMAGEDATA_LOG_LEVEL="WARNING")


@pytest.fixture
def store_server(shared_server, mounts):
    return shared_server, mounts


def _break(kind, root, mounts):
    """Make the store root unusable; returns a function that repairs it."""
    aside = root + ".aside"
    if kind == "missing":
        os.rename(root, aside)
        return lambda: os.rename(aside, root)
    if kind == "regular-file":
        os.rename(root, aside)
        with open(root, "w") as f:
            f.write("not a directory")

        def repair():
            os.unlink(root)
            os.rename(aside, root)
        return repair
    if kind == "read-only-mount":
        if not mounts("--bind", root, target=root):
            pytest.skip("bind mount not permitted")
        assert os.system(f"mount -o remount,ro,bind '{root}'") == 0

        def repair():
            os.system(f"umount '{root}'")
            mounts.mounted.remove(root)
        return repair
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "regular-file", "read-only-mount"])
def test_unusable_store(store_server, kind):
    srv, mounts = store_server
    token = srv.token("p1")
    root = os.path.join(srv.root, "stores", "slow")
    kept = create(srv, token)
    assert put(srv, token, kept, streams.chunks(21, MIB), **{"X-Image-Meta-Store": "slow"}).status_code == 204
    repair = _break(kind, root, mounts)
    try:
        image_id = create(srv, token)
        before = set(files_of(srv))
        for framing in ("content-length", "chunked"):
            body = b"x" * 5000 if framing == "content-length" else iter([b"x" * 5000])
            response = put(srv, token, image_id, body, **{"X-Image-Meta-Store": "slow"})
            assert response.status_code == 503, (framing, response.status_code, response.text)
            assert "slow" in response.text
            assert_no_path(srv, response.text)
            assert show(srv, token, image_id)[1]["status"] == "queued"
        assert set(files_of(srv)) == before
        health = requests.get(f"{srv.url}/healthcheck", timeout=5)
        assert health.status_code == 503 and "store slow" in health.text, health.text
        assert_no_path(srv, health.text)
        download = requests.get(f"{srv.url}/v2/images/{kept}/file", headers={"X-Auth-Token": token}, timeout=10)
        if kind == "read-only-mount":
            # The bytes are still there and readable: serving them intact is right.
            assert download.status_code == 200 and len(download.content) == MIB
        else:
            assert download.status_code == 503, download.status_code
            assert_no_path(srv, download.text)
        # The other store is unaffected.
        other = create(srv, token)
        assert put(srv, token, other, b"fine").status_code == 204
    finally:
        repair()
    assert requests.get(f"{srv.url}/healthcheck", timeout=5).status_code == 200
    response = put(srv, token, image_id, b"retry", **{"X-Image-Meta-Store": "slow"})
    assert response.status_code == 204, response.text
    assert download_sha512(srv, token, kept)[1] == streams.digest(21, MIB)
    assert scrub(srv)[:2] == (0, 0)
