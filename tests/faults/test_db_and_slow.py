"""Database busy (an exclusive SQLite lock held by the test), slow and stalled clients, and
oversized headers, against a real gunicorn."""
from __future__ import annotations

import socket
import sqlite3
import threading
import time

import pytest
import requests

from tests.e2e import streams
from tests.faults.helpers import (MIB, RawUpload, assert_no_path, count, create, download_sha512, files_of,
                                  kept_offset, put, raw_request, scrub, status_of, wait_status)

pytestmark = pytest.mark.e2e
LEASE = 4


class ExclusiveLock:
    """BEGIN EXCLUSIVE on the server's database from the test process."""

    def __init__(self, path):
        self.con = sqlite3.connect(path, timeout=30, isolation_level=None)

    def __enter__(self):
        self.con.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc):
        self.con.execute("ROLLBACK")
        self.con.close()


def _db_settings(busy_ms) -> dict:
    """The settings of a database test's server, with this busy timeout (None: the default)."""
    env = dict(IMAGEDATA_UPLOAD_LEASE_SECONDS=LEASE, IMAGEDATA_UPLOAD_IDLE_TIMEOUT=2, IMAGEDATA_LOG_LEVEL="WARNING")
    if busy_ms is not None:
        env["IMAGEDATA_DB_BUSY_TIMEOUT_MS"] = busy_ms
    return env


@pytest.fixture(scope="module")
def db_srv(start_module_server):
    return start_module_server("db", **_db_settings(500))


def _busy_before_upload(srv, hold):
    token = srv.token("p1")
    image_id = create(srv, token)
    with ExclusiveLock(srv.db_path):
        started = time.monotonic()
        response = put(srv, token, image_id, streams.chunks(1, MIB), timeout=hold + 30)
        elapsed = time.monotonic() - started
    assert response.status_code == 503, (response.status_code, response.text)
    assert_no_path(srv, response.text)
    assert "database" in response.text.lower()
    assert files_of(srv, image_id) == []
    assert wait_status(srv, token, image_id, ("queued",), timeout=LEASE * 3) == "queued"
    assert files_of(srv, image_id) == []
    assert put(srv, token, image_id, streams.chunks(2, MIB)).status_code == 204
    assert download_sha512(srv, token, image_id)[1] == streams.digest(2, MIB)
    assert scrub(srv)[:2] == (0, 0)
    return elapsed


def test_database_locked_before_upload_is_503(db_srv):
    """IMAGEDATA_DB_BUSY_TIMEOUT_MS=500: the upload cannot take its lease and gets 503; nothing on disk."""
    assert _busy_before_upload(db_srv, 1) < 10


def test_database_locked_at_commit_is_503_and_no_orphan(db_srv):
    """The lock is taken while the body streams: the final compare-and-set cannot run, the
    uploader gets 503, the renamed file is removed and, once the lock is gone, the image is
    `queued` again (by the failure path or the lease recovery) with no file left."""
    srv = db_srv
    token = srv.token("p1")
    image_id = create(srv, token)
    upload = RawUpload(srv, token, image_id, content_length=2 * MIB)
    upload.send(b"a" * MIB)
    assert wait_status(srv, token, image_id, ("saving",), timeout=5) == "saving"
    with ExclusiveLock(srv.db_path):
        upload.send(b"b" * MIB)
        response = upload.wait(30)
        time.sleep(0.5)
    upload.close()
    assert response is not None and response.status == 503, response
    assert_no_path(srv, response.text)
    assert wait_status(srv, token, image_id, ("queued",), timeout=LEASE * 3) == "queued"
    assert files_of(srv, image_id) == []
    assert scrub(srv)[:2] == (0, 0)
    assert put(srv, token, image_id, b"after the lock").status_code == 204


@pytest.mark.slow
def test_database_locked_longer_than_default_busy_timeout(start_server):
    """With the default busy timeout (10 s) the lock is held for longer: still 503, no orphan."""
    srv = start_server("db", **_db_settings(None))
    assert _busy_before_upload(srv, 12) >= 9


# -- slow clients -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_srv(start_module_server):
    return start_module_server("slow", IMAGEDATA_UPLOAD_IDLE_TIMEOUT=2, IMAGEDATA_UPLOAD_LEASE_SECONDS=LEASE,
                               IMAGEDATA_LOG_LEVEL="WARNING")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_stalled_upload_is_abandoned_after_idle_timeout(slow_srv, chunked):
    srv = slow_srv
    token = srv.token("p1")
    image_id = create(srv, token)
    upload = RawUpload(srv, token, image_id, content_length=None if chunked else 4 * MIB, chunked=chunked)
    upload.send(b"s" * MIB)
    assert wait_status(srv, token, image_id, ("saving",), timeout=5) == "saving"
    stalled = time.monotonic()
    # Stall with the connection open: after ~2 s without a byte the server gives up.
    response = upload.wait(15)
    waited = time.monotonic() - stalled
    assert response is not None and response.status == 400, response
    assert 1.5 < waited < 8, waited
    assert status_of(srv, token, image_id) == "queued"
    # A declared size can be resumed: the megabyte that arrived is kept (chunked: nothing).
    assert kept_offset(srv, token, image_id) == (None if chunked else MIB)
    assert len(files_of(srv, image_id)) == (0 if chunked else 1)
    upload.close()
    assert put(srv, token, image_id, b"retry").status_code == 204
    assert len(files_of(srv, image_id)) == 1 and kept_offset(srv, token, image_id) is None


