"""Helpers for the fault-injection suite: HTTP over real sockets, store and database inspection."""
from __future__ import annotations

import collections
import ctypes
import ctypes.util
import hashlib
import os
import random
import re
import socket
import sqlite3
import threading
import time

import requests

from tests.e2e import streams

MIB = streams.MIB

# Counts reported at the end of the run (see conftest.pytest_terminal_summary).
STATS: collections.Counter = collections.Counter()


def count(name: str, n: int = 1) -> None:
    STATS[name] += n


def create(srv, token, **fields) -> str:
    body = {"name": "fault", "disk_format": "raw", "container_format": "bare", **fields}
    response = requests.post(f"{srv.url}/v2/images", json=body, headers={"X-Auth-Token": token}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def put(srv, token, image_id, data, timeout=120, **headers) -> requests.Response:
    hdrs = {"X-Auth-Token": token, "Content-Type": "application/octet-stream", **headers}
    response = requests.put(f"{srv.url}/v2/images/{image_id}/file", data=data, headers=hdrs, timeout=timeout)
    saw(response.status_code)
    return response


def show(srv, token, image_id) -> tuple[int, dict | None]:
    response = requests.get(f"{srv.url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=30)
    saw(response.status_code)
    return response.status_code, (response.json() if response.status_code == 200 else None)


def status_of(srv, token, image_id) -> str | None:
    """The image status, or None when the image is not visible (404)."""
    code, body = show(srv, token, image_id)
    assert code in (200, 404), code
    return body["status"] if body else None


def wait_status(srv, token, image_id, wanted, timeout=15.0) -> str | None:
    """Poll until the image status is in ``wanted`` (a tuple); returns the last status seen."""
    deadline = time.monotonic() + timeout
    while True:
        current = status_of(srv, token, image_id)
        if current in wanted or time.monotonic() > deadline:
            return current
        time.sleep(0.1)


def download_sha512(srv, token, image_id) -> tuple[int, str, int]:
    h = hashlib.sha512()
    n = 0
    with requests.get(f"{srv.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token},
                      stream=True, timeout=60) as response:
        saw(response.status_code)
        for part in response.iter_content(MIB):
            h.update(part)
            n += len(part)
        return response.status_code, h.hexdigest(), n


def usage(srv, token) -> dict:
    response = requests.get(f"{srv.url}/v2/info/usage", headers={"X-Auth-Token": token}, timeout=30)
    assert response.status_code == 200, response.text
    return {k: v["usage"] for k, v in response.json()["usage"].items()}


def files_of(srv, image_id=None) -> list[str]:
    """Every entry (files and symlinks) under the server's store roots, optionally for one image."""
    found = []
    for root, _dirs, files in os.walk(os.path.join(srv.root, "stores")):
        found += [os.path.join(root, f) for f in files]
    return sorted(f for f in found if image_id is None or image_id in os.path.basename(f))


def scrub(srv, *extra) -> tuple[int, int, str]:
    """Run `imagedata scrub`; returns (orphans, broken, output)."""
    done = srv.run_cli("scrub", *extra)
    match = re.search(r"(\d+) orphan\(s\), (\d+) broken image\(s\)", done.stdout)
    assert match, f"unexpected scrub output: {done.stdout!r} {done.stderr[-2000:]!r}"
    orphans, broken = int(match.group(1)), int(match.group(2))
    count("scrub runs")
    count("orphans found", orphans)
    count("broken images found", broken)
    return orphans, broken, done.stdout


def db_rows(srv, where="1=1") -> list[dict]:
    """Image rows read straight from the server's database (SQLite file read-only, or PostgreSQL)."""
    if srv.database_url.startswith("postgres"):
        import psycopg2
        import psycopg2.extras

        con = psycopg2.connect(srv.database_url, connect_timeout=10)
        try:
            with con.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(f"SELECT * FROM image WHERE {where}")
                return [dict(r) for r in cur.fetchall()]
        finally:
            con.close()
    con = sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True, timeout=30)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(f"SELECT * FROM image WHERE {where}")]
    finally:
        con.close()


