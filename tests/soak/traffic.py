"""What the soak's clients send and what they saw: bodies, byte-for-byte checks, the record.

Every request is recorded with its start and end (seconds since the soak began), the
operation it belongs to, its status (or the client-side error), the bytes sent and
received, and the wrong bytes of a checked download. Image data is generated from a seed
(tests.e2e.streams), so any byte of any image can be checked without keeping it.
"""
from __future__ import annotations

import dataclasses
import threading
import time

import requests

from tests.e2e import streams

MIB = streams.MIB
OCTET = "application/octet-stream"


@dataclasses.dataclass
class Record:
    """One request as a client saw it."""

    t0: float
    t1: float
    op: str
    method: str
    outcome: int | str  # the status, "error:<exception>" when no answer came, "cut" for a client's cut
    sent: int = 0
    received: int = 0
    wrong: int = 0
    note: str = ""

    @property
    def failed(self) -> bool:
        """A server error or no answer at all."""
        if isinstance(self.outcome, str):
            return self.outcome.startswith("error:")
        return self.outcome >= 500


class Recorder:
    """The soak's shared record (thread-safe), with its epoch."""

    def __init__(self):
        self.epoch = time.monotonic()
        self.records: list[Record] = []
        # (since, t, kind, detail): checks made by clients; ``since`` is when the request the
        # finding is about began, so a finding about one that met a fault can be told apart
        self.findings: list[tuple[float, float, str, str]] = []
        self.active: dict[str, tuple[int, int]] = {}  # every client's active images: id -> (seed, size)
        self.lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the soak began."""
        return time.monotonic() - self.epoch

    def add(self, record: Record) -> Record:
        with self.lock:
            self.records.append(record)
        return record

    def find(self, kind: str, detail: str, since: float | None = None) -> None:
        """Note something a client checked and found wrong (a wrong byte, an unexpected status...);
        ``since``: when the request it is about began (default: now)."""
        with self.lock:
            now = self.now()
            self.findings.append((now if since is None else since, now, kind, detail))


class Payload:
    """An image body generated from ``seed``: bytes ``start`` to ``size`` of the stream, read
    as a file of known length (requests sends a Content-Length); ``rate`` in bytes/s slows it."""

    def __init__(self, seed: int, size: int, start: int = 0, rate: float | None = None):
        self.seed, self.size, self.pos = seed, size, start
        self.len = size - start
        self.rate = rate
        self.began = time.monotonic()
        self.given = 0

    def read(self, n: int = -1) -> bytes:
        """The next piece (at most 1 MiB)."""
        if self.pos >= self.size:
            return b""
        if self.rate:
            ahead = self.given / self.rate - (time.monotonic() - self.began)
            if ahead > 0:
                time.sleep(ahead)
        block = streams.block(self.seed, self.pos // MIB)
        piece = block[self.pos % MIB:][: min(MIB, self.size - self.pos) if n < 0 else min(n, self.size - self.pos)]
        self.pos += len(piece)
        self.given += len(piece)
        return piece

    def chunks(self):
        """The same bytes as a generator (requests sends it chunked)."""
        while True:
            piece = self.read(MIB)
            if not piece:
                return
            yield piece


class Checker:
    """Compares received pieces with bytes ``start``... of the stream ``seed``; counts wrong bytes."""

    def __init__(self, seed: int, start: int = 0):
        self.seed, self.pos = seed, start
        self.wrong = 0
        self.first_wrong: int | None = None

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            index, offset = divmod(self.pos, MIB)
            expected = streams.block(self.seed, index)[offset:offset + len(view)]
            got = view[:len(expected)]
            if got != expected:
                bad = sum(1 for x, y in zip(got, expected) if x != y)
                self.wrong += bad
                if self.first_wrong is None:
                    self.first_wrong = self.pos + next(i for i, (x, y) in enumerate(zip(got, expected)) if x != y)
            self.pos += len(expected)
            view = view[len(expected):]


class Client:
    """One client thread's HTTP: every request through ``base`` (nginx), each recorded."""

    def __init__(self, base: str, recorder: Recorder, name: str):
        self.base, self.recorder, self.name = base, recorder, name
        self.session = requests.Session()

    def call(self, op: str, method: str, path: str, token: str | None, body=None, sent: int = 0,
             headers: dict | None = None, check: Checker | None = None, timeout: float = 120) -> tuple:
        """Send one request; returns (Record, response headers, JSON body or None)."""
        hdrs = dict(headers or {})
        if token:
            hdrs["X-Auth-Token"] = token
        t0 = self.recorder.now()
        record = Record(t0, t0, op, method, "error:none", sent=sent)
        answer_headers, document = {}, None
        try:
            with self.session.request(method, self.base + path, data=body, headers=hdrs, stream=True,
                                      timeout=timeout) as response:
                record.outcome = response.status_code
                answer_headers = response.headers
                if check is not None and response.status_code in (200, 206):
                    for piece in response.iter_content(MIB):
                        record.received += len(piece)
                        check.feed(piece)
                    record.wrong = check.wrong
                else:
                    content = response.content
                    record.received = len(content)
                    if "json" in response.headers.get("Content-Type", "") and content:
                        document = response.json()
        except (requests.RequestException, ValueError) as exc:
            record.outcome = f"error:{type(exc).__name__}"
            record.note = str(exc)[:200]
        record.t1 = self.recorder.now()
        return self.recorder.add(record), answer_headers, document
