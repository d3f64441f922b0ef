"""Downloads from a filesystem store leave the bytes to the kernel (sendfile), whole or ranged.

gunicorn turns sendfile *off* when its ``sendfile`` setting is given any value, even True; a
download then crawls through Python in blksize reads. The worker's read-syscall counter
(/proc/PID/io ``syscr``: one per read, pread or sendfile call) tells the two apart: a 64 MiB
image sent with 1 MiB reads costs 64 of them, with sendfile one.
"""
from __future__ import annotations

import os

import pytest
import requests
from gunicorn.config import Config

from tests.e2e.server import REPO

pytestmark = pytest.mark.e2e

MIB = 1 << 20
SIZE = 64 * MIB


def test_the_production_config_keeps_sendfile_on():
    cfg = Config()
    namespace: dict = {"__file__": os.path.join(REPO, "gunicorn.conf.py")}
    with open(os.path.join(REPO, "gunicorn.conf.py")) as f:
        exec(compile(f.read(), "gunicorn.conf.py", "exec"), namespace)  # noqa: S102 - our own config file
    for name, value in namespace.items():
        if name in cfg.settings:
            cfg.set(name, value)
    assert cfg.sendfile is True


def _read_syscalls(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/io") as f:
            total += int(next(line for line in f if line.startswith("syscr:")).split()[1])
    return total


@pytest.fixture(scope="module")
def token(server):
    return server.token("p1", "member,reader")


@pytest.fixture(scope="module")
def image(server, token):
    data = os.urandom(MIB) * (SIZE // MIB)
    headers = {"X-Auth-Token": token}
    image_id = requests.post(f"{server.url}/v2/images", json={"disk_format": "raw", "container_format": "bare"},
                             headers=headers, timeout=10).json()["id"]
    response = requests.put(f"{server.url}/v2/images/{image_id}/file", data=data, timeout=60,
                            headers={**headers, "Content-Type": "application/octet-stream"})
    assert response.status_code == 204, response.text
    return image_id, data


@pytest.mark.parametrize("ranged", [False, True], ids=["whole", "range"])
def test_downloads_are_sent_with_sendfile(server, token, image, ranged):
    image_id, data = image
    headers = {"X-Auth-Token": token}
    want = data
    if ranged:
        headers["Range"] = f"bytes={MIB}-{SIZE - 2}"
        want = data[MIB:SIZE - 1]
    pids = server.worker_pids()
    before = _read_syscalls(pids)
    response = requests.get(f"{server.url}/v2/images/{image_id}/file", headers=headers, timeout=60)
    used = _read_syscalls(pids) - before
    assert response.status_code == (206 if ranged else 200)
    assert response.content == want
    # A handful of database reads plus one sendfile; copying through Python would need 64.
    # This may be the worker's first request: it must not then load its metrics (~50 reads).
    assert used < 32, f"{used} read system calls for a {len(want) // MIB} MiB download"
