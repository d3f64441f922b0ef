"""Flaky links, real tools: the README's resuming curl loop, and resumed or parallel downloads
with curl, wget, aria2c and qemu's HTTP block driver, on both store types, through a loopback
proxy that resets connections."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time

import pytest
import requests

from tests.e2e.proxy import Forwarder
from tests.e2e.server import REPO
from tests.helpers import skip_or_fail

MIB = 1 << 20
SIZE = int(os.environ.get("RESUME_E2E_SIZE", 96 * MIB))
CUT = int(os.environ.get("RESUME_E2E_CUT", 32 * MIB))
pytestmark = pytest.mark.e2e


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        skip_or_fail(f"{tool} is not installed (Debian package {package}; .ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume-src") / "disk.img"
    with open(path, "wb") as f:
        for _ in range(SIZE // MIB):
            f.write(os.urandom(MIB))
    data = path.read_bytes()
    return path, hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()


@pytest.fixture(scope="module", params=["file", "s3"])
def srv(request, start_module_server):
    """A server whose default store is a folder, or a bucket on a real SeaweedFS."""
    env = dict(IMAGEDATA_UPLOAD_LEASE_SECONDS=12, IMAGEDATA_UPLOAD_IDLE_TIMEOUT=10)
    if request.param == "s3":
        seaweedfs = request.getfixturevalue("seaweedfs")
        bucket = request.getfixturevalue("resume_bucket")
        env.update(IMAGEDATA_STORES=f"s3={seaweedfs.store_url(bucket, 'images')}", **seaweedfs.env())
    server = start_module_server(f"resume-{request.param}", **env)
    yield server
    server.stop()  # the other store's server takes its place


@pytest.fixture(scope="module")
def resume_bucket(seaweedfs):
    return seaweedfs.make_bucket("resume-e2e")


@pytest.fixture(scope="module")
def token(srv):
    return srv.token("p1")


def create(srv, token, disk_format="raw"):
    body = {"name": "resume", "disk_format": disk_format, "container_format": "bare"}
    response = requests.post(f"{srv.url}/v2/images", json=body, headers={"X-Auth-Token": token}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def readme_loop() -> str:
    """The resuming upload loop exactly as README.rst shows it."""
    with open(os.path.join(REPO, "README.rst")) as f:
        text = f.read()
    block = text.split("    # resume-loop\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def upload_with_the_loop(srv, token, image_id, path, proxy):
    env = {**os.environ, "ID": image_id, "TOKEN": token, "FILE": str(path),
           "IMAGEDATA_URL": f"http://127.0.0.1:{proxy.port}"}
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", readme_loop()], env=env, capture_output=True, text=True, timeout=600)
    return done, time.monotonic() - started


def test_the_readme_loop_uploads_through_a_resetting_proxy(srv, token, source):
    need("curl", "curl")
    path, md5, sha512 = source
    image_id = create(srv, token)
    proxy = Forwarder(srv.port, reset_every=CUT)
    try:
        done, seconds = upload_with_the_loop(srv, token, image_id, path, proxy)
    finally:
        proxy.stop()
    assert done.returncode == 0 and "uploaded" in done.stdout, (done.stdout, done.stderr)
    image = requests.get(f"{srv.url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=10).json()
    assert (image["status"], image["size"], image["checksum"], image["os_hash_value"]) == (
        "active", SIZE, md5, sha512)
    assert proxy.resets >= SIZE // CUT - 1
    assert proxy.client_bytes < 1.2 * SIZE, (proxy.client_bytes, SIZE)
    plain = create(srv, token)
    started = time.monotonic()
    with open(path, "rb") as body:
        response = requests.put(f"{srv.url}/v2/images/{plain}/file", data=body, timeout=600,
                                headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"})
    assert response.status_code == 204
    print(f"\nresume loop ({srv.env.get('IMAGEDATA_STORES', 'file')[:2]}): {SIZE / MIB:.0f} MiB cut every "
          f"{CUT / MIB:.0f} MiB: {proxy.resets} resets, {proxy.client_bytes / SIZE:.3f}x the bytes, "
          f"{seconds:.1f} s; uninterrupted {time.monotonic() - started:.1f} s")


@pytest.fixture(scope="module")
def stored(srv, token, source):
    """The source file stored as an active image."""
    path, _md5, _sha = source
    image_id = create(srv, token)
    with open(path, "rb") as body:
        response = requests.put(f"{srv.url}/v2/images/{image_id}/file", data=body, timeout=120,
                                headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"})
    assert response.status_code == 204
    return image_id


def same_file(a, b) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def test_curl_continues_a_cut_download(srv, token, stored, source, tmp_path):
    need("curl", "curl")
    proxy = Forwarder(srv.port, reset_every=CUT, downstream=True)
    out = tmp_path / "copy.img"
    url = f"http://127.0.0.1:{proxy.port}/v2/images/{stored}/file"
    try:
        for _ in range(SIZE // CUT + 5):
            done = subprocess.run(["curl", "-s", "-f", "-C", "-", "-o", str(out), "-H", f"X-Auth-Token: {token}",
                                   url], capture_output=True, timeout=120)
            if done.returncode == 0:
                break
    finally:
        proxy.stop()
    assert done.returncode == 0 and proxy.resets >= 2
    assert same_file(out, source[0])


def test_wget_continues_a_cut_download(srv, token, stored, source, tmp_path):
    need("wget", "wget")
    proxy = Forwarder(srv.port, reset_every=CUT, downstream=True)
    out = tmp_path / "copy.img"
    try:
        done = subprocess.run(["wget", "-q", "-c", "--tries=30", "--waitretry=0", "--retry-connrefused",
                               "-O", str(out), f"--header=X-Auth-Token: {token}",
                               f"http://127.0.0.1:{proxy.port}/v2/images/{stored}/file"],
                              capture_output=True, text=True, timeout=180)
    finally:
        proxy.stop()
    assert done.returncode == 0, done.stderr
    assert proxy.resets >= 2 and same_file(out, source[0])


def test_aria2c_downloads_over_four_ranged_connections(srv, token, stored, source, tmp_path):
    need("aria2c", "aria2")
    done = subprocess.run(["aria2c", "-q", "-x", "4", "-s", "4", "-k", "1M", "--min-split-size=1M",
                           "--allow-overwrite=true", "--auto-file-renaming=false", f"--header=X-Auth-Token: {token}",
                           "-d", str(tmp_path), "-o", "copy.img", f"{srv.url}/v2/images/{stored}/file"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert same_file(tmp_path / "copy.img", source[0])


@pytest.fixture(scope="module")
def noauth(start_module_server, seaweedfs, resume_bucket):
    """qemu's curl driver sends no token: a noauth server (loopback only) with both stores."""
    server = start_module_server("resume-noauth", start=False, IMAGEDATA_AUTH="noauth", **seaweedfs.env())
    server.env["IMAGEDATA_STORES"] = (f"local=file://{server.root}/stores/local,"
                                      f"s3={seaweedfs.store_url(resume_bucket, 'qemu')}")
    return server.start()


@pytest.mark.parametrize("store", ["local", "s3"])
def test_qemu_img_converts_straight_from_the_image_url(noauth, source, tmp_path, store):
    qemu_img = need("qemu-img", "qemu-utils")
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", str(source[0]), str(qcow2)], check=True)
    image_id = create(noauth, "", disk_format="qcow2")
    with open(qcow2, "rb") as body:
        response = requests.put(f"{noauth.url}/v2/images/{image_id}/file", data=body, timeout=120,
                                headers={"Content-Type": "application/octet-stream", "X-Image-Meta-Store": store})
    assert response.status_code == 204, response.text
    out = tmp_path / "out.raw"
    # One request at a time (-m 1): with its default eight, qemu 7.2's curl driver (Debian 12)
    # stalls in about one conversion of ten: every range is answered in full (access log), the
    # server closes the idle connections, and qemu waits in poll() with all of them in
    # CLOSE-WAIT, never sending the next request.
    done = subprocess.run([qemu_img, "convert", "-m", "1", "-f", "qcow2", "-O", "raw",
                           f"{noauth.url}/v2/images/{image_id}/file", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert same_file(out, source[0])