def test_slow_clients_cannot_starve_the_service(slow_srv):
    """5 slow clients (more than the 2 workers, fewer than workers x 16 threads): 3 trickle an
    upload body, 2 trickle their request headers. /versions and an image show answer in < 1 s."""
    srv = slow_srv
    token = srv.token("p1")
    shown = create(srv, token)
    stop = threading.Event()
    uploads = []
    for _ in range(3):
        image_id = create(srv, token)
        uploads.append((image_id, RawUpload(srv, token, image_id, chunked=True)))
    loris = []
    for _ in range(2):
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.sendall(b"GET /versions HTTP/1.1\r\nHost: x\r\n")
        loris.append(sock)

    def trickle():
        while not stop.wait(0.5):
            for _id, upload in uploads:
                upload.send(b"t" * 10)
            for sock in loris:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    worst = 0.0
    try:
        time.sleep(1)
        for image_id, _u in uploads:
            assert status_of(srv, token, image_id) == "saving"
        end = time.monotonic() + 5
        while time.monotonic() < end:
            for url, headers in ((f"{srv.url}/versions", {}),
                                 (f"{srv.url}/v2/images/{shown}", {"X-Auth-Token": token})):
                started = time.monotonic()
                response = requests.get(url, headers=headers, timeout=5)
                took = time.monotonic() - started
                worst = max(worst, took)
                assert response.status_code == 200
                assert took < 1.0, f"{url} took {took:.2f}s with slow clients connected"
            time.sleep(0.1)
        # The trickling uploads are still alive (each byte resets the idle timer).
        for image_id, upload in uploads:
            assert not upload.done.is_set(), upload.response
    finally:
        stop.set()
        thread.join(5)
        for _id, upload in uploads:
            upload.close()
        for sock in loris:
            sock.close()
    print(f"slow clients: worst latency {worst:.3f}s")
    for image_id, _u in uploads:
        assert wait_status(srv, token, image_id, ("queued",), timeout=10) == "queued"
        assert files_of(srv, image_id) == []


# -- oversized headers ----------------------------------------------------------------------

OVERSIZED = [
    ("64k-url", f"GET /v2/images/{'a' * 65536} HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
    ("9k-request-line", f"GET /versions?{'q' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
    ("100k-header", b"GET /versions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n"),
    ("9k-header", b"GET /versions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"),
    ("200-headers", b"GET /versions HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
     + b"\r\n"),
    ("10000-headers", b"GET /versions HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-H%d: v\r\n" % i for i in range(10000)) + b"\r\n"),
    ("10k-store-id", b"PUT /v2/images/00000000-0000-4000-8000-000000000000/file HTTP/1.1\r\nHost: x\r\n"
     b"Content-Type: application/octet-stream\r\nContent-Length: 1\r\nX-Image-Meta-Store: "
     + b"s" * 10000 + b"\r\n\r\nx"),
]


@pytest.mark.parametrize("name,data", OVERSIZED, ids=[c[0] for c in OVERSIZED])
def test_oversized_headers_are_4xx_and_the_server_keeps_serving(slow_srv, name, data):
    srv = slow_srv
    workers = sorted(srv.worker_pids())
    response = raw_request(srv, data, timeout=10)
    if response is not None:
        assert 400 <= response.status < 500, response
        assert_no_path(srv, response.text)
    count("oversized header cases")
    assert requests.get(f"{srv.url}/versions", timeout=5).status_code == 200
    assert sorted(srv.worker_pids()) == workers, "a worker died"


def test_concurrent_writers_wait_for_the_lock_instead_of_503(start_server):
    """With uploads heartbeating, 8 clients creating images at once must all succeed: a busy
    database is waited for (the default busy timeout), not answered with an immediate 503.
    (The module's 500 ms server could legitimately give up on a loaded machine.)"""
    srv = start_server("db", **_db_settings(10000))
    codes = _concurrent_creates(srv)
    assert codes == {201: 80}, f"status counts of 80 concurrent creates: {codes}"


def _concurrent_creates(srv):
    token = srv.token("p1")
    codes = {}
    lock = threading.Lock()
    busy_uploads = []
    for _ in range(2):
        image_id = None
        while image_id is None:  # (this create may itself hit the bug under test; retry it)
            response = requests.post(f"{srv.url}/v2/images", headers={"X-Auth-Token": token}, timeout=30,
                                     json={"name": "u", "disk_format": "raw", "container_format": "bare"})
            image_id = response.json()["id"] if response.status_code == 201 else None
        upload = RawUpload(srv, token, image_id, chunked=True)
        upload.send(b"h" * 1000)
        busy_uploads.append(upload)

    def creator():
        for _ in range(10):
            response = requests.post(f"{srv.url}/v2/images", headers={"X-Auth-Token": token}, timeout=30,
                                     json={"name": "c", "disk_format": "raw", "container_format": "bare"})
            with lock:
                codes[response.status_code] = codes.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=creator) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for upload in busy_uploads:
        upload.end()
        upload.wait(10)
        upload.close()
    count("races run", 80)
    return codes
