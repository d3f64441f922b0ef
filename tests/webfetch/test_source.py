"""Reading a URL's data from real loopback servers: resumes, restarts, errors, limits."""
from __future__ import annotations

import hashlib
import logging
import time
from urllib.parse import quote

import pytest

from imagedata.service.digest import ParallelDigest
from imagedata.service.webfetch import (ConnectionLost, IdleTimeout, RemoteHTTPError, SourceRestarted,
                                        SourceTooLarge, SourceUnstable, open_url)
from tests.webfetch.conftest import MIB, allowing, assert_cut_stops_a_stalled_read, read_all

# A reset drops what the server's kernel still held unsent, as a crashed server does; a
# small send buffer keeps that loss small, so the byte count measures the fetcher.
SNDBUF = 256 << 10


def test_plain_fetch(origins, data):
    origin = origins(data)
    with open_url(origin.url(), allowing(origin), idle_timeout=5) as source:
        assert source.size == len(data)
        got, restarts = read_all(source)
    assert got == data and restarts == []
    assert len(origin.connections) == 1 and origin.bytes_sent == len(data)
    headers = origin.requests[0]["headers"]
    assert headers["Host"] == f"127.0.0.1:{origin.port}" and headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_resets_every_4_mib_are_resumed_with_range(origins, data, chunked):
    origin = origins(data, reset_every=4 * MIB, sndbuf=SNDBUF, chunked=chunked)
    with open_url(origin.url(), allowing(origin), idle_timeout=5) as source:
        got, restarts = read_all(source)
        assert source.resumes >= 7
    assert got == data and restarts == []
    assert origin.bytes_sent < 1.2 * len(data), origin.bytes_sent / len(data)
    ranges = [r["headers"].get("Range") for r in origin.requests[1:]]
    assert all(r and r.startswith("bytes=") and r != "bytes=0-" for r in ranges)
    assert all(r["headers"]["If-Range"] == '"v1"' for r in origin.requests[1:])


@pytest.mark.parametrize("validators", [True, False], ids=["etag", "no-validators"])
def test_a_reset_before_the_first_byte_is_a_new_start_not_a_restart(origins, data, validators):
    origin = origins(data, reset_every=0, resets=1, validators=validators)
    with open_url(origin.url(), allowing(origin), idle_timeout=5) as source:
        got, restarts = read_all(source)
        assert source.restarts == 0
    assert got == data and restarts == []
    assert len(origin.connections) == 2


def test_a_changed_file_after_a_reset_starts_over(origins, data):
    new = data[::-1]
    origin = origins(data, reset_every=4 * MIB, resets=1, changed=(new, '"v2"'))
    with open_url(origin.url(), allowing(origin), idle_timeout=5) as source:
        got, restarts = read_all(source)
        assert source.restarts == 1
    assert got == new and restarts == ["the file changed (new ETag)"]


def test_a_server_that_ignores_range_is_read_again_from_zero(origins, data):
    origin = origins(data, reset_every=4 * MIB, resets=1, ignore_range=True)
    with open_url(origin.url(), allowing(origin), idle_timeout=5) as source:
        got, restarts = read_all(source)
    assert got == data and restarts == ["the server ignored the Range request"]
    assert len(origin.connections) == 2


def test_without_validators_a_reset_starts_over(origins, data):
    origin = origins(data, reset_every=4 * MIB, resets=1, validators=False)
    with open_url(origin.url(), allowing(origin), idle_timeout=5) as source:
        got, restarts = read_all(source)
    assert got == data and len(restarts) == 1 and "neither ETag nor Last-Modified" in restarts[0]
    assert "Range" not in origin.requests[1]["headers"]


def test_restarts_are_bounded(origins, data):
    origin = origins(data, reset_every=2 * MIB, ignore_range=True, sndbuf=SNDBUF)
    with open_url(origin.url(), allowing(origin), idle_timeout=5, max_restarts=2, backoff=0.01) as source:
        with pytest.raises(SourceUnstable, match="start over 2 times"):
            read_all(source)
    assert len(origin.connections) == 4  # the first, two restarts, and the answer that ended it


def test_restart_signal_lets_the_caller_reset_its_digests(origins, data):
    """The loop an import runs: the upload's threaded digests over the reused buffers,
    new digests at each start; the last ones are of the right bytes."""
    new = data[::-1]
    origin = origins(data, reset_every=4 * MIB, resets=1, changed=(new, '"v2"'), sndbuf=SNDBUF)
    with open_url(origin.url(), allowing(origin), idle_timeout=5) as source:
        while True:
            digest = ParallelDigest("sha512")
            try:
                for piece in source.pieces(MIB, settle=digest.wait_backlog):
                    digest.update(piece)
                break
            except SourceRestarted:
                digest.close()
    assert digest.finish() == (hashlib.md5(new).hexdigest(), hashlib.sha512(new).hexdigest())


@pytest.mark.parametrize("status,reason", [(404, "Not Found"), (500, "Internal Server Error"),
                                           (403, "Forbidden")])
def test_an_error_status_names_it(origins, status, reason):
    origin = origins()
    with pytest.raises(RemoteHTTPError) as caught:
        open_url(origin.url(f"/status/{status}"), allowing(origin), idle_timeout=5)
    assert caught.value.http_status == status
    assert f"answered {status} {reason}" in caught.value.message
    assert len(origin.connections) == 1  # not retried


