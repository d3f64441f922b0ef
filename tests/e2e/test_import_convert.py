"""Conversion on import (IMAGEDATA_IMPORT_CONVERT_TO), through a real gunicorn and qemu-img.

A qcow2 imported with glance-direct is stored as raw: its bytes are exactly what qemu-img
makes of it, its record says raw with the converted size, digests and virtual size. A qcow2
that passes the disk-format checks but that qemu-img cannot read ends the task with
qemu-img's reason and the image back in queued. The work area is empty after either.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import time

import pytest
import requests

from tests.e2e.server import Server
from tests.helpers import skip_or_fail

pytestmark = pytest.mark.e2e
VIRTUAL = 16 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("convert"), IMAGEDATA_IMPORT_CONVERT_TO="raw")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory):
    """A 16 MiB qcow2 with a pattern in its first MiB, and qemu-img's own raw conversion of it."""
    if not (shutil.which("qemu-img") and shutil.which("qemu-io")):
        skip_or_fail("qemu-img and qemu-io (Debian's qemu-utils) are needed")
    folder = tmp_path_factory.mktemp("qcow2")
    path, raw = str(folder / "disk.qcow2"), str(folder / "disk.raw")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, str(VIRTUAL)], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 1M", path], check=True, capture_output=True)
    subprocess.run(["qemu-img", "convert", "-O", "raw", path, raw], check=True)
    return path, raw


def staged_import(srv: Server, data: bytes) -> str:
    token = {"X-Auth-Token": srv.token("p1")}
    image = requests.post(f"{srv.url}/v2/images", json={"disk_format": "qcow2", "container_format": "bare"},
                          headers=token).json()
    stage = requests.put(f"{srv.url}/v2/images/{image['id']}/stage", data=data,
                         headers={**token, "Content-Type": "application/octet-stream"})
    assert stage.status_code == 204, stage.text
    started = requests.post(f"{srv.url}/v2/images/{image['id']}/import",
                            json={"method": {"name": "glance-direct"}}, headers=token)
    assert started.status_code == 202, started.text
    return image["id"]


def settled(srv: Server, image_id: str, timeout: float = 60.0) -> tuple[dict, dict]:
    """The image and its import task once the task has ended."""
    token = {"X-Auth-Token": srv.token("p1")}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (task,) = requests.get(f"{srv.url}/v2/images/{image_id}/tasks", headers=token).json()["tasks"]
        if task["status"] in ("success", "failure"):
            return requests.get(f"{srv.url}/v2/images/{image_id}", headers=token).json(), task
        time.sleep(0.2)
    raise AssertionError(f"the import of {image_id} did not end: {task}")


def work_area(srv: Server) -> list[str]:
    folder = os.path.join(srv.root, "data", "convert")
    return os.listdir(folder) if os.path.isdir(folder) else []


def test_an_imported_qcow2_is_stored_as_qemu_img_converts_it(server, qcow2):
    path, raw = qcow2
    image_id = staged_import(server, open(path, "rb").read())
    image, task = settled(server, image_id)
    converted = open(raw, "rb").read()
    assert task["status"] == "success", task
    assert (image["status"], image["disk_format"], image["size"], image["virtual_size"]) == (
        "active", "raw", VIRTUAL, VIRTUAL)
    assert image["checksum"] == hashlib.md5(converted).hexdigest()
    assert image["os_hash_value"] == hashlib.sha512(converted).hexdigest()
    got = requests.get(f"{server.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": server.token("p1")})
    assert got.content == converted
    assert work_area(server) == []


def test_an_image_qemu_img_cannot_read_fails_the_task_and_is_queued_again(server, qcow2, tmp_path):
    path, _ = qcow2
    data = bytearray(open(path, "rb").read())
    data[36:40] = struct.pack(">I", 0x10000000)  # an L1 table far larger than the file: the inspector passes it
    image_id = staged_import(server, bytes(data))
    image, task = settled(server, image_id)
    assert task["status"] == "failure"
    assert "Converting the image from qcow2 to raw failed" in task["message"]
    assert "L1 table too large" in task["message"]
    assert (image["status"], image["disk_format"], image["size"], image["checksum"]) == ("queued", "qcow2", None, None)
    assert image["os_glance_failed_import"] == "local"
    assert work_area(server) == []
    assert [path for path in server.store_files() if image_id in path] == []  # staged data removed too
