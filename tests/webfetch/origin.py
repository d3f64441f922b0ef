"""A loopback web server the web-download tests fetch from, with the faults they need.

It logs every TCP connection it accepts (before any byte is read) and counts the body
bytes the kernel accepted from it, so that a test can prove a refused URL never reached
it and that resumes do not re-send the file.
"""
from __future__ import annotations

import dataclasses
import http.server
import socket
import ssl
import struct
import threading
from urllib.parse import parse_qs, urlsplit

SLICE = 64 << 10


@dataclasses.dataclass
class Faults:
    """What the origin does wrong (all off by default)."""

    reset_every: int | None = None  # reset each connection after this many body bytes
    resets: int | None = None  # ...at most this many times in all (None: always)
    changed: tuple | None = None  # (data, etag) served after the first reset
    ignore_range: bool = False
    chunked: bool = False  # no Content-Length: chunked framing
    validators: bool = True  # send ETag and Last-Modified
    stall_after: int | None = None  # send this many body bytes, then nothing
    stall_ends_short: bool = False  # when the stall is let go, close (else: silent until the client gives up)
    silent: bool = False  # read the request, answer nothing
    sndbuf: int | None = None  # SO_SNDBUF of accepted connections


class Origin:
    """A threaded HTTP/1.1 server on ``host`` (``start()``/``stop()``, or ``with``).

    Routes: ``/image`` (the data, with Range and If-Range), ``/status/NNN``,
    ``/redirect?to=URL`` (302), ``/loop/N`` (302 to ``/loop/N+1``).
    """

    def __init__(self, data: bytes = b"", host: str = "127.0.0.1", port: int = 0, etag: str = '"v1"',
                 tls: ssl.SSLContext | None = None, **faults):
        self.data, self.etag, self.faults = data, etag, Faults(**faults)
        self.connections: list = []
        self.requests: list = []
        self.bytes_sent = 0
        self.resets = 0
        self.server_names: list = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        if tls is not None:
            tls.sni_callback = lambda sslobj, name, context: self.server_names.append(name)
        self.server = _Server(self, host, port, tls)
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str = "/image", host: str | None = None) -> str:
        """A URL of this server (``host`` overrides the address, e.g. a name)."""
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        scheme = "https" if self.server.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def configure(self, data: bytes | None = None, etag: str = '"v1"', **faults) -> Origin:
        """Serve ``data`` with these faults from now on and forget what was logged (tests that
        share one origin); handlers stalled by the previous faults are let go."""
        with self.lock:
            self.stopping.set()
            self.stopping = threading.Event()
            if data is not None:
                self.data = data
            self.etag, self.faults = etag, Faults(**faults)
            self.connections.clear()
            self.requests.clear()
            self.bytes_sent = self.resets = 0
        return self

    def start(self) -> Origin:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release stalled handlers."""
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Origin:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def count(self, sent: int) -> None:
        """Add body bytes the kernel accepted."""
        with self.lock:
            self.bytes_sent += sent


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, origin: Origin, host: str, port: int, tls: ssl.SSLContext | None):
        self.origin, self.tls = origin, tls
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def get_request(self):
        sock, peer = super().get_request()
        self.origin.connections.append(peer)
        if self.origin.faults.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.origin.faults.sndbuf)
        if self.tls is not None:  # a client that refuses the certificate ends it here (OSError: ignored)
            sock.settimeout(5)
            sock = self.tls.wrap_socket(sock, server_side=True)
            sock.settimeout(None)
        return sock, peer

    def handle_error(self, request, client_address) -> None:
        pass  # clients that go away are part of these tests


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            pass

    def do_GET(self) -> None:
        origin = self.server.origin
        origin.requests.append({"path": self.path, "headers": dict(self.headers)})
        if origin.faults.silent:
            origin.stopping.wait(30)
            return
        parts = urlsplit(self.path)
        if parts.path.startswith("/status/"):
            return self._simple(int(parts.path.rsplit("/", 1)[1]))
        if parts.path == "/redirect":
            return self._simple(302, {"Location": parse_qs(parts.query)["to"][0]})
        if parts.path.startswith("/loop/"):
            return self._simple(302, {"Location": f"/loop/{int(parts.path.rsplit('/', 1)[1]) + 1}"})
        if parts.path == "/image":
            return self._image(origin)
        return self._simple(404)

    def _simple(self, status: int, headers: dict | None = None) -> None:
        body = f"{status}\n".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _image(self, origin: Origin) -> None:
        faults = origin.faults
        data, etag = origin.data, origin.etag
        start = 0
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and wanted.endswith("-") and not faults.ignore_range:
            if self.headers.get("If-Range") in (None, etag):
                start = int(wanted[6:-1])
        if start > len(data):
            return self._simple(416)
        self.send_response(206 if start else 200)
        if faults.validators:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Mon, 06 Jul 2026 10:00:00 GMT")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if faults.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self._body(origin, memoryview(data)[start:])

    def _body(self, origin: Origin, body: memoryview) -> None:
        faults = origin.faults
        limit = len(body)
        resetting = faults.reset_every is not None and (faults.resets is None or origin.resets < faults.resets)
        if resetting:
            limit = min(limit, faults.reset_every)
        if faults.stall_after is not None:
            limit = min(limit, faults.stall_after)
        for offset in range(0, limit, SLICE):
            piece = body[offset:min(offset + SLICE, limit)]
            if faults.chunked:
                self.wfile.write(b"%x\r\n" % len(piece))
            self.wfile.write(piece)
            origin.count(len(piece))
            if faults.chunked:
                self.wfile.write(b"\r\n")
        if limit < len(body) and faults.stall_after is not None:
            origin.stopping.wait(30)
            if faults.stall_ends_short:  # let go: the answer ends short, as a server that gave up
                self.close_connection = True
            return
        if limit < len(body):
            return self._reset(origin)
        if faults.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _reset(self, origin: Origin) -> None:
        """Abort the connection with a TCP reset (unsent data is dropped, as in a real failure)."""
        with origin.lock:
            origin.resets += 1
            if origin.faults.changed is not None:
                origin.data, origin.etag = origin.faults.changed
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
