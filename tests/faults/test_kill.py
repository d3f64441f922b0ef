"""kill -9 the gunicorn worker, or the whole server, at random points of uploads; then recover.

After recovery: no image in `saving`, `imagedata scrub` finds 0 orphans and 0 broken images,
every image whose upload got a 204 is `active` with exactly the sent bytes, and every other
image is `queued` and takes a fresh upload. (A kill can land after the commit but before the
204 reaches the client; such an image is `active` with exactly the sent bytes and is counted
as "active without 204".)
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

from tests.e2e import streams
from tests.faults.helpers import (MIB, ThrottledFile, count, create, db_rows, download_sha512, files_of, put,
                                  rng, scrub, show, throttled_chunks, wait_status)

LEASE = 4
PIECE = 128 * 1024
PAUSE = 0.01


def _upload_in_thread(srv, token, image_id, seed, size, chunked):
    result = {}

    def run():
        body = throttled_chunks(seed, size, PIECE, PAUSE) if chunked else ThrottledFile(seed, size, PIECE, PAUSE)
        try:
            result["status"] = put(srv, token, image_id, body, timeout=60).status_code
        except requests.RequestException as exc:
            result["error"] = type(exc).__name__

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _lease_pid(srv, image_id):
    rows = db_rows(srv, f"id = '{image_id}'")
    return rows[0]["attempt_pid"] if rows else None


def _proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, TypeError):
        return "gone"


def _wait_answering(srv, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{srv.url}/versions", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server did not come back: {srv.log()}")


def run_kill_loop(srv, token, uploads: int, mode: str):
    """``mode``: "worker" (SIGKILL the worker holding the upload) or "server" (master + workers)."""
    gen = rng(f"kill-{mode}-{uploads}")
    images = []  # (image id, seed, size, result)
    for i in range(uploads):
        image_id = create(srv, token)
        seed = 7000 + i
        size = gen.randint(2 * MIB, 4 * MIB)
        chunked = i % 2 == 1
        est = size / PIECE * PAUSE
        # Kill points: before the body, mid-body, around the commit, and after the 204.
        delay = gen.uniform(0.0, est * 1.4)
        thread, result = _upload_in_thread(srv, token, image_id, seed, size, chunked)
        time.sleep(delay)
        if mode == "worker":
            pid = _lease_pid(srv, image_id)
            if not pid:
                workers = srv.worker_pids()
                pid = gen.choice(workers) if workers else None
            if pid:
                os.kill(pid, signal.SIGKILL)  # a worker of the server this test started
        else:
            srv.kill_all()
        thread.join(70)
        assert not thread.is_alive(), "upload client hung after the kill"
        if mode == "server":
            srv.start()
        else:
            _wait_answering(srv)
        count("kills survived")
        images.append((image_id, seed, size, result))

    if mode == "worker":
        # The whole server restarts too, to prove start-up recovery finds nothing left to do.
        srv.stop()
        srv.start()
    recovered = srv.run_cli("recover")
    assert recovered.returncode == 0, recovered.stderr

    # Start-up recovery and `imagedata recover` reset leases whose process is gone; a lease whose
    # pid still shows (e.g. a zombie not yet reaped) is reset by the periodic recovery on expiry.
    late = {r["id"] for r in db_rows(srv, "status = 'saving'")}
    deadline = time.monotonic() + LEASE * 3
    while db_rows(srv, "status = 'saving'") and time.monotonic() < deadline:
        time.sleep(0.2)
    count("kill: left in saving after start-up recovery, reset by lease expiry", len(late))
    saving = [(r["id"], r["attempt_pid"], r["attempt_host"], r["attempt_heartbeat"], _proc_state(r["attempt_pid"]))
              for r in db_rows(srv, "status = 'saving'")]
    assert saving == [], f"images left in saving after recovery (id, pid, host, heartbeat, pid state): {saving}"
    orphans, broken, out = scrub(srv)
    assert (orphans, broken) == (0, 0), out
    assert not [f for f in files_of(srv) if f.endswith(".part")]

    outcomes = {"204": 0, "queued": 0, "active without 204": 0}
    for image_id, seed, size, result in images:
        code, image = show(srv, token, image_id)
        assert code == 200
        expected = streams.digest(seed, size)
        if result.get("status") == 204:
            outcomes["204"] += 1
            assert image["status"] == "active", (image_id, image["status"])
            assert (image["size"], image["os_hash_value"]) == (size, expected)
            status, digest, n = download_sha512(srv, token, image_id)
            assert (status, n, digest) == (200, size, expected), image_id
            continue
        assert result.get("status") in (None, 400, 409, 503), result  # never 500
        if image["status"] == "active":
            # Committed, then killed before the 204 was sent: the bytes must still be exactly ours.
            outcomes["active without 204"] += 1
            assert (image["size"], image["os_hash_value"]) == (size, expected)
            assert download_sha512(srv, token, image_id)[1] == expected
            continue
        outcomes["queued"] += 1
        assert image["status"] == "queued", (image_id, image["status"], result)
        assert (image["size"], image["checksum"], image["os_hash_value"]) == (None, None, None)
        assert files_of(srv, image_id) == []
        fresh = put(srv, token, image_id, streams.chunks(seed + 1, MIB + 17))
        assert fresh.status_code == 204, fresh.text
        assert download_sha512(srv, token, image_id)[1] == streams.digest(seed + 1, MIB + 17)
    for name, n in outcomes.items():
        count(f"kill outcome: {name}", n)
    print(f"kill loop {mode}: {uploads} uploads, outcomes {outcomes}")
    assert scrub(srv)[:2] == (0, 0)
    return outcomes


@pytest.fixture
def kill_server(start_server, db_backend, server_database):
    """A server of its own per test, on each database backend (lease recovery across processes)."""
    srv = start_server(IMAGEDATA_UPLOAD_LEASE_SECONDS=LEASE, IMAGEDATA_UPLOAD_IDLE_TIMEOUT=2,
                       IMAGEDATA_LOG_LEVEL="WARNING", **server_database(db_backend))
    return srv, srv.token("p1")


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["worker", "server"])
def test_kill_during_6_uploads(kill_server, mode):
    srv, token = kill_server
    outcomes = run_kill_loop(srv, token, 6, mode)
    assert sum(outcomes.values()) == 6, outcomes  # every upload ended active+verified or queued+retried


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["worker", "server"])
def test_kill_during_50_uploads(kill_server, mode):
    srv, token = kill_server
    outcomes = run_kill_loop(srv, token, 50, mode)
    assert sum(outcomes.values()) == 50, outcomes


@pytest.mark.e2e
def test_stopped_worker_loses_its_lease_by_expiry(kill_server):
    """SIGSTOP the uploading worker (alive, silent): its lease expires, another worker recovers the
    image; after SIGCONT the stale upload must not win (409/400), and leaves no file behind."""
    srv, token = kill_server
    image_id = create(srv, token)
    size = 4 * MIB
    thread, result = _upload_in_thread(srv, token, image_id, 1, size, chunked=True)
    deadline = time.monotonic() + 10
    pid = None
    while not pid and time.monotonic() < deadline:
        pid = _lease_pid(srv, image_id)
        time.sleep(0.02)
    assert pid, "upload never started"
    os.kill(pid, signal.SIGSTOP)
    try:
        # Lease 4 s, recovery every 2 s in the other worker.
        assert wait_status(srv, token, image_id, ("queued",), timeout=LEASE * 3) == "queued"
        assert [f for f in files_of(srv, image_id)] == []
    finally:
        os.kill(pid, signal.SIGCONT)
    thread.join(60)
    assert result.get("status") != 204, result
    assert result.get("status") in (None, 400, 409), result
    count("kills survived")  # a stop/expiry counts as a survived worker loss
    assert wait_status(srv, token, image_id, ("queued",)) == "queued"
    assert files_of(srv, image_id) == []
    fresh = put(srv, token, image_id, streams.chunks(2, MIB))
    assert fresh.status_code == 204, fresh.text
    assert download_sha512(srv, token, image_id)[1] == streams.digest(2, MIB)
    assert scrub(srv)[:2] == (0, 0)


PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper(on: bool) -> None:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


@pytest.mark.e2e
def test_startup_recovery_resets_lease_of_killed_unreaped_worker(kill_server):
    """The whole server is killed mid-upload and the dead worker is not reaped yet (a zombie, as
    under an init that reaps lazily): start-up recovery must still see that the holder is dead
    and return the image to `queued` at once, without waiting for the lease to expire."""
    srv, token = kill_server
    image_id = create(srv, token)
    thread, result = _upload_in_thread(srv, token, image_id, 3, 8 * MIB, chunked=True)
    deadline = time.monotonic() + 10
    pid = None
    while not pid and time.monotonic() < deadline:
        pid = _lease_pid(srv, image_id)
        time.sleep(0.02)
    assert pid, "upload never started"
    _set_subreaper(True)  # orphaned workers become our children: they stay zombies until we reap them
    killed = [pid]
    try:
        killed = srv.kill_all()[1:] or killed
        thread.join(30)
        assert _proc_state(pid) == "Z"
        srv.start()
        started = time.monotonic()
        rows = db_rows(srv, f"id = '{image_id}'")
        state = rows[0]["status"]
        assert state == "queued", (f"image still {state!r} {time.monotonic() - started:.1f}s after restart; "
                                   f"its lease holder pid {pid} is dead (state {_proc_state(pid)})")
    finally:
        _set_subreaper(False)
        for worker in killed:
            try:
                os.waitpid(worker, 0)
            except ChildProcessError:
                pass
        count("kills survived")
    assert files_of(srv, image_id) == []
