"""Client disconnects, two uploads racing, delete during upload (OSSA-2015-003) and lying sizes,
against a real gunicorn over real sockets."""
from __future__ import annotations

import hashlib
import threading
import time

import pytest
import requests

from tests.e2e import streams
from tests.faults.helpers import (MIB, RawUpload, count, create, download_sha512, files_of, kept_offset, put,
                                  raw_request, request_head, resume_put, rng, scrub, show, usage, wait_status)

LEASE = 4
SETTINGS = dict(IMAGEDATA_UPLOAD_LEASE_SECONDS=LEASE, IMAGEDATA_UPLOAD_IDLE_TIMEOUT=2, IMAGEDATA_LOG_LEVEL="WARNING")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def srv(start_module_server):
    return start_module_server("faults-upload", **SETTINGS)


@pytest.fixture(scope="module")
def token(srv):
    return srv.token("p1")


@pytest.fixture(scope="module")
def race_srv(request, db_backend, server_database, start_module_server):
    """The races on each database backend: ``srv`` on SQLite, a second server on PostgreSQL."""
    if db_backend == "sqlite":
        return request.getfixturevalue("srv")
    return start_module_server(f"faults-upload-{db_backend}", **SETTINGS, **server_database(db_backend))


@pytest.fixture(scope="module")
def race_token(race_srv):
    return race_srv.token("p1")


def _assert_clean_queued(srv, token, image_id):
    code, image = show(srv, token, image_id)
    assert code == 200
    assert image["status"] == "queued", image["status"]
    assert (image["size"], image["checksum"], image["os_hash_value"]) == (None, None, None)
    assert files_of(srv, image_id) == []


def _retry_works(srv, token, image_id, seed=99, size=300_000):
    response = put(srv, token, image_id, streams.chunks(seed, size))
    assert response.status_code == 204, response.text
    code, image = show(srv, token, image_id)
    assert (image["status"], image["size"], image["os_hash_value"]) == ("active", size, streams.digest(seed, size))


# -- client disconnects ---------------------------------------------------------------------


