"""Helpers of the ops tests: Prometheus metrics, JSON log lines, HTTP against a real server."""
from __future__ import annotations

import json
import select
import socket
import time
import uuid

import requests
from prometheus_client.parser import text_string_to_metric_families


def parse_metrics(text: str) -> dict:
    """{(sample name, frozenset of labels): value} of a /metrics page."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """One sample's value (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def json_lines(text: str) -> list[dict]:
    """Every line of a log as a JSON object (fails on the first line that is not one)."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"log line {number} is not JSON: {line[:300]!r}") from None
        assert isinstance(record, dict), line
        records.append(record)
    return records


# --------------------------------------------------------------------------- HTTP against a real server

OCTET = "application/octet-stream"


def create(url: str, token: str, **fields) -> str:
    """A new raw/bare image; its id."""
    body = {"name": "ops", "disk_format": "raw", "container_format": "bare", **fields}
    response = requests.post(f"{url}/v2/images", json=body, headers={"X-Auth-Token": token}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def put(url: str, token: str, image_id: str, data, timeout: float = 60, **headers) -> requests.Response:
    """PUT image data (bytes: Content-Length; an iterator: chunked)."""
    hdrs = {"X-Auth-Token": token, "Content-Type": OCTET, **headers}
    return requests.put(f"{url}/v2/images/{image_id}/file", data=data, headers=hdrs, timeout=timeout)


def show(url: str, token: str, image_id: str) -> dict:
    """The image record (asserts 200)."""
    response = requests.get(f"{url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def scrape(url: str, token: str) -> dict:
    """The parsed /metrics page (asserts 200)."""
    response = requests.get(f"{url}/metrics", headers={"X-Auth-Token": token}, timeout=30)
    assert response.status_code == 200, response.text
    return parse_metrics(response.text)


def request_id() -> str:
    """A request id to send as X-Openstack-Request-ID (and find in the access log)."""
    return f"req-{uuid.uuid4()}"


class SlowUpload:
    """A PUT sent by hand over a socket, one piece at a time, reading the answer as soon as it
    comes (a server that answers early and closes would otherwise reset it unread)."""

    def __init__(self, port: int, token: str, image_id: str, size: int, piece: int = 1 << 16):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.size, self.piece, self.sent = size, piece, 0
        self.answer = b""
        head = (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\n"
                f"Content-Type: {OCTET}\r\nContent-Length: {size}\r\n\r\n")
        self.sock.sendall(head.encode())

    def send(self, count: int, pause: float = 0.0) -> bool:
        """Send up to ``count`` more bytes, waiting ``pause`` after each piece; False once answered."""
        end = min(self.size, self.sent + count)
        while self.sent < end:
            if self.readable(pause):
                return False
            data = b"\x5a" * min(self.piece, end - self.sent)
            try:
                self.sock.sendall(data)
            except OSError:
                return False
            self.sent += len(data)
        return True

    def readable(self, wait: float) -> bool:
        """Whether the server has answered (waits up to ``wait`` seconds)."""
        ready, _, _ = select.select([self.sock], [], [], wait)
        return bool(ready)

    def status(self, timeout: float = 30) -> int | None:
        """The answer's status code (None if the connection died without one)."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.answer and time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            self.answer += data
        self.sock.close()
        line = self.answer.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 else None
