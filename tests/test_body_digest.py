"""The upload body readers (plain and direct-from-socket) and the parallel digests.

The direct path is exercised on gunicorn's own body objects over a real socket pair:
what it yields, what it leaves for the next request on the connection, and what gunicorn
then believes about the body.
"""
import hashlib
import io
import os
import socket
import threading
import types

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import SocketUnreader

from imagedata.config import HASH_ALGORITHMS, ConfigError, load_settings
from imagedata.errors import BadFraming, ClientAborted
from imagedata.server.body import PlainSource, direct_source
from imagedata.service.body import BodyReader
from imagedata.service.digest import HASH_NICE, ParallelDigest

DATA = os.urandom(3 * 65536 + 777)
NEXT_REQUEST = b"GET /versions HTTP/1.1\r\nHost: x\r\n\r\n"


def chunked(data, size=65536, ext=b""):
    out = b""
    for pos in range(0, len(data), size):
        piece = data[pos:pos + size]
        out += b"%x%s\r\n%s\r\n" % (len(piece), ext, piece)
    return out + b"0\r\n"


def body_over_socket(wire, content_length=None, head=b""):
    """gunicorn's Body for a request whose body bytes are ``wire`` (sent from a thread).

    ``head`` are bytes gunicorn already read past the request head (they sit in its unreader).
    """
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    unreader = SocketUnreader(ours)
    if head:
        unreader.unread(head)
    if content_length is None:
        req = types.SimpleNamespace(unreader=unreader, limit_request_field_size=8190, max_buffer_headers=0)
        body = Body(ChunkedReader(req, unreader))
    else:
        body = Body(LengthReader(unreader, content_length))
    sender = threading.Thread(target=lambda: (theirs.sendall(wire), theirs.shutdown(socket.SHUT_WR)))
    sender.start()
    return body, unreader, (ours, theirs, sender)


def read_all(body, content_length, chunk=65536):
    digest = ParallelDigest()
    source = direct_source(body, content_length)
    assert source is not None
    reader = BodyReader(source, content_length, chunk, settle=digest.wait_backlog)
    pieces = []
    for piece in reader.chunks():
        assert isinstance(piece, memoryview)
        digest.update(piece)
        pieces.append(bytes(piece))
    md5, sha512 = digest.finish()
    data = b"".join(pieces)
    assert (md5, sha512) == (hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())
    return data


def close(parts):
    ours, theirs, sender = parts
    sender.join()
    ours.close()
    theirs.close()


@pytest.mark.parametrize("head_bytes", [0, 10, 70000])
def test_direct_content_length_leaves_the_next_request_to_gunicorn(head_bytes):
    wire = DATA + NEXT_REQUEST
    body, unreader, parts = body_over_socket(wire[head_bytes:], len(DATA), head=wire[:head_bytes])
    assert read_all(body, len(DATA)) == DATA
    assert body.read(1024) == b"" and not body.failed  # gunicorn sees the body consumed
    assert unreader.read(len(NEXT_REQUEST)) == NEXT_REQUEST
    close(parts)


@pytest.mark.parametrize("size,ext,head_bytes", [(65536, b"", 0), (1000, b";name=value", 7),
                                                 (300000, b' ; a="q \\" s"', 2)])
def test_direct_chunked_with_extensions_and_trailers(size, ext, head_bytes):
    wire = chunked(DATA, size, ext) + b"X-Trailer: 1\r\n\r\n" + NEXT_REQUEST
    body, unreader, parts = body_over_socket(wire[head_bytes:], head=wire[:head_bytes])
    assert read_all(body, None) == DATA
    assert body.read(1024) == b"" and not body.failed
    assert unreader.read(len(NEXT_REQUEST)) == NEXT_REQUEST
    close(parts)


