"""Restarts lose nothing, against a real gunicorn: SIGTERM lets uploads finish within the graceful
timeout and cuts the rest cleanly (queued at once, retry 204); SIGHUP under steady traffic fails no
request; a paused upload is never taken for a dead one while its heartbeat runs."""
from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import threading
import time

import pytest
import requests

from tests.e2e import streams
from imagedata.app import create_app
from imagedata.db import database
from imagedata.service import lifecycle
from tests.ops.helpers import SlowUpload, create, put, show

pytestmark = pytest.mark.e2e
MIB = streams.MIB


def _status_in_db(srv, image_id) -> tuple:
    with sqlite3.connect(srv.db_path) as db:
        return db.execute("SELECT status, attempt_pid, size FROM image WHERE id = ?", (image_id,)).fetchone()


def test_sigterm_finishes_short_uploads_and_cuts_long_ones_cleanly(start_server):
    env = {"GUNICORN_CMD_ARGS": "--workers 2 --graceful-timeout 5"}
    srv = start_server("srv", **env)
    token = srv.token("p1")
    short_id, long_id = create(srv.url, token), create(srv.url, token)
    size = 8 * MIB
    short = SlowUpload(srv.port, token, short_id, size)
    long = SlowUpload(srv.port, token, long_id, 64 * MIB)
    assert short.send(MIB) and long.send(MIB)
    time.sleep(0.3)  # both uploads are streaming in the workers
    srv.proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    # The short one keeps streaming for ~2 s, well within the graceful timeout: it completes.
    assert short.send(size - MIB, pause=0.015)
    assert short.status() == 204
    # The long one trickles on; a little before the graceful timeout the server cuts it.
    while long.send(64 * 1024, pause=0.1):
        assert time.monotonic() - stopped < 15, "the long upload was never cut"
    assert long.status() == 503
    cut_after = time.monotonic() - stopped
    assert 2.5 < cut_after < 5.0, cut_after
    # The image is queued again before the server is even gone: nobody waits for a lease to expire.
    status, lease_pid, _ = _status_in_db(srv, long_id)
    assert (status, lease_pid) == ("queued", None)
    srv.proc.wait(timeout=15)
    assert _status_in_db(srv, short_id)[::2] == ("active", size)
    assert "cut 1 upload(s) still in flight" in srv.log()
    assert "PUT /v2/images/<image_id>/file 503" in srv.log()
    # After the restart, a retry of the cut upload succeeds.
    again = start_server("srv", **env)
    data = b"".join(streams.chunks(5, 3 * MIB))
    assert put(again.url, token, long_id, data).status_code == 204
    assert show(again.url, token, long_id)["os_hash_value"] == hashlib.sha512(data).hexdigest()


class Traffic:
    """Steady uploads, downloads and metadata reads from a few threads, recording every failure."""

    def __init__(self, srv, token, image_id, data):
        self.srv, self.token, self.image_id, self.data = srv, token, image_id, data
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.counts = {"upload": 0, "download": 0, "metadata": 0}
        self.threads = [threading.Thread(target=self._loop, args=(kind,), daemon=True)
                        for kind in ("upload", "download", "download", "metadata", "metadata")]

    def _once(self, session, kind) -> None:
        url, headers = self.srv.url, {"X-Auth-Token": self.token}
        if kind == "upload":
            body = {"name": "t", "disk_format": "raw", "container_format": "bare"}
            created = session.post(f"{url}/v2/images", json=body, headers=headers, timeout=30)
            assert created.status_code == 201, created.status_code
            sent = session.put(f"{url}/v2/images/{created.json()['id']}/file", data=self.data, timeout=30,
                               headers={**headers, "Content-Type": "application/octet-stream"})
            assert sent.status_code == 204, (sent.status_code, sent.text)
        elif kind == "download":
            got = session.get(f"{url}/v2/images/{self.image_id}/file", headers=headers, timeout=30)
            assert got.status_code == 200 and got.content == self.data, got.status_code
        else:
            got = session.get(f"{url}/v2/images/{self.image_id}", headers=headers, timeout=30)
            assert got.status_code == 200 and got.json()["status"] == "active", got.status_code

    def _loop(self, kind) -> None:
        session = requests.Session()  # keep-alive connections, as real clients have
        while not self.stop.is_set():
            try:
                self._once(session, kind)
                self.counts[kind] += 1
            except Exception as exc:  # every failure is reported, none retried
                self.failures.append(f"{kind}: {exc!r}")

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def _wait_new_workers(srv, old: set, timeout: float = 30) -> set:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = srv.new_workers(old)
        if current:
            return current
        time.sleep(0.1)
    raise AssertionError(f"workers were not replaced: {old} -> {srv.worker_pids()}")


def test_sighup_under_steady_traffic_fails_no_request(start_server):
    srv = start_server(GUNICORN_CMD_ARGS="--workers 2 --graceful-timeout 10")
    token = srv.token("p1")
    data = os.urandom(768 * 1024)
    image_id = create(srv.url, token)
    assert put(srv.url, token, image_id, data).status_code == 204
    with Traffic(srv, token, image_id, data) as traffic:
        time.sleep(1.0)
        workers = set(srv.worker_pids())
        for _ in range(2):
            srv.proc.send_signal(signal.SIGHUP)
            workers = _wait_new_workers(srv, workers)
            time.sleep(1.0)
    assert traffic.failures == []
    assert min(traffic.counts.values()) >= 5, traffic.counts


def test_a_paused_upload_is_never_reset_and_a_frozen_one_is(start_server):
    """Pauses shorter than the idle timeout, adding up to more than the lease: the heartbeat
    (by time, in its own thread) keeps the lease; recovery from another host, which can only
    judge by the heartbeat, resets nothing. Control: a frozen worker's lease is reset."""
    srv = start_server(IMAGEDATA_UPLOAD_IDLE_TIMEOUT="2", IMAGEDATA_UPLOAD_LEASE_SECONDS="4")
    token = srv.token("p1")
    # Recovery as another host runs it (the same function as `imagedata recover` there): a lease
    # it does not own can only be judged by its heartbeat.
    elsewhere = create_app({**srv.env, "IMAGEDATA_HOST_ID": "another-host:0"}).extensions["imagedata"]

    def recover_from_elsewhere() -> list:
        with database.connection_context():
            return lifecycle.recover(elsewhere)

    image_id = create(srv.url, token)
    upload = SlowUpload(srv.port, token, image_id, 4 * 65536)
    assert upload.send(65536)
    for _ in range(3):  # 3 pauses of 1.7 s: 5.1 s > the 4 s lease, each < the 2 s idle timeout
        time.sleep(1.7)
        assert recover_from_elsewhere() == []
        assert upload.send(65536 // 2)
    assert upload.send(upload.size - upload.sent)
    assert upload.status() == 204
    assert show(srv.url, token, image_id)["status"] == "active"

    # Control: freeze the worker (heartbeat included) for longer than the lease.
    frozen_id = create(srv.url, token)
    frozen = SlowUpload(srv.port, token, frozen_id, 2 * 65536)
    assert frozen.send(65536)
    time.sleep(0.5)
    with sqlite3.connect(srv.db_path) as db:
        (pid,) = db.execute("SELECT attempt_pid FROM image WHERE id = ?", (frozen_id,)).fetchone()
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(5)
        # Reset by this recovery, or already by the other worker's periodic one (same rule).
        assert recover_from_elsewhere() in ([frozen_id], [])
    finally:
        os.kill(pid, signal.SIGCONT)
    assert _status_in_db(srv, frozen_id)[0] == "queued"
