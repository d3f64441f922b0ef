"""The server adapter and the stop-time cut: real sockets, and the fallbacks when a hook is missing."""
from __future__ import annotations

import os
import signal
import socket
import threading
import types

import pytest

from imagedata.server import adapter as server_adapter
from imagedata.server import bodycount
from imagedata.server import drain
from imagedata.errors import BadRequest


class _Response:
    """Stands in for gunicorn's response object (the thing start_response is bound to)."""

    def __init__(self):
        self.closed = False

    def force_close(self):
        self.closed = True

    def start_response(self, status, headers, exc_info=None):
        return None


def test_read_timeout_sets_and_restores_the_socket_timeout():
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(7.0)
        with server_adapter.read_timeout({"gunicorn.socket": left}, 0.2) as applied:
            assert applied is True
            assert left.gettimeout() == 0.2
            with pytest.raises(socket.timeout):
                left.recv(1)
        assert left.gettimeout() == 7.0


def test_read_timeout_without_a_socket_does_nothing():
    with server_adapter.read_timeout({}, 0.2) as applied:
        assert applied is False
    with server_adapter.read_timeout({"gunicorn.socket": object()}, 0.2) as applied:
        assert applied is False


def test_force_close_through_the_bound_start_response_or_the_remembered_one():
    response = _Response()
    assert server_adapter.force_close({}, response.start_response) is True
    assert response.closed
    other = _Response()
    environ = {}
    server_adapter.remember_server_response(environ, other.start_response)
    assert server_adapter.force_close(environ, lambda *a: None) is True
    assert other.closed


def test_force_close_fallback_when_the_server_offers_nothing():
    assert server_adapter.force_close({}, lambda status, headers: None) is False
    assert server_adapter.force_close({}, None) is False


def test_stop_reading_ends_a_blocked_read_and_the_reply_still_goes_out():
    server, client = socket.socketpair()
    with server, client:
        got = []
        reader = threading.Thread(target=lambda: got.append(server.recv(10)))
        reader.start()
        assert server_adapter.stop_reading({"gunicorn.socket": server}) is True
        reader.join(5)
        assert got == [b""]
        server.sendall(b"503")
        assert client.recv(3) == b"503"
    assert server_adapter.stop_reading({}) is False


class _FileWrapper:
    """gunicorn's FileWrapper shape: ``filelike``, and ``close`` taken from the file."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.close = filelike.close

    def __iter__(self):
        while True:
            data = self.filelike.read(8192)
            if not data:
                return
            yield data


@pytest.mark.parametrize("how", ["sendfile", "read"])
def test_file_response_counts_what_really_left(tmp_path, how):
    path = tmp_path / "data"
    path.write_bytes(os.urandom(100_000))
    f = open(path, "rb")
    f.seek(1000)
    wrapper = _FileWrapper(f)
    counted = []
    environ = {"wsgi.file_wrapper": _FileWrapper}
    assert server_adapter.watch_file_response(environ, wrapper, counted.append) is True
    left, right = socket.socketpair()
    with left, right:
        sink = threading.Thread(target=lambda: [None for _ in iter(lambda: right.recv(65536), b"")])
        sink.start()
        if how == "sendfile":  # what gunicorn does: sendfile from the current offset, then rewind
            offset = os.lseek(wrapper.filelike.fileno(), 0, os.SEEK_CUR)
            left.sendfile(wrapper.filelike, offset=offset, count=50_000)
            os.lseek(wrapper.filelike.fileno(), offset, os.SEEK_SET)
        else:
            for piece in wrapper:
                left.sendall(piece)
        left.close()
        sink.join(5)
    wrapper.close()
    assert counted == [50_000 if how == "sendfile" else 99_000]
    assert f.closed


def test_file_response_fallback_for_other_servers(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"x" * 10)
    with open(path, "rb") as f:
        assert server_adapter.watch_file_response({}, _FileWrapper(f), print) is False
        assert server_adapter.watch_file_response({"wsgi.file_wrapper": _FileWrapper}, [b"x"], print) is False
        assert server_adapter.watch_file_response({"wsgi.file_wrapper": _FileWrapper},
                                                  types.SimpleNamespace(filelike=None), print) is False


def test_graceful_stop_hook_runs_before_the_server_handler():
    calls = []
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, frame: calls.append("server"))
    try:
        worker = types.SimpleNamespace(cfg=types.SimpleNamespace(graceful_timeout=12))
        assert server_adapter.on_graceful_stop(worker, lambda timeout: calls.append(timeout)) is True
        os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [12.0, "server"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_graceful_stop_fallback_without_a_worker_config():
    assert server_adapter.on_graceful_stop(object(), print) is False


@pytest.mark.parametrize("graceful, delay", [(30, 25.0), (6, 4.2), (1, 0.7), (0, 0.5)])
def test_uploads_are_cut_before_the_graceful_timeout(graceful, delay):
    assert drain.cut_delay(graceful) == pytest.approx(delay)


def test_a_cut_upload_is_reported_as_a_restart_and_others_are_not():
    server, client = socket.socketpair()
    with server, client:
        environ = {"gunicorn.socket": server}
        with pytest.raises(drain.ServerStopping) as caught:
            with drain.cut_on_stop(environ):
                assert drain.cut_all() == 1
                assert server.recv(1) == b""  # the read sees the end of the body
                raise BadRequest("The upload ended before the declared Content-Length was received.")
        assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "5"
        assert drain.cut_all() == 0  # nothing in flight any more
        with pytest.raises(BadRequest):
            with drain.cut_on_stop({"gunicorn.socket": client}):
                raise BadRequest("a plain failure stays what it is")


def test_gunicorn_bodies_are_counted_from_their_own_bookkeeping_and_left_untouched():
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import IterUnreader

    body = Body(LengthReader(IterUnreader([b"x" * 1000, b"y" * 500]), 1500))
    environ = {"wsgi.input": body, "CONTENT_LENGTH": "1500"}
    received = bodycount.watch_body(environ)
    assert environ["wsgi.input"] is body  # the direct upload path needs gunicorn's own object
    assert received() == 0
    assert len(body.read(1200)) == 1200
    assert 1200 <= received() <= 1500
    body.read()
    assert received() == 1500


def test_other_streams_are_wrapped_and_counted():
    import io

    environ = {"wsgi.input": io.BytesIO(b"abc"), "CONTENT_LENGTH": "3"}
    received = bodycount.watch_body(environ)
    assert environ["wsgi.input"].read() == b"abc"
    assert received() == 3
    assert bodycount.watch_body({})() == 0