@pytest.mark.parametrize("wire,error", [
    (b"zz\r\nxx\r\n0\r\n\r\n", BadFraming),                       # not a hex size
    (b"5\r\nhelloXX0\r\n\r\n", BadFraming),                         # no CRLF after the chunk
    (b"5;bad ext\r\nhello\r\n0\r\n\r\n", BadFraming),               # malformed extension
    (b"5\nhello\r\n0\r\n\r\n", BadFraming),                         # bare LF
    (b"a\r\n01234", ClientAborted),                                 # cut inside a chunk
    (b"5\r\nhello\r\n", ClientAborted),                             # no last chunk
])
def test_direct_chunked_framing_errors_close_the_connection(wire, error):
    body, _, parts = body_over_socket(wire)
    with pytest.raises(error):
        read_all(body, None, chunk=4096)
    assert body.failed  # gunicorn will not reuse the connection
    close(parts)


def test_direct_short_content_length_is_an_abort():
    body, _, parts = body_over_socket(DATA[:1000], len(DATA))
    with pytest.raises(ClientAborted, match="declared Content-Length"):
        read_all(body, len(DATA))
    assert body.failed
    close(parts)


def test_plain_path_for_other_servers_and_touched_bodies():
    assert direct_source(io.BytesIO(DATA), len(DATA)) is None
    body, _, parts = body_over_socket(DATA, len(DATA))
    first = body.read(10)  # the application read some already: gunicorn's buffers hold state
    assert direct_source(body, len(DATA) - 10) is None
    reader = BodyReader(PlainSource(body), len(DATA) - 10, 65536, settle=lambda n: None)
    assert first + b"".join(bytes(piece) for piece in reader.chunks()) == DATA
    close(parts)


def test_any_object_with_readinto_is_a_source():
    pieces = list(BodyReader(io.BytesIO(DATA), len(DATA), 65536).chunks())
    assert b"".join(pieces) == DATA and all(isinstance(piece, bytes) for piece in pieces)
    with pytest.raises(ClientAborted, match="declared Content-Length"):
        list(BodyReader(io.BytesIO(DATA[:100]), len(DATA), 65536).chunks())


def test_a_body_left_unread_marks_the_connection_unusable():
    body, _, parts = body_over_socket(DATA + NEXT_REQUEST, len(DATA))
    chunks = BodyReader(direct_source(body, len(DATA)), len(DATA), 4096, settle=lambda n: None).chunks()
    next(chunks)
    chunks.close()  # the upload stopped reading (a limit, a lost lease)
    assert body.failed  # where the next request starts is unknown: gunicorn closes
    close(parts)
    empty, _, parts = body_over_socket(NEXT_REQUEST, 0)
    assert list(BodyReader(direct_source(empty, 0), 0, 4096, settle=lambda n: None).chunks()) == []
    assert not empty.failed  # nothing to read, nothing left: the connection stays usable
    close(parts)


@pytest.mark.parametrize("algorithm", HASH_ALGORITHMS)
def test_parallel_digest_matches_hashlib(algorithm):
    digest = ParallelDigest(algorithm)
    for pos in range(0, len(DATA), 50000):
        digest.update(DATA[pos:pos + 50000])
    assert digest.finish() == (hashlib.md5(DATA).hexdigest(), hashlib.new(algorithm, DATA).hexdigest())


def test_hashing_threads_run_at_lower_priority_and_report_their_backlog():
    digest = ParallelDigest()
    digest.update(DATA)
    digest.wait_backlog(0)
    assert digest.backlog() == 0
    for worker in (digest._md5, digest._multihash):
        assert os.getpriority(os.PRIO_PROCESS, worker.thread.native_id) >= HASH_NICE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < HASH_NICE  # the caller is not lowered
    digest.finish()


@pytest.mark.parametrize("value,expected", [("", "sha512"), ("sha256", "sha256"), (" SHA384 ", "sha384"),
                                            ("blake2b", "blake2b"), ("sha3_256", "sha3_256")])
def test_hash_algo_setting(tmp_path, value, expected):
    assert load_settings({"IMAGEDATA_HASH_ALGO": value}, data_dir=str(tmp_path)).hash_algo == expected


@pytest.mark.parametrize("value", ["shake_128", "sha-256", "whirlpool", "crc32"])
def test_hash_algo_setting_refuses_what_clients_cannot_verify(tmp_path, value):
    with pytest.raises(ConfigError, match="IMAGEDATA_HASH_ALGO"):
        load_settings({"IMAGEDATA_HASH_ALGO": value}, data_dir=str(tmp_path))