def saw(status: int, fuzz: bool = False) -> None:
    """Record one HTTP status seen by the suite.

    "5xx seen" counts every 5xx except the designed 503 of the store/database fault tests;
    in fuzz and table tests (``fuzz=True``) a 503 counts too.
    """
    count("http responses")
    if status == 503 and not fuzz:
        count("503 seen (designed answer to store/db faults)")
    elif status == 501 and not fuzz:
        count("501 seen (unsupported Transfer-Encoding, allowed by spec 2.8)")
    elif status >= 500:
        count("5xx seen")
        import inspect
        caller = " <- ".join(f"{f.function}" for f in inspect.stack()[1:4])
        count(f"5xx seen: {status} in {caller}")


def assert_no_path(srv, text: str) -> None:
    """No server filesystem path (or internal detail) in a response body."""
    for needle in (srv.root, "/stores/", "/data/", "Traceback", "Errno", ".part"):
        assert needle not in text, f"{needle!r} leaked in {text!r}"


# -- raw HTTP ---------------------------------------------------------------------------------


class RawResponse:
    def __init__(self, status: int, headers: dict, body: bytes, raw: bytes):
        self.status, self.headers, self.body, self.raw = status, headers, body, raw

    @property
    def text(self) -> str:
        return self.body.decode("latin-1")

    def __repr__(self):
        return f"<RawResponse {self.status} {self.raw[:300]!r}>"


def parse_response(data: bytes, head: bool = False) -> RawResponse | None:
    """Parse the first HTTP response in ``data`` (None if incomplete; ``head``: no body follows)."""
    block, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = block.decode("latin-1").split("\r\n")
    # Skip interim 1xx responses.
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    if 100 <= status < 200:
        return parse_response(rest, head)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = headers.get("content-length")
    if head:
        rest = b""
    elif length is not None and length.isdigit():
        if len(rest) < int(length):
            return None
        rest = rest[: int(length)]
    return RawResponse(status, headers, rest, data)