def test_a_temporary_error_is_retried_then_named(origins):
    origin = origins()
    with pytest.raises(ConnectionLost, match="answered 503 Service Unavailable") as caught:
        open_url(origin.url("/status/503"), allowing(origin), idle_timeout=5, retries=2, backoff=0.01)
    assert len(origin.connections) == 3
    assert "failed 3 times in a row" in caught.value.message


def test_a_declared_size_over_the_cap_is_refused_before_reading(origins, data):
    origin = origins(data, sndbuf=SNDBUF)
    with pytest.raises(SourceTooLarge) as caught:
        open_url(origin.url(), allowing(origin), idle_timeout=5, max_bytes=MIB)
    assert f"is {len(data)} bytes, larger than the limit of {MIB} bytes" in caught.value.message
    time.sleep(0.2)  # let the server notice the closed connection
    assert origin.bytes_sent < len(data) // 2


def test_a_chunked_body_over_the_cap_stops_at_the_cap(origins, data):
    origin = origins(data, chunked=True, sndbuf=SNDBUF)
    with open_url(origin.url(), allowing(origin), idle_timeout=5, max_bytes=2 * MIB) as source:
        assert source.size is None
        with pytest.raises(SourceTooLarge, match=f"larger than the limit of {2 * MIB} bytes"):
            read_all(source)
        assert source.position == 2 * MIB + 1
    time.sleep(0.2)
    assert origin.bytes_sent < len(data) // 2


def test_a_server_that_stalls_mid_body_hits_the_idle_timeout(origins, data):
    origin = origins(data, stall_after=3 * MIB)
    start = time.monotonic()
    with open_url(origin.url(), allowing(origin), idle_timeout=0.5) as source:
        with pytest.raises(IdleTimeout) as caught:
            read_all(source)
    assert time.monotonic() - start < 4
    assert "sent nothing for 0.5 seconds after 3145728 bytes" in caught.value.message
    assert "IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT" in caught.value.message
    assert len(origin.connections) == 1  # a stalled server is not asked again


def test_a_server_that_never_answers_hits_the_idle_timeout(origins, data):
    origin = origins(data, silent=True)
    with pytest.raises(IdleTimeout, match="sent nothing for 0.5 seconds before answering"):
        with open_url(origin.url(), allowing(origin), idle_timeout=0.5) as source:
            read_all(source)


def test_a_server_gone_for_good_ends_with_connection_lost(origins, data):
    origin = origins(data, reset_every=4 * MIB, sndbuf=SNDBUF)
    source = open_url(origin.url(), allowing(origin), idle_timeout=5, retries=2, backoff=0.01)
    buffer = bytearray(MIB)
    source.readinto(buffer)
    origin.stop()
    with pytest.raises(ConnectionLost) as caught:
        read_all(source)
    assert "failed 3 times in a row" in caught.value.message and f"of {len(data)} bytes" in caught.value.message


def test_credentials_never_reach_messages_or_logs(origins, data, caplog):
    caplog.set_level(logging.DEBUG, logger="imagedata")
    origin = origins(data, reset_every=4 * MIB, resets=1, sndbuf=SNDBUF)
    secret_url = origin.url("/image?X-Amz-Signature=f00dfeed&token=hunter2").replace("://", "://alice:s3cret@", 1)
    with open_url(secret_url, allowing(origin), idle_timeout=5) as source:
        got, _ = read_all(source)
    assert got == data
    assert origin.requests[0]["headers"]["Authorization"] == "Basic YWxpY2U6czNjcmV0"  # sent, as curl does
    failing = origin.url("/status/404?sig=f00dfeed").replace("://", "://alice:s3cret@", 1)
    with pytest.raises(RemoteHTTPError) as caught:
        open_url(failing, allowing(origin), idle_timeout=5)
    shown = caught.value.message + str(caught.value) + caplog.text
    assert "resumed at byte" in caplog.text and "***@" in shown
    for secret in ("s3cret", "alice", "f00dfeed", "hunter2", "YWxpY2U6czNjcmV0"):
        assert secret not in shown


def test_credentials_are_sent_to_their_own_origin_only(origins, data):
    """first -> other -> first again: the other origin never sees them."""
    first = origins(data)
    other = origins()
    back = quote(first.url(), safe="")
    url = first.url(f"/redirect?to={quote(other.url(f'/redirect?to={back}'), safe='')}")
    with open_url(url.replace("://", "://alice:s3cret@", 1), allowing(first, other), idle_timeout=5) as source:
        assert read_all(source)[0] == data
    assert [r["path"] for r in first.requests] == [first.requests[0]["path"], "/image"]
    assert all(r["headers"]["Authorization"] == "Basic YWxpY2U6czNjcmV0" for r in first.requests)
    assert "Authorization" not in other.requests[0]["headers"]


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_cut_from_another_thread_stops_a_stalled_read_at_once(origins, data, chunked):
    origin = origins(data, stall_after=MIB, chunked=chunked)
    with open_url(origin.url(), allowing(origin), idle_timeout=60) as source:
        assert_cut_stops_a_stalled_read(source, MIB)
    assert len(origin.connections) == 1

