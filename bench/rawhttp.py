"""A small raw-socket HTTP/1.1 client for loopback throughput measurements.

Why not ``requests`` or ``http.client``: at several GiB/s the client, not the
server, is the bottleneck.  This client receives with ``recv_into`` into
page-aligned ``mmap`` buffers (the kernel copies into 16-byte-offset
``bytearray`` buffers 4-5x slower on the project's machines, see
perf-limits.md) and uploads with ``socket.sendfile`` (zero copy from the page
cache).  Every request uses its own connection (``Connection: close``).

Two ways to keep what a download returns, both verifying every byte:

* ``BufferSink`` stores the body in one pre-faulted buffer; its sha512 is
  computed after the timed window.
* ``CompareSink`` receives into a small ring buffer and compares each piece
  with the reference bytes in place (libc ``memcmp``, GIL released), for
  concurrent downloads whose bodies would not fit in memory.
"""

import ctypes
import hashlib
import json
import mmap
import socket
import time
from dataclasses import dataclass, field

CHUNK = 1 << 20
ALIGN = 64
HEAD_LIMIT = 64 * 1024

_libc = ctypes.CDLL(None, use_errno=True)
_libc.memcmp.restype = ctypes.c_int
_libc.memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]


class HTTPFailure(Exception):
    """A transport or protocol failure (refused, reset, short body, bad framing)."""


@dataclass
class Response:
    """What a request returned: status, lower-cased headers, body and timing."""

    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    nbytes: int = 0
    seconds: float = 0.0
    ttfb: float = 0.0

    def json(self):
        """Decode the body as JSON."""
        return json.loads(self.body.decode("utf-8"))


