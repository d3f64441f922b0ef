"""Access control and quotas on the real service: gunicorn, 2 workers, real sockets, real threads.

- strict image_size_total: two parallel uploads of 60% of the quota each, both framings, repeated:
  exactly one 204 and one 413, never both (the races run on SQLite and on PostgreSQL);
- deleting an image mid-upload frees its reservation once and keeps nothing;
- a token is checked once per request: it may expire during a long upload;
- identity headers are ignored in token mode; trusted-headers and noauth servers.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import requests

from imagedata.service.tokens import TOKEN_CACHE_SECONDS

from tests.e2e import streams
from tests.e2e.server import REPO

MIB = streams.MIB
OCTET = "application/octet-stream"
JSON = {"Accept": "application/json"}
pytestmark = pytest.mark.e2e


def hdrs(token, **extra):
    return {"X-Auth-Token": token, **JSON, **extra}


def create(server, headers, **fields):
    body = {"name": "acl", "disk_format": "raw", "container_format": "bare", **fields}
    response = requests.post(f"{server.url}/v2/images", json=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def show(server, headers, image_id):
    return requests.get(f"{server.url}/v2/images/{image_id}", headers=headers, timeout=10)


def put(server, headers, image_id, data, timeout=60, **extra):
    return requests.put(f"{server.url}/v2/images/{image_id}/file", data=data,
                        headers={**headers, "Content-Type": OCTET, **extra}, timeout=timeout)


def usage(server, headers):
    response = requests.get(f"{server.url}/v2/info/usage", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {name: value["usage"] for name, value in response.json()["usage"].items()}


def files_of(server, image_id):
    return [f for f in server.store_files() if image_id in os.path.basename(f)]


class SlowBody:
    """``size`` bytes in ``pieces`` pieces, sleeping ``pause`` before each; with ``sized`` a file-like
    (so requests sends Content-Length), else a generator (chunked)."""

    def __init__(self, seed, size, pieces=8, pause=0.05, start=None):
        self.seed, self.size, self.pieces, self.pause, self.start = seed, size, pieces, pause, start

    def generator(self):
        if self.start is not None:
            self.start.wait(10)
        piece = self.size // self.pieces
        for part in streams.chunks(self.seed, self.size, piece):
            time.sleep(self.pause)
            yield part

    def sized(self):
        return streams.SizedBody(self.generator(), self.size)


def status_of(call):
    """The status code, or the connection error when the server answered early and hung up."""
    try:
        response = call()
    except requests.ConnectionError as exc:
        return ("connection-error", str(exc)), None
    return response.status_code, response


# --------------------------------------------------------------------------- the quota race


@pytest.fixture(scope="module")
def racer(db_server):
    """A project with a 10 MiB image_size_total, and its token (on each database backend)."""
    db_server.cli("quota", "set", "--project", "racer", "--image-size-total", str(10 * MIB))
    return hdrs(db_server.token("racer"))


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("round_", range(3))
def test_two_parallel_uploads_of_60_percent_one_wins(db_server, racer, framing, round_):
    size = 6 * MIB
    images = [create(db_server, racer), create(db_server, racer)]
    start = threading.Barrier(2)
    results = {}

    def run(index):
        body = SlowBody(index + 20 * round_, size, pieces=12, pause=0.04)
        data = body.sized() if framing == "content-length" else body.generator()
        start.wait(10)
        began = time.monotonic()
        code, response = status_of(lambda: put(db_server, racer, images[index], data))
        results[index] = (code, response, began, time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(results[i][0] for i in range(2))
    assert codes == [204, 413], results
    winner = next(i for i in range(2) if results[i][0] == 204)
    loser = 1 - winner
    # The two requests really overlapped: the loser was refused while the winner was still streaming.
    assert results[loser][3] < results[winner][3]
    assert results[loser][1].json()["code"] == "413 Request Entity Too Large"
    assert "image_size_total" in results[loser][1].json()["message"]
    won, lost = show(db_server, racer, images[winner]).json(), show(db_server, racer, images[loser]).json()
    assert (won["status"], won["size"]) == ("active", size)
    assert won["os_hash_value"] == streams.digest(winner + 20 * round_, size)
    assert (lost["status"], lost["size"], lost["checksum"]) == ("queued", None, None)
    assert files_of(db_server, images[loser]) == []
    assert len(files_of(db_server, images[winner])) == 1
    assert usage(db_server, racer) == {"image_size_total": size, "image_count_total": 2, "image_count_uploading": 0}
    # Clean up for the next round: everything is freed.
    for image_id in images:
        assert requests.delete(f"{db_server.url}/v2/images/{image_id}", headers=racer, timeout=10).status_code == 204
    assert usage(db_server, racer) == {"image_size_total": 0, "image_count_total": 0, "image_count_uploading": 0}


def test_many_parallel_small_uploads_never_exceed_the_quota(db_server):
    """Six 3 MiB uploads (mixed framings) against a 10 MiB quota: exactly three fit."""
    db_server.cli("quota", "set", "--project", "crowd", "--image-size-total", str(10 * MIB))
    crowd = hdrs(db_server.token("crowd"))
    images = [create(db_server, crowd) for _ in range(6)]
    start = threading.Barrier(6)
    codes = {}

    def run(index):
        body = SlowBody(100 + index, 3 * MIB, pieces=6, pause=0.03)
        data = body.sized() if index % 2 else body.generator()
        start.wait(10)
        codes[index] = status_of(lambda: put(db_server, crowd, images[index], data))[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes.values()).count(204) <= 3, codes
    assert set(codes.values()) <= {204, 413}, codes
    stored = usage(db_server, crowd)
    assert stored["image_size_total"] == 3 * MIB * sorted(codes.values()).count(204) <= 10 * MIB
    assert stored["image_count_uploading"] == 0
    for index, code in codes.items():
        state = show(db_server, crowd, images[index]).json()["status"]
        assert state == ("active" if code == 204 else "queued")
        assert len(files_of(db_server, images[index])) == (1 if code == 204 else 0)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_delete_during_upload_frees_once_keeps_nothing(db_server, framing):
    project = f"deleter-{framing}"
    db_server.cli("quota", "set", "--project", project, "--image-size-total", str(8 * MIB))
    owner = hdrs(db_server.token(project))
    image_id = create(db_server, owner)
    body = SlowBody(7, 6 * MIB, pieces=24, pause=0.05)
    data = body.sized() if framing == "content-length" else body.generator()
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        code=status_of(lambda: put(db_server, owner, image_id, data))[0]))
    thread.start()
    deadline = time.monotonic() + 10
    while show(db_server, owner, image_id).json()["status"] != "saving" and time.monotonic() < deadline:
        time.sleep(0.05)
    during = usage(db_server, owner)
    assert during["image_count_uploading"] == 1
    assert during["image_size_total"] == (6 * MIB if framing == "content-length" else 8 * MIB)
    assert requests.delete(f"{db_server.url}/v2/images/{image_id}", headers=owner, timeout=10).status_code == 204
    thread.join(60)
    assert result["code"] == 410, result
    assert usage(db_server, owner) == {"image_size_total": 0, "image_count_total": 0, "image_count_uploading": 0}
    deadline = time.monotonic() + 10
    while files_of(db_server, image_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert files_of(db_server, image_id) == []
    assert show(db_server, owner, image_id).status_code == 404
    # The whole quota is available again, exactly once.
    again = create(db_server, owner)
    assert put(db_server, owner, again, b"x" * (8 * MIB + 1)).status_code == 413
    assert put(db_server, owner, again, b"x" * (8 * MIB)).status_code == 204
    assert usage(db_server, owner)["image_size_total"] == 8 * MIB


@pytest.mark.parametrize("limit", [3, 0])
def test_parallel_creates_respect_image_count_total(db_server, limit):
    """8 creates at once: exactly ``limit`` 201s (all 8 when unlimited), the rest 413; never 503."""
    project = f"counter-{limit}"
    db_server.cli("quota", "set", "--project", project, "--image-count-total", str(limit))
    counter = hdrs(db_server.token(project))
    start = threading.Barrier(8)
    codes = []

    def run():
        start.wait(10)
        codes.append(requests.post(f"{db_server.url}/v2/images", json={"name": "n"}, headers=counter,
                                   timeout=30).status_code)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    allowed = limit or 8
    assert sorted(codes) == [201] * allowed + [413] * (8 - allowed)
    assert usage(db_server, counter)["image_count_total"] == allowed


def test_parallel_uploads_respect_image_count_uploading(db_server):
    db_server.cli("quota", "set", "--project", "uploader", "--image-count-uploading", "1")
    uploader = hdrs(db_server.token("uploader"))
    images = [create(db_server, uploader), create(db_server, uploader)]
    start = threading.Barrier(2)
    results = {}

    def run(index):
        data = SlowBody(40 + index, 2 * MIB, pieces=16, pause=0.05).sized()
        start.wait(10)
        code, response = status_of(lambda: put(db_server, uploader, images[index], data))
        results[index] = (code, response)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(code for code, _ in results.values()) == [204, 413], results
    loser = next(i for i, (code, _) in results.items() if code == 413)
    assert "image_count_uploading" in results[loser][1].json()["message"]
    assert show(db_server, uploader, images[loser]).json()["status"] == "queued"
    assert files_of(db_server, images[loser]) == []
    assert usage(db_server, uploader)["image_count_uploading"] == 0


# --------------------------------------------------------------------------- tokens are checked once


def test_token_expiring_during_a_slow_upload(server):
    owner = hdrs(server.token("expiry"))
    image_id = create(server, owner)
    second = create(server, owner)
    printed = server.cli("token", "create", "--project", "expiry", "--expires-in", "2")
    issued = time.monotonic()
    short = hdrs(printed.strip().splitlines()[-1])
    mid_stream = {}

    def body():  # 16 pieces over about 3.5 s
        for part in streams.chunks(5, 4 * MIB, MIB // 4):
            time.sleep(0.22)
            if "code" not in mid_stream and time.monotonic() - issued > 2.5:
                mid_stream["code"] = show(server, short, image_id).status_code
            yield part

    response = put(server, short, image_id, body())
    elapsed = time.monotonic() - issued
    assert response.status_code == 204, response.text
    assert elapsed > 2.5
    assert mid_stream == {"code": 401}  # the token had expired while its upload kept going
    image = show(server, owner, image_id).json()
    assert (image["status"], image["size"]) == ("active", 4 * MIB)
    assert image["os_hash_value"] == streams.digest(5, 4 * MIB)
    after = show(server, short, image_id)
    assert after.status_code == 401
    assert after.json()["code"] == "401 Unauthorized"
    refused = put(server, short, second, b"late")
    assert refused.status_code == 401
    assert show(server, owner, second).json()["status"] == "queued"
    assert files_of(server, second) == []


def test_revoked_token_is_401(server):
    secret = server.token("revoker")
    assert requests.get(f"{server.url}/v2/images", headers=hdrs(secret), timeout=10).status_code == 200
    listing = server.cli("token", "list", "--project", "revoker")
    token_id = listing.split()[0]
    server.cli("token", "revoke", token_id)
    # Workers keep validated tokens for TOKEN_CACHE_SECONDS (README: Authentication): a token
    # revoked by another process stops working in every worker within that, and for good.
    time.sleep(TOKEN_CACHE_SECONDS + 0.5)
    response = requests.get(f"{server.url}/v2/images", headers=hdrs(secret), timeout=10)
    assert response.status_code == 401
    assert response.json()["message"] == "The request you have made requires authentication."
    for _ in range(6):
        assert requests.get(f"{server.url}/v2/images", headers=hdrs(secret), timeout=10).status_code == 401


# --------------------------------------------------------------------------- spoofed identity headers


def test_identity_headers_are_ignored_in_token_mode(server):
    owner = hdrs(server.token("victim"))
    private = create(server, owner, visibility="private")
    assert put(server, owner, private, b"secret").status_code == 204
    public_queued = create(server, hdrs(server.token("ops", "admin")), owner="victim", visibility="public")
    spoof = hdrs(server.token("intruder"), **{"X-Roles": "admin", "X-Project-Id": "victim",
                                               "X-Tenant-Id": "victim", "X-User-Id": "root",
                                               "X-Identity-Status": "Confirmed"})
    for path in (f"/v2/images/{private}", f"/v2/images/{private}/file"):
        response = requests.get(f"{server.url}{path}", headers=spoof, timeout=10)
        assert response.status_code == 404, response.text
    assert requests.delete(f"{server.url}/v2/images/{private}", headers=spoof, timeout=10).status_code == 404
    assert put(server, spoof, public_queued, b"mine now").status_code == 403
    assert show(server, owner, public_queued).json()["status"] == "queued"
    created = requests.post(f"{server.url}/v2/images", json={"visibility": "public"}, headers=spoof, timeout=10)
    assert created.status_code == 403
    assert show(server, owner, private).json()["status"] == "active"


# --------------------------------------------------------------------------- trusted-headers and noauth servers


def identity(project, roles="member,reader", status="Confirmed"):
    out = {"X-User-Id": f"u-{project}", "X-Project-Id": project, "X-Roles": roles, **JSON}
    if status:
        out["X-Identity-Status"] = status
    return out


def test_trusted_headers_server(start_server):
    srv = start_server(IMAGEDATA_AUTH="trusted-headers")
    image_id = create(srv, identity("tp1"))
    assert show(srv, identity("tp1"), image_id).json()["owner"] == "tp1"
    assert put(srv, identity("tp1", "reader"), image_id, b"nope").status_code == 403
    assert put(srv, identity("tp1"), image_id, b"trusted").status_code == 204
    assert show(srv, identity("tp2"), image_id).status_code == 404
    assert show(srv, identity("tp2", "Admin"), image_id).status_code == 200
    for status in (None, "Invalid"):
        response = show(srv, identity("tp1", "admin", status=status), image_id)
        assert response.status_code == 401
        assert response.json()["code"] == "401 Unauthorized"
    # A token from the CLI is not an identity in this mode.
    secret = srv.token("tp1", "admin")
    assert show(srv, hdrs(secret), image_id).status_code == 401


def test_noauth_server_is_one_admin_project(start_server):
    srv = start_server(IMAGEDATA_AUTH="noauth")
    image_id = create(srv, JSON, visibility="public")
    image = show(srv, {}, image_id).json()
    assert image["owner"] == "local"
    assert put(srv, {}, image_id, b"local data").status_code == 204
    got = requests.get(f"{srv.url}/v2/images/{image_id}/file", timeout=10)
    assert (got.status_code, got.content) == (200, b"local data")
    assert requests.get(f"{srv.url}/v2/info/stores/detail", timeout=10).status_code == 200
    assert "AUTHENTICATION IS OFF" in srv.log()


@pytest.mark.parametrize("bind", ["0.0.0.0:19292", "127.0.0.1:19292,[::]:19293"])
def test_noauth_refuses_to_start_on_a_non_loopback_bind(tmp_path, bind):
    """The WSGI entry point itself refuses (importing it binds nothing, unlike starting gunicorn)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEDATA_")}
    env.update({"IMAGEDATA_AUTH": "noauth", "IMAGEDATA_BIND": bind, "IMAGEDATA_DATA_DIR": str(tmp_path / "data"),
                "IMAGEDATA_STORES": f"local=file://{tmp_path}/stores/local"})
    done = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "ConfigError" in done.stderr and "noauth refuses to start" in done.stderr