def raw_request(srv, data: bytes, timeout: float = 10.0, half_close: bool = False) -> RawResponse | None:
    """Send ``data`` verbatim on a new connection; read one response (None if the server just closed)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        received = b""
        head = data.startswith(b"HEAD ")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            parsed = parse_response(received, head)
            if parsed is not None and ("content-length" in parsed.headers or parsed.status in (204, 304)):
                break
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            received += chunk
    response = parse_response(received, head) if received else None
    if response is not None:
        saw(response.status)
    return response


def request_head(method: str, path: str, token: str | None = None, headers=(), host="127.0.0.1") -> bytes:
    """An HTTP/1.1 request head; ``headers`` is a list of (name, value) pairs (str or bytes)."""
    out = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")
    if token:
        out += f"X-Auth-Token: {token}\r\n".encode()
    for name, value in headers:
        name = name if isinstance(name, bytes) else name.encode("latin-1")
        value = value if isinstance(value, bytes) else value.encode("latin-1")
        out += name + b": " + value + b"\r\n"
    return out + b"\r\n"


class RawUpload:
    """A PUT (to /file, or to /stage with ``path="stage"``) whose body the test sends piece by
    piece; the response is read in the background."""

    def __init__(self, srv, token, image_id, content_length=None, chunked=False, extra=(), path="file"):
        headers = [("Content-Type", "application/octet-stream"), *extra]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        elif content_length is not None:
            headers.append(("Content-Length", str(content_length)))
        self.chunked = chunked
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        self.sock.sendall(request_head("PUT", f"/v2/images/{image_id}/{path}", token, headers))
        self.received = b""
        self.response: RawResponse | None = None
        self.done = threading.Event()
        self.closed_by_server = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.closed_by_server = True
                    break
                self.received += chunk
                parsed = parse_response(self.received)
                if parsed is not None:
                    self.response = parsed
                    saw(parsed.status)
                    break
        except OSError:
            self.closed_by_server = True
        finally:
            if self.response is None and self.received:
                self.response = parse_response(self.received)
            self.done.set()

    def send(self, data: bytes) -> bool:
        """Send body bytes (framed if chunked); False once the server stopped listening."""
        if self.chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def end(self) -> bool:
        """Send the last chunk of a chunked body."""
        try:
            self.sock.sendall(b"0\r\n\r\n")
            return True
        except OSError:
            return False

    def wait(self, timeout=30.0) -> RawResponse | None:
        self.done.wait(timeout)
        return self.response

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# -- inotify: prove a file is never opened ---------------------------------------------------

IN_ACCESS, IN_OPEN = 0x1, 0x20
IN_NONBLOCK = 0o4000


class OpenWatch:
    """Watch a directory for any open/read of the files in it (Linux inotify via ctypes)."""

    def __init__(self, directory: str):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, directory.encode(), IN_OPEN | IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def events(self) -> int:
        """How many open/access events happened since the last call."""
        n = 0
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return n
            pos = 0
            while pos < len(data):
                length = int.from_bytes(data[pos + 12: pos + 16], "little")
                n += 1
                pos += 16 + length

    def close(self):
        os.close(self.fd)


# -- bodies ---------------------------------------------------------------------------------


class ThrottledFile:
    """A file-like body of known length (so requests sends Content-Length), sent slowly."""

    def __init__(self, seed, size, piece=128 * 1024, pause=0.01):
        self.iterator = streams.chunks(seed, size, piece)
        self.len = size
        self.pause = pause

    def read(self, n=-1):
        time.sleep(self.pause)
        return next(self.iterator, b"")


def throttled_chunks(seed, size, piece=128 * 1024, pause=0.01):
    for part in streams.chunks(seed, size, piece):
        time.sleep(pause)
        yield part


def rng(name: str) -> random.Random:
    """A seeded generator (set FAULTS_SEED to replay a run); the seed is printed on failure."""
    seed = int(os.environ.get("FAULTS_SEED", "0")) or random.SystemRandom().randrange(1, 1 << 30)
    count(f"seed {name}={seed}", 0)
    print(f"{name}: FAULTS_SEED={seed}")
    return random.Random(seed)


def kept_offset(srv, token, image_id) -> int | None:
    """The Upload-Offset of an image's kept partial upload (HEAD .../file), or None."""
    response = requests.head(f"{srv.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token}, timeout=30)
    saw(response.status_code)
    value = response.headers.get("Upload-Offset")
    return int(value) if value is not None else None


def resume_put(srv, token, image_id, offset, rest: bytes, total: int) -> requests.Response:
    """Continue a kept upload at ``offset`` with the remaining bytes (what curl -C sends)."""
    return put(srv, token, image_id, rest, **{"Content-Range": f"bytes {offset}-{total - 1}/{total}"})


def upload_in_progress(srv, token, image_id, total: int, sent_mib: int, extra=(), watch=None) -> RawUpload:
    """A Content-Length upload of ``total`` bytes that has sent ``sent_mib`` MiB and is `saving`
    (as seen from ``watch``, another host, if given)."""
    upload = RawUpload(srv, token, image_id, content_length=total, extra=list(extra))
    for _ in range(sent_mib):
        upload.send(os.urandom(MIB))
    assert wait_status(watch or srv, token, image_id, ("saving",)) == "saving"
    return upload


def delete_during_upload(upload: RawUpload, srv, token, image_id, more_mib: int) -> None:
    """DELETE the image on ``srv`` while ``upload`` streams: the DELETE answers 204 and the
    uploader, sending up to ``more_mib`` MiB more, is answered 410. (What is left in the store is
    the caller's to check.)"""
    deleted = requests.delete(f"{srv.url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=10)
    assert deleted.status_code == 204
    for _ in range(more_mib):
        if not upload.send(os.urandom(MIB)):
            break
    response = upload.wait(30)
    upload.close()
    assert response is not None and response.status == 410, response and response.body