def aligned_buffer(size):
    """Return a pre-faulted, page-aligned anonymous mmap of ``size`` bytes."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(-1, max(size, 1), flags=flags)


def buffer_address(buf):
    """Return the address of a writable buffer (for memcmp)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def connect(addr, timeout):
    """Open a TCP connection to ``addr`` = (host, port) with TCP_NODELAY."""
    sock = socket.create_connection(addr, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def format_head(method, path, addr, headers):
    """Build the request line and headers as bytes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_head(sock):
    """Read a response head; return (status, headers, bytes read past the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(HEAD_LIMIT)
        if not piece:
            raise HTTPFailure(f"connection closed before the response head ({len(data)} bytes)")
        data += piece
        if len(data) > HEAD_LIMIT and b"\r\n\r\n" not in data:
            raise HTTPFailure("response head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HTTPFailure(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, rest


def read_all(sock, rest):
    """Read until the peer closes; return ``rest`` plus everything read."""
    pieces = [rest]
    while True:
        piece = sock.recv(CHUNK)
        if not piece:
            return b"".join(pieces)
        pieces.append(piece)


def decode_chunked(data):
    """Decode a complete chunked body (small bodies only)."""
    out, pos = [], 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[eol + 2:eol + 2 + size])
        pos = eol + 4 + size


def read_small_body(sock, headers, rest, method):
    """Read a whole (small) response body honouring its framing."""
    if method == "HEAD":
        return b""
    if "content-length" in headers:
        need = int(headers["content-length"])
        body = rest
        while len(body) < need:
            piece = sock.recv(max(need - len(body), 4096))
            if not piece:
                raise HTTPFailure(f"short body: {len(body)} of {need} bytes")
            body += piece
        return body[:need]
    data = read_all(sock, rest)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return decode_chunked(data)
    return data


def request(addr, method, path, headers=None, body=b"", timeout=60):
    """Send a small request and return the whole Response."""
    start = time.perf_counter()
    try:
        with connect(addr, timeout) as sock:
            hdrs = dict(headers or {})
            if body or method in ("POST", "PUT", "PATCH"):
                hdrs.setdefault("Content-Length", str(len(body)))
            sock.sendall(format_head(method, path, addr, hdrs) + body)
            status, rhead, rest = read_head(sock)
            data = read_small_body(sock, rhead, rest, method)
    except OSError as exc:
        raise HTTPFailure(f"{method} {path}: {exc!r}") from exc
    return Response(status, rhead, data, len(data), time.perf_counter() - start)


def request_json(addr, method, path, headers=None, payload=None, timeout=60):
    """Send a request with an optional JSON payload and return the Response."""
    hdrs = dict(headers or {})
    body = b""
    if payload is not None:
        body = json.dumps(payload).encode("utf-8")
        hdrs["Content-Type"] = "application/json"
    return request(addr, method, path, hdrs, body, timeout)


class BufferSink:
    """Keeps a whole body in one aligned buffer; verify later with ``sha512``."""

    def __init__(self, capacity):
        self.buffer = aligned_buffer(capacity)
        self.view = memoryview(self.buffer)
        self.capacity = capacity
        self.length = 0

    def reset(self, length):
        """Prepare for a body of ``length`` bytes."""
        if length > self.capacity:
            raise HTTPFailure(f"body of {length} bytes exceeds the sink ({self.capacity})")
        self.length = length

    def target(self, pos, want):
        """Return the memoryview to receive into at ``pos`` (kept 64-byte aligned)."""
        misalign = pos % ALIGN
        if misalign:
            want = min(want, ALIGN - misalign)
        return self.view[pos:pos + want]

    def commit(self, pos, nbytes):
        """Nothing to do: the bytes already sit at their place."""
        return True

    def sha512(self):
        """Return the sha512 hex digest of the received body."""
        digest = hashlib.sha512()
        for pos in range(0, self.length, CHUNK):
            digest.update(self.view[pos:min(pos + CHUNK, self.length)])
        return digest.hexdigest()

    def close(self):
        """Release the buffer."""
        self.view.release()
        self.buffer.close()


class CompareSink:
    """Receives into a ring buffer and compares each piece with reference bytes."""

    def __init__(self, reference_address, reference_offset=0):
        self.ring = aligned_buffer(CHUNK)
        self.view = memoryview(self.ring)
        self.ring_address = buffer_address(self.ring)
        self.reference = reference_address + reference_offset
        self.mismatch_at = None

    def reset(self, length):
        """Prepare for a new body."""
        self.mismatch_at = None

    def target(self, pos, want):
        """Always receive at the start of the ring (aligned)."""
        return self.view[:min(want, CHUNK)]

    def commit(self, pos, nbytes):
        """Compare the ``nbytes`` just received with the reference at ``pos``."""
        if self.mismatch_at is None and _libc.memcmp(self.ring_address, self.reference + pos, nbytes):
            self.mismatch_at = pos
        return self.mismatch_at is None

    def close(self):
        """Release the ring buffer."""
        self.view.release()
        self.ring.close()


def receive_body(sock, rest, length, sink):
    """Receive ``length`` body bytes into ``sink``; return the count received."""
    sink.reset(length)
    pos = 0
    while pos < min(len(rest), length):
        view = sink.target(pos, min(len(rest), length) - pos)
        view[:] = rest[pos:pos + len(view)]
        sink.commit(pos, len(view))
        pos += len(view)
    while pos < length:
        view = sink.target(pos, min(CHUNK, length - pos))
        got = sock.recv_into(view)
        if not got:
            break
        sink.commit(pos, got)
        pos += got
    return pos


def download(addr, path, sink, headers=None, timeout=120):
    """GET ``path`` into ``sink``; the Response carries status, count and timing.

    The body must be framed by Content-Length (any other framing of a 2xx is
    a failure).  Raises HTTPFailure on transport errors and short bodies.
    """
    start = time.perf_counter()
    try:
        with connect(addr, timeout) as sock:
            sock.sendall(format_head("GET", path, addr, headers))
            status, rhead, rest = read_head(sock)
            ttfb = time.perf_counter() - start
            if status >= 300 or "content-length" not in rhead:
                body = read_small_body(sock, rhead, rest, "GET")
                return Response(status, rhead, body[:4096], len(body), time.perf_counter() - start, ttfb)
            length = int(rhead["content-length"])
            got = receive_body(sock, rest, length, sink)
    except OSError as exc:
        raise HTTPFailure(f"GET {path}: {exc!r}") from exc
    seconds = time.perf_counter() - start
    if got != length:
        raise HTTPFailure(f"GET {path}: short body, {got} of {length} bytes")
    return Response(status, rhead, b"", got, seconds, ttfb)


def send_body(sock, fileobj, offset, length, chunked):
    """Send ``length`` bytes of ``fileobj`` from ``offset``, raw or chunked."""
    if not chunked:
        sent = sock.sendfile(fileobj, offset, length)
        if sent != length:
            raise HTTPFailure(f"sendfile sent {sent} of {length} bytes")
        return
    pos = 0
    while pos < length:
        size = min(CHUNK, length - pos)
        sock.sendall(b"%x\r\n" % size)
        sock.sendfile(fileobj, offset + pos, size)
        sock.sendall(b"\r\n")
        pos += size
    sock.sendall(b"0\r\n\r\n")


def upload(addr, path, fileobj, length, headers=None, chunked=False, offset=0, timeout=300):
    """PUT ``length`` bytes of ``fileobj`` to ``path``; return the Response.

    A server that answers early (e.g. 413) and closes is handled: its
    response is still read when the send fails.
    """
    hdrs = dict(headers or {})
    if chunked:
        hdrs["Transfer-Encoding"] = "chunked"
    else:
        hdrs["Content-Length"] = str(length)
    start = time.perf_counter()
    try:
        with connect(addr, timeout) as sock:
            sock.sendall(format_head("PUT", path, addr, hdrs))
            try:
                send_body(sock, fileobj, offset, length, chunked)
            except (BrokenPipeError, ConnectionResetError):
                pass
            status, rhead, rest = read_head(sock)
            body = read_small_body(sock, rhead, rest, "PUT")
    except OSError as exc:
        raise HTTPFailure(f"PUT {path}: {exc!r}") from exc
    return Response(status, rhead, body, length, time.perf_counter() - start)