@pytest.mark.parametrize("framing,cut", [
    ("content-length", "after-headers"), ("content-length", "mid-body"), ("content-length", "one-byte-short"),
    ("chunked", "after-headers"), ("chunked", "mid-body"), ("chunked", "mid-chunk"), ("chunked", "no-terminator"),
])
def test_client_disconnect_mid_upload(srv, token, framing, cut):
    image_id = create(srv, token)
    before = usage(srv, token)
    size = 4 * MIB
    chunked = framing == "chunked"
    upload = RawUpload(srv, token, image_id, content_length=None if chunked else size, chunked=chunked)
    if cut == "mid-body":
        for part in streams.chunks(5, 2 * MIB, 256 * 1024):
            upload.send(part)
    elif cut == "one-byte-short":
        upload.sock.sendall(b"x" * (size - 1))
    elif cut == "mid-chunk":
        upload.sock.sendall(f"{MIB:x}\r\n".encode() + b"y" * (MIB // 2))
    elif cut == "no-terminator":
        upload.send(b"z" * MIB)  # a complete chunk, but never the final 0-length chunk
    time.sleep(0.3)
    upload.close()
    assert wait_status(srv, token, image_id, ("queued",), timeout=10) == "queued"
    kept = KEPT_AFTER_CUT.get((framing, cut))
    if kept is None:  # nothing arrived, or no declared size to resume to
        deadline = time.monotonic() + 5
        while files_of(srv, image_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        _assert_clean_queued(srv, token, image_id)
        assert usage(srv, token) == before
        _retry_works(srv, token, image_id)
        return
    prefix = b"x" * kept if cut == "one-byte-short" else b"".join(streams.chunks(5, 2 * MIB, 256 * 1024))
    assert kept_offset(srv, token, image_id) == kept == len(prefix)
    assert [f[-5:] for f in files_of(srv, image_id)] == [".part"]
    rest = b"r" * (size - kept)
    response = resume_put(srv, token, image_id, kept, rest, size)
    assert response.status_code == 204, response.text
    code, image = show(srv, token, image_id)
    assert (image["status"], image["size"], image["os_hash_value"]) == (
        "active", size, hashlib.sha512(prefix + rest).hexdigest())
    assert len(files_of(srv, image_id)) == 1 and kept_offset(srv, token, image_id) is None


# A cut-off upload of a declared size keeps what arrived (the README's "Resumable uploads").
KEPT_AFTER_CUT = {("content-length", "mid-body"): 2 * MIB, ("content-length", "one-byte-short"): 4 * MIB - 1}


def test_client_half_closes_and_reads_the_400(srv, token):
    """A client that stops sending but still listens is told 400 (short body)."""
    image_id = create(srv, token)
    response = raw_request(srv, request_head("PUT", f"/v2/images/{image_id}/file", token, [
        ("Content-Type", "application/octet-stream"), ("Content-Length", str(MIB))]) + b"a" * 1000,
        half_close=True)
    assert response is not None and response.status == 400, response
    assert kept_offset(srv, token, image_id) == 1000  # kept for a resume; a plain PUT starts over
    _retry_works(srv, token, image_id)
    assert len(files_of(srv, image_id)) == 1


# -- two uploads to one image ---------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_two_uploads_one_wins(race_srv, race_token, round_):
    image_id = create(race_srv, race_token)
    size = 3 * MIB
    barrier = threading.Barrier(2)
    results = {}

    def body(seed):
        barrier.wait()
        for part in streams.chunks(seed, size, 256 * 1024):
            time.sleep(0.01)
            yield part

    def run(seed):
        try:
            results[seed] = put(race_srv, race_token, image_id, body(seed)).status_code
        except requests.RequestException as exc:  # the loser may be cut off while still sending
            results[seed] = type(exc).__name__

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (100 + 2 * round_, 101 + 2 * round_)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(str(v) for v in results.values())
    assert codes[0] == "204" and codes[1] in ("409", "ConnectionError"), results
    winner = next(seed for seed, code in results.items() if code == 204)
    count("races run")
    code, image = show(race_srv, race_token, image_id)
    assert (image["status"], image["os_hash_value"]) == ("active", streams.digest(winner, size))
    assert download_sha512(race_srv, race_token, image_id)[1] == streams.digest(winner, size)
    assert len(files_of(race_srv, image_id)) == 1


def test_second_upload_gets_409_before_any_byte(race_srv, race_token):
    """The loser is refused on its headers alone, while the winner streams."""
    image_id = create(race_srv, race_token)
    first = RawUpload(race_srv, race_token, image_id, chunked=True)
    first.send(b"a" * MIB)
    assert wait_status(race_srv, race_token, image_id, ("saving",), timeout=5) == "saving"
    second = raw_request(race_srv, request_head("PUT", f"/v2/images/{image_id}/file", race_token, [
        ("Content-Type", "application/octet-stream"), ("Content-Length", str(MIB))]), timeout=5)
    assert second is not None and second.status == 409, second
    first.send(b"b" * MIB)
    first.end()
    response = first.wait()
    first.close()
    assert response is not None and response.status == 204, response
    assert show(race_srv, race_token, image_id)[1]["size"] == 2 * MIB
    assert len(files_of(race_srv, image_id)) == 1


# -- delete during upload -------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_delete_during_upload(race_srv, race_token, framing):
    """DELETE answers 204 at once, the image is 404, the uploader gets 410, no file, usage unchanged."""
    image_id = create(race_srv, race_token)
    before = usage(race_srv, race_token)
    size = 16 * MIB
    chunked = framing == "chunked"
    upload = RawUpload(race_srv, race_token, image_id, content_length=None if chunked else size, chunked=chunked,
                       extra=[("x-openstack-image-size", str(size))])
    sent = 0
    for part in streams.chunks(6, 2 * MIB, 256 * 1024):
        upload.send(part)
        sent += len(part)
    assert wait_status(race_srv, race_token, image_id, ("saving",), timeout=5) == "saving"
    started = time.monotonic()
    deleted = requests.delete(f"{race_srv.url}/v2/images/{image_id}", headers={"X-Auth-Token": race_token}, timeout=10)
    assert deleted.status_code == 204
    assert time.monotonic() - started < 2, "DELETE waited for the upload"
    assert show(race_srv, race_token, image_id)[0] == 404
    # Keep sending slowly: the uploader notices at its next heartbeat (every ~1 s) and answers 410.
    deadline = time.monotonic() + 15
    while not upload.done.is_set() and time.monotonic() < deadline and sent < size - 256 * 1024:
        if not upload.send(b"q" * 65536):
            break
        sent += 65536
        time.sleep(0.02)
    response = upload.wait(15)
    upload.close()
    assert response is not None and response.status == 410, (response, sent)
    assert sent < size - 256 * 1024, "the deletion was not noticed before the body ended"
    deadline = time.monotonic() + 5
    while files_of(race_srv, image_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert files_of(race_srv, image_id) == []
    _assert_usage_after_delete(race_srv, race_token, before)
    assert put(race_srv, race_token, image_id, b"again").status_code == 404


def _assert_usage_after_delete(srv, token, before, deleted=1):
    """Stored bytes and uploads in flight are back where they were; the deleted images are gone."""
    after = usage(srv, token)
    assert after["image_size_total"] == before["image_size_total"], (before, after)
    assert after["image_count_uploading"] == before["image_count_uploading"] == 0, (before, after)
    assert after["image_count_total"] == before["image_count_total"] - deleted, (before, after)


def race(first, second, jitter: float) -> None:
    """Run two calls at once (behind a barrier); the first waits ``jitter`` seconds if it is
    positive, the second ``-jitter`` if it is negative."""
    barrier = threading.Barrier(2)

    def run(call, delay):
        barrier.wait()
        if delay > 0:
            time.sleep(delay)
        call()

    threads = [threading.Thread(target=run, args=(first, jitter)),
               threading.Thread(target=run, args=(second, -jitter))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def delete_image(srv, token, image_id) -> int:
    return requests.delete(f"{srv.url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=30).status_code


def run_delete_races(srv, token, rounds):
    gen = rng(f"delete-race-{rounds}")
    images = []
    outcomes = {}
    size = 200_000
    before = usage(srv, token)
    for i in range(rounds):
        image_id = create(srv, token)
        images.append(image_id)
        upload = RawUpload(srv, token, image_id, content_length=size)
        body = streams.block(i, 0)[:size]
        upload.sock.sendall(body[:-1000])
        assert wait_status(srv, token, image_id, ("saving",), timeout=5) == "saving"
        # Both start together; one side is delayed by a random few milliseconds.
        answers = {}
        race(lambda: upload.sock.sendall(body[-1000:]),
             lambda: answers.update(delete=delete_image(srv, token, image_id)), gen.uniform(-0.004, 0.004))
        response = upload.wait(30)
        upload.close()
        status = response.status if response else None
        outcomes[status] = outcomes.get(status, 0) + 1
        count("races run")
        assert answers["delete"] == 204, answers
        assert status in (204, 410), (i, response)
        assert show(srv, token, image_id)[0] == 404
        leftover = files_of(srv, image_id)
        assert leftover == [], f"round {i}: upload {status}, DELETE 204, but files remain: {leftover}"
    # Every image created here was deleted again: usage is exactly where it started.
    _assert_usage_after_delete(srv, token, before, deleted=0)
    orphans, broken, out = scrub(srv)
    assert (orphans, broken) == (0, 0), out
    print(f"delete races: {rounds} rounds, upload outcomes {outcomes}")
    for status, n in outcomes.items():
        count(f"delete race: upload answered {status}", n)
    return outcomes


def test_delete_races_upload_completion(race_srv, race_token):
    outcomes = run_delete_races(race_srv, race_token, 20)
    assert set(outcomes) <= {204, 410} and sum(outcomes.values()) == 20, outcomes


@pytest.mark.slow
def test_delete_races_upload_completion_200(race_srv, race_token):
    outcomes = run_delete_races(race_srv, race_token, 200)
    assert set(outcomes) <= {204, 410} and sum(outcomes.values()) == 200, outcomes


# -- lying sizes ----------------------------------------------------------------------------

BODY = b"0123456789" * 100  # 1000 bytes

LIES = [
    # (name, extra headers, body bytes, how: "send" | "half-close" | "headers-only", allowed statuses)
    ("image-size-too-large", [("x-openstack-image-size", "1200"), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-too-small", [("x-openstack-image-size", "800"), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-too-large-chunked", [("x-openstack-image-size", "1200"), ("Transfer-Encoding", "chunked")],
     b"3e8\r\n" + BODY + b"\r\n0\r\n\r\n", "send", {400}),
    ("image-size-too-small-chunked", [("x-openstack-image-size", "800"), ("Transfer-Encoding", "chunked")],
     b"3e8\r\n" + BODY + b"\r\n0\r\n\r\n", "send", {400}),
    ("image-size-negative", [("x-openstack-image-size", "-1"), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-abc", [("x-openstack-image-size", "abc"), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-1e3", [("x-openstack-image-size", "1e3"), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-empty", [("x-openstack-image-size", ""), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-float", [("x-openstack-image-size", "1000.0"), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-hex", [("x-openstack-image-size", "0x3e8"), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-plus", [("x-openstack-image-size", "+1000"), ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-arabic-digits", [("x-openstack-image-size", "١٠٠٠".encode()), ("Content-Length", "1000")],
     BODY, "send", {400}),
    ("image-size-2^64", [("x-openstack-image-size", str(1 << 64))], b"", "headers-only", {400, 413}),
    ("image-size-huge", [("x-openstack-image-size", "9" * 25), ("Content-Length", "1000")], BODY, "send",
     {400, 413}),
    ("image-size-twice-disagreeing", [("x-openstack-image-size", "1000"), ("x-openstack-image-size", "5"),
                                      ("Content-Length", "1000")], BODY, "send", {400}),
    ("image-size-vs-content-length", [("x-openstack-image-size", "1000"), ("Content-Length", "999")],
     BODY[:999], "send", {400}),
    ("content-length-too-large", [("Content-Length", "5000")], BODY, "half-close", {400}),
    ("content-length-huge", [("Content-Length", str(1 << 62))], b"", "headers-only", {400, 413}),
    ("content-length-negative", [("Content-Length", "-1000")], BODY, "send", {400}),
    ("content-length-abc", [("Content-Length", "abc")], BODY, "send", {400}),
    ("content-length-twice-disagreeing", [("Content-Length", "1000"), ("Content-Length", "5")], BODY, "send",
     {400}),
    ("content-length-and-chunked", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
     b"a\r\n0123456789\r\n0\r\n\r\n", "send", {400}),
    ("transfer-encoding-gzip-chunked", [("Transfer-Encoding", "gzip, chunked")],
     b"a\r\n0123456789\r\n0\r\n\r\n", "send", {400, 501}),
    ("transfer-encoding-foo", [("Transfer-Encoding", "foo")], BODY, "send", {400, 501}),
    ("bad-chunk-size", [("Transfer-Encoding", "chunked")], b"a\r\n0123456789\r\nzz\r\nxx\r\n0\r\n\r\n", "send",
     {400}),
]


@pytest.mark.parametrize("name,headers,body,how,allowed", LIES, ids=[c[0] for c in LIES])
def test_declared_size_lies(srv, token, name, headers, body, how, allowed):
    image_id = create(srv, token)
    before = usage(srv, token)
    head = request_head("PUT", f"/v2/images/{image_id}/file", token,
                        [("Content-Type", "application/octet-stream"), *headers])
    if how == "headers-only":
        response = raw_request(srv, head, timeout=5)  # answered before any body byte is sent
    else:
        response = raw_request(srv, head + body, timeout=10, half_close=how == "half-close")
    assert response is not None, "no answer"
    assert response.status in allowed, response
    if name in KEPT_LIES:  # a body shorter than its Content-Length looks like a cut: kept for a resume
        assert kept_offset(srv, token, image_id) == KEPT_LIES[name]
    else:
        _assert_clean_queued(srv, token, image_id)
    assert usage(srv, token) == before
    _retry_works(srv, token, image_id)
    assert len(files_of(srv, image_id)) == 1 and kept_offset(srv, token, image_id) is None


KEPT_LIES = {"content-length-too-large": len(BODY)}


def test_content_length_shorter_than_body_stores_only_declared_bytes(srv, token):
    """Content-Length alone cannot be called a lie (the rest is the next request on the connection):
    exactly Content-Length bytes are stored, never more, and the trailing bytes are not image data."""
    image_id = create(srv, token)
    head = request_head("PUT", f"/v2/images/{image_id}/file", token,
                        [("Content-Type", "application/octet-stream"), ("Content-Length", "5")])
    response = raw_request(srv, head + b"0123456789", timeout=10)
    assert response is not None and response.status in (204, 400), response
    code, image = show(srv, token, image_id)
    if response.status == 204:
        assert (image["status"], image["size"], image["checksum"]) == ("active", 5, hashlib.md5(b"01234").hexdigest())
    else:
        _assert_clean_queued(srv, token, image_id)
    assert requests.get(f"{srv.url}/versions", timeout=5).status_code == 200


def test_delete_racing_the_start_of_an_upload_is_never_409(race_srv, race_token):
    """A DELETE that lands as the upload begins (before, at or after its compare-and-set): the
    uploader learns the image is gone (404 if it never saw it, else 410), never 409."""
    srv, token = race_srv, race_token
    outcomes = {}
    for i in range(20):
        image_id = create(srv, token)
        answers = {}
        race(lambda: answers.update(put=put(srv, token, image_id, b"s" * 200_000).status_code),
             lambda: answers.update(delete=delete_image(srv, token, image_id)),
             rng(f"delete-start-{i}").uniform(-0.004, 0.004))
        assert answers["delete"] == 204, answers
        assert answers["put"] in (204, 404, 410), (i, answers)
        outcomes[answers["put"]] = outcomes.get(answers["put"], 0) + 1
        assert files_of(srv, image_id) == []
        count("races run")
    print(f"delete at upload start: {outcomes}")
