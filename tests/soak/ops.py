"""The mixed traffic of one soak client: uploads, checked downloads, metadata, deletes, races,
cut and resumed uploads, bad input. Statuses other than the ones each step allows are
findings; server errors and lost connections are judged later, against the fault windows.
"""
from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

from tests.soak.cluster import LEASE
from tests.soak.traffic import MIB, OCTET, Checker, Client, Payload, Record, Recorder

RETRY_FOR = LEASE + 15  # a retry may meet the lease of an attempt a fault cut off (409) until it expires


class SoakClient:
    """One client thread: its own images (seed and size of each active one) and its random plan."""

    def __init__(self, index: int, base: str, recorder: Recorder, tokens: dict, seed: int):
        self.index, self.recorder, self.tokens = index, recorder, tokens
        self.http = Client(base, recorder, f"client-{index}")
        self.base = base
        self.rng = random.Random(seed * 1000 + index)
        self.images: dict[str, tuple[int, int]] = {}  # id -> (seed, size)
        self.seeds = iter(range(seed * 10_000_000 + index * 100_000, 1 << 62))
        self.token = tokens["member"]

    # ------------------------------------------------------------ helpers

    def keep(self, image_id: str, seed: int, size: int) -> None:
        """An image of this client is active with these bytes."""
        self.images[image_id] = (seed, size)
        self.recorder.active[image_id] = (seed, size)

    def expect(self, record, allowed, what: str) -> bool:
        """True if the answer is allowed; a server error or no answer is left to the fault windows."""
        if record.failed or record.outcome in allowed:
            return not record.failed
        self.recorder.find("unexpected status", f"{what}: {record.outcome} (allowed {sorted(allowed)}) "
                                                f"at {record.t0:.1f}s {record.note}")
        return False

    def create(self, op: str = "create", token: str | None = None) -> str | None:
        for _ in range(20):
            record, _, doc = self.http.call(op, "POST", "/v2/images", token or self.token,
                                            headers={"Content-Type": "application/json"},
                                            body=b'{"name": "soak", "disk_format": "raw", "container_format": "bare"}')
            if self.expect(record, (201,), "create"):
                return doc["id"]
            time.sleep(0.5)
        return None

    def status(self, image_id: str, op: str = "read") -> str | None:
        """The image's status (None for 404); retried through server errors."""
        for _ in range(40):
            record, _, doc = self.http.call(op, "GET", f"/v2/images/{image_id}", self.token)
            if self.expect(record, (200, 404), "show image"):
                return doc["status"] if record.outcome == 200 else None
            time.sleep(0.5)
        return "unknown"

    def put(self, op: str, image_id: str, seed: int, size: int, chunked: bool = False, start: int = 0,
            rate: float | None = None, token: str | None = None, extra: dict | None = None, http=None):
        payload = Payload(seed, size, start, rate)
        headers = {"Content-Type": OCTET, **(extra or {})}
        if start:
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        return (http or self.http).call(op, "PUT", f"/v2/images/{image_id}/file", self.token if token is None else token,
                                        body=payload.chunks() if chunked else payload, sent=size - start,
                                        headers=headers)[0]

    def after_503(self, image_id: str, record) -> None:
        """After an upload answered 503 the image must be queued again at once (not after the lease)."""
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            if self.status(image_id, "read-after-503") != "saving":
                return
            time.sleep(0.2)
        self.recorder.find("saving after 503", f"image {image_id}: upload answered 503 at {record.t1:.1f}s, "
                                               "still saving 2.5 s later")

    def upload(self, op: str, image_id: str, seed: int, size: int, chunked: bool = False) -> bool:
        """PUT until 204: through server errors, and through 409 while a cut-off attempt's lease runs."""
        deadline = time.monotonic() + RETRY_FOR
        failed_before = False
        while time.monotonic() < deadline:
            record = self.put(op, image_id, seed, size, chunked)
            if record.outcome == 204:
                self.keep(image_id, seed, size)
                return True
            if record.outcome == 503:
                self.after_503(image_id, record)
            allowed = (204, 409) if failed_before else (204,)
            if not record.failed and not self.expect(record, allowed, op):
                return False
            if record.outcome == 409 and self.status(image_id) == "active":
                # An attempt answered with an error had finished (a host killed between the
                # commit and the answer): same bytes, which the downloads check.
                self.keep(image_id, seed, size)
                return True
            failed_before = True
            time.sleep(0.5)
        self.recorder.find("gave up", f"{op} of image {image_id}: no 204 in {RETRY_FOR}s")
        return False

    def size(self) -> int:
        """1-64 MiB, small ones more often."""
        return self.rng.choice((1, 2, 4, 8, 16, 24, 32, 48, 64)) * MIB - self.rng.randrange(0, 4096)

    # ------------------------------------------------------------ operations

    def op_upload(self) -> None:
        chunked = self.rng.random() < 0.4
        image_id = self.create()
        if image_id:
            self.upload("upload-chunked" if chunked else "upload", image_id, next(self.seeds), self.size(), chunked)

    def op_download(self) -> None:
        if not self.images:
            return self.op_upload()
        image_id = self.rng.choice(sorted(self.images))
        seed, size = self.images[image_id]
        ranged = self.rng.random() < 0.5
        first = self.rng.randrange(0, size) if ranged else 0
        last = min(size - 1, first + self.rng.randrange(1, 8 * MIB)) if ranged else size - 1
        headers = {"Range": f"bytes={first}-{last}"} if ranged else {}
        for _ in range(40):
            check = Checker(seed, first)
            record, _, _ = self.http.call("download-range" if ranged else "download", "GET",
                                          f"/v2/images/{image_id}/file", self.token, headers=headers, check=check)
            if record.failed:
                time.sleep(0.5)
                continue
            if self.expect(record, (206,) if ranged else (200,), record.op):
                if check.wrong or record.received != last - first + 1:
                    self.recorder.find("wrong bytes", f"image {image_id} bytes {first}-{last}: received "
                                                      f"{record.received}, {check.wrong} wrong from {check.first_wrong}")
            return

    def op_metadata(self) -> None:
        if self.images and self.rng.random() < 0.6:
            image_id = self.rng.choice(sorted(self.images))
            name = f"soak-{self.rng.randrange(1 << 30)}"
            record, _, doc = self.http.call("patch", "PATCH", f"/v2/images/{image_id}", self.token,
                                            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                                            body=f'[{{"op": "replace", "path": "/name", "value": "{name}"}}]')
            if self.expect(record, (200,), "patch") and doc.get("name") != name:
                self.recorder.find("wrong metadata", f"patch of {image_id}: name {doc.get('name')!r}")
            record, _, doc = self.http.call("read", "GET", f"/v2/images/{image_id}", self.token)
            if self.expect(record, (200,), "read") and doc["size"] != self.images[image_id][1]:
                self.recorder.find("wrong metadata", f"image {image_id}: size {doc['size']}")
        else:
            record, _, _ = self.http.call("list", "GET", "/v2/images?limit=20", self.token)
            self.expect(record, (200,), "list")

    def op_delete(self) -> None:
        if len(self.images) < 3:
            return self.op_upload()
        image_id = sorted(self.images)[0]
        for _ in range(40):
            record, _, _ = self.http.call("delete", "DELETE", f"/v2/images/{image_id}", self.token)
            if self.expect(record, (204, 404), "delete"):
                break
            time.sleep(0.5)
        self.images.pop(image_id)
        self.recorder.active.pop(image_id, None)

    def op_delete_during_upload(self) -> None:
        image_id = self.create()
        if not image_id:
            return
        outcome = {}
        size = 32 * MIB
        worker = threading.Thread(target=lambda: outcome.update(
            record=self.put("upload-deleted", image_id, next(self.seeds), size, rate=24 * MIB)))
        worker.start()
        time.sleep(self.rng.uniform(0.2, 1.0))
        for _ in range(40):
            record, _, _ = self.http.call("delete-during-upload", "DELETE", f"/v2/images/{image_id}", self.token)
            if self.expect(record, (204,), "delete during upload"):
                break
            time.sleep(0.5)
        worker.join()
        self.expect(outcome["record"], (204, 404, 410), "upload of a deleted image")
        if self.status(image_id) is not None:
            self.recorder.find("unexpected status", f"image {image_id} visible after its delete")

    def op_race(self) -> None:
        image_id = self.create()
        if not image_id:
            return
        seeds, records = [next(self.seeds), next(self.seeds)], {}
        size = self.rng.choice((4, 8, 16)) * MIB

        def go(n):
            records[n] = self.put("upload-race", image_id, seeds[n], size,
                                  http=Client(self.base, self.recorder, f"race-{n}"))

        workers = [threading.Thread(target=go, args=(n,)) for n in (0, 1)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        outcomes = sorted(str(r.outcome) for r in records.values())
        if outcomes == ["204", "409"]:
            winner = next(n for n, r in records.items() if r.outcome == 204)
            self.keep(image_id, seeds[winner], size)
        elif not any(r.failed for r in records.values()):
            self.recorder.find("unexpected status", f"race on {image_id}: {outcomes}")

    def op_resume(self) -> None:
        """A Content-Length upload cut off by the client, then continued with Content-Range."""
        image_id = self.create()
        if not image_id:
            return
        seed, size = next(self.seeds), self.rng.choice((16, 32, 48)) * MIB
        t0 = self.recorder.now()
        sent = cut_upload(self.base, self.token, image_id, seed, size, self.rng.randrange(2 * MIB, size // 2))
        self.recorder.add(Record(t0, self.recorder.now(), "upload-cut", "PUT", "cut", sent=sent))
        offset = None
        for _ in range(50):  # the server notices the cut once nginx passes it on
            record, headers, _ = self.http.call("resume-head", "HEAD", f"/v2/images/{image_id}/file", self.token)
            if not record.failed and "Upload-Offset" in headers:
                offset = int(headers["Upload-Offset"])
                break
            time.sleep(0.2)
        if offset is None:
            self.recorder.find("no offset", f"image {image_id}: no Upload-Offset after a cut at {sent} bytes",
                               since=t0)
            return
        record = self.put("resume", image_id, seed, size, start=offset)
        if self.expect(record, (204,), "resume"):
            self.keep(image_id, seed, size)

    def op_bad_input(self) -> None:
        """Refusals before the body is read (4-16 MiB bodies), and small bad documents."""
        size = self.rng.randrange(4 * MIB, 16 * MIB)
        target = sorted(self.images)[0] if self.images else None
        queued = self.create("bad-input-create")
        cases = [(401, queued, None, {}), (401, queued, "not-a-token", {}),
                 (400, queued, self.token, {"X-Image-Meta-Store": "nowhere"}),
                 (404, str(uuid.uuid4()), self.token, {}), (415, queued, self.token, {"Content-Type": "text/plain"}),
                 (413, queued, self.tokens["tight"], {})]
        if target:
            cases.append((409, target, self.token, {}))
        expected, image_id, token, extra = self.rng.choice(cases)
        if expected == 413:  # an image of the project whose quota is 1 MiB
            image_id = self.create("bad-input-create", token)
        if image_id is None or queued is None:
            return
        record = self.put("bad-upload", image_id, 1, size, chunked=self.rng.random() < 0.3, token=token or "",
                          extra=extra)
        self.expect(record, (expected,), f"bad upload (want {expected})")
        record, _, _ = self.http.call("bad-patch", "PATCH", f"/v2/images/{queued}", self.token,
                                      headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                                      body=b'[{"op": "replace", "path": "/name"')
        self.expect(record, (400,), "bad patch")
        record, _, _ = self.http.call("delete", "DELETE", f"/v2/images/{queued}", self.token)
        self.expect(record, (204,), "delete")

    PLAN = (("op_upload", 5), ("op_download", 6), ("op_metadata", 6), ("op_delete", 2), ("op_resume", 1),
            ("op_delete_during_upload", 1), ("op_race", 1), ("op_bad_input", 2))

    def run(self, until: float) -> None:
        """Random operations until ``until`` (recorder time)."""
        names, weights = zip(*self.PLAN)
        while self.recorder.now() < until:
            name = self.rng.choices(names, weights)[0]
            try:
                getattr(self, name)()
            except Exception as exc:  # a bug of the client must not end the soak silently
                self.recorder.find("client crashed", f"{name}: {type(exc).__name__}: {exc}")


def cut_upload(base: str, token: str, image_id: str, seed: int, size: int, cut_at: int) -> int:
    """Send a Content-Length PUT of ``size`` bytes and close the connection after ``cut_at``."""
    parts = urlsplit(base)
    payload = Payload(seed, size)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall((f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Auth-Token: {token}\r\n"
                      f"Content-Type: {OCTET}\r\nContent-Length: {size}\r\n\r\n").encode())
        while sent < cut_at:
            piece = payload.read(min(MIB, cut_at - sent))
            try:
                sock.sendall(piece)
            except OSError:
                break
            sent += len(piece)
        time.sleep(0.2)  # let the bytes reach the server before the cut
    return sent
