"""The lingering close after a refused body, and ``100 Continue`` sent only when the body is read:
real sockets and gunicorn's own request-side objects."""
from __future__ import annotations

import select
import socket
import threading
import time
import types

from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from imagedata.server import adapter as server_adapter
from imagedata.server import linger


def _pair():
    left, right = socket.socketpair()
    left.settimeout(5)
    right.settimeout(5)
    return left, right


def _sender(sock, total: int, close: bool = True):
    """Send ``total`` bytes (stopping quietly when the other side is gone), then maybe close."""
    def run():
        try:
            sock.sendall(bytes(total))
            if close:
                sock.close()
        except OSError:
            pass
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_nothing_happens_unless_asked():
    server, client = _pair()
    with server, client:
        assert linger.linger({"gunicorn.socket": server}) is None
        assert linger.linger({}) is None


def test_the_answer_arrives_and_the_rest_of_the_body_is_discarded_until_the_peer_closes():
    server, client = _pair()
    with server:
        server.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        sending = _sender(client, 8 << 20)
        environ = {"gunicorn.socket": server}
        linger.request_linger(environ)
        assert linger.linger(environ) == 8 << 20
        sending.join()
        assert linger.LINGER_KEY not in environ


def test_the_peer_reads_the_answer_and_the_end_of_the_stream():
    server, client = _pair()
    with server, client:
        server.sendall(b"answer")
        environ = {"gunicorn.socket": server}
        linger.request_linger(environ)
        done = threading.Thread(target=linger.linger, args=(environ,))
        done.start()
        assert client.recv(100) == b"answer" and client.recv(100) == b""
        client.close()
        done.join(5)
        assert not done.is_alive()


def test_a_peer_that_keeps_sending_is_cut_at_the_byte_bound():
    server, client = _pair()
    with server, client:
        sending = _sender(client, 64 << 20, close=False)
        environ = {"gunicorn.socket": server}
        linger.request_linger(environ)
        assert linger.linger(environ, max_bytes=1 << 20) == 1 << 20
        server.close()
        sending.join(10)


def test_a_silent_peer_is_left_after_the_idle_bound():
    server, client = _pair()
    with server, client:
        environ = {"gunicorn.socket": server}
        linger.request_linger(environ)
        started = time.monotonic()
        assert linger.linger(environ, idle_seconds=0.3) == 0
        assert 0.25 < time.monotonic() - started < 3


def test_a_body_read_to_its_end_needs_no_linger():
    server, client = _pair()
    with server, client:
        unreader = SocketUnreader(server)
        environ = {"gunicorn.socket": server, "CONTENT_LENGTH": "4", "wsgi.input": Body(LengthReader(unreader, 4))}
        client.sendall(b"data")
        assert environ["wsgi.input"].read(4) == b"data"
        linger.request_linger(environ)
        assert linger.linger(environ) == 0


def _request(sock, length: int = 4):
    unreader = SocketUnreader(sock)
    return types.SimpleNamespace(unreader=unreader, body=Body(LengthReader(unreader, length)),
                                 _expected_100_continue=True)


def test_100_continue_goes_out_when_the_body_is_first_read():
    server, client = _pair()
    with server, client:
        req = _request(server)
        assert server_adapter.defer_continue(req) is True
        assert req._expected_100_continue is False  # gunicorn will not send it at once
        assert select.select([client], [], [], 0.2)[0] == []  # nothing sent before the body is read
        client.sendall(b"data")
        assert req.body.read(4) == b"data"
        assert client.recv(100) == server_adapter.CONTINUE
        assert "chunk" not in vars(req.unreader)  # the next request on the connection reads plainly
        assert server_adapter.settle_continue(req) is False and req.body.failed is False


def test_the_direct_upload_path_sends_it_too():
    server, client = _pair()
    with server, client:
        req = _request(server)
        server_adapter.defer_continue(req)
        assert req.unreader.take_buffered() == b""
        assert client.recv(100) == server_adapter.CONTINUE


def test_a_refusal_without_100_continue_closes_the_connection():
    server, client = _pair()
    with server, client:
        req = _request(server)
        server_adapter.defer_continue(req)
        assert server_adapter.settle_continue(req) is True
        assert req.body.failed is True  # gunicorn closes rather than wait for a body
        assert "chunk" not in vars(req.unreader) and "take_buffered" not in vars(req.unreader)


def test_continue_fallbacks():
    assert server_adapter.defer_continue(types.SimpleNamespace(_expected_100_continue=True)) is False
    server, client = _pair()
    with server, client:
        req = _request(server)
        req._expected_100_continue = False
        assert server_adapter.defer_continue(req) is False
        assert server_adapter.settle_continue(req) is False
