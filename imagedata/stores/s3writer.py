"""The S3 store's upload: a multipart upload streamed from the request, one part at a time.

While one part is sent (by a helper thread), the next is received. The part buffers are
allocated once per upload and reused (a fresh 8 MiB buffer per part would be 2,048 page
faults and zeroed pages each time). Each part carries its CRC32 (``checksum=crc32``, the
default), which the store checks, instead of a SHA-256 payload signature. The upload is completed
onto the attempt's final key, so nothing is visible before; a crash leaves only the
multipart upload, which the writer's state names so any host can abort it. A suspended
upload is completed as a kept object of what arrived, which a later attempt continues.
"""
from __future__ import annotations

import base64
import contextlib
import logging
import queue
import threading
import zlib
from typing import Iterator

from imagedata.errors import StoreUnavailable
from imagedata.stores.base import DataMissing, data_name
from imagedata.stores.s3client import S3Bucket, S3Range, encode_state

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
MAX_PART = 5 << 30
MIB = 1 << 20


def part_size_for(base: int, expected: int | None, part_number: int) -> int:
    """The size of part ``part_number`` (1-based).

    A declared size gets one fixed size that fits it in 10,000 parts. A body of unknown
    size starts at ``base`` and doubles every 1,000 parts, which keeps the buffer small
    for common images and still fits a 1 TiB image (8 MiB base: 7.8 GiB at 8 MiB,
    23.4 GiB at 16 MiB, ...; 10,000 parts hold 7.8 TiB).
    """
    if expected is not None:
        needed = -(-expected // MAX_PARTS)
        return min(MAX_PART, max(base, -(-needed // MIB) * MIB))
    return min(MAX_PART, base << ((part_number - 1) // 1000))


class PartSender:
    """Sends full part buffers from a helper thread, one at a time, while the next fills.

    At most one part is out of the writer's hands (queued or being sent), so an upload
    holds two part buffers at the most: the one filling and the one on its way. A sent
    buffer goes back to the writer's ``spare`` list for the next part.
    """

    def __init__(self, writer: "S3Writer"):
        self.writer = writer
        self.queue: queue.Queue = queue.Queue()
        self.idle = threading.Semaphore(1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="s3-parts", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            (number, body), item = item, None
            if self.error is not None:
                self.idle.release()
                continue
            try:
                self.writer.send_part(number, body)
            except BaseException as exc:
                self.error = exc
            finally:
                self.writer.spare.append(body)
                del body
                self.idle.release()

    def put(self, number: int, body: bytearray) -> None:
        """Hand one part over (blocks while the previous one is still being sent)."""
        self.check()
        self.idle.acquire()
        self.queue.put((number, body))

    def check(self) -> None:
        """Raise the error of a part that failed."""
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Wait until every queued part is sent (idempotent)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self.writer = None  # no cycle left: the writer and its buffers go with their last use


class S3Writer:
    """One upload attempt as a multipart upload onto the attempt's final key."""

    def __init__(self, bucket: S3Bucket, image_id: str, attempt: str, expected_size: int | None,
                 base_part_size: int, crc32: bool):
        self.bucket = bucket
        self.key = bucket.key_of(data_name(image_id, attempt))
        self.expected = expected_size
        self.offset = 0
        self.parts: list[dict] = []
        self.closed = False
        self.base_part_size = base_part_size
        self.crc32 = crc32
        with bucket.errors("start an upload"):
            self.upload_id = bucket.client.create_multipart_upload(
                Bucket=bucket.name, Key=self.key, **({"ChecksumAlgorithm": "CRC32"} if crc32 else {})
            )["UploadId"]
        self.state = encode_state(self.key, self.upload_id)
        self.number = 1
        self.part_size = part_size_for(base_part_size, expected_size, 1)
        self.spare: list[bytearray] = []  # sent part buffers, to be filled again
        self.buffer = bytearray()  # the part being filled; taken when its first byte comes
        self.filled = 0  # bytes of the current part in self.buffer
        self.sender = PartSender(self)

    def _new_buffer(self) -> bytearray:
        """A buffer of the current part size: a spare one if it fits, else a new one."""
        while self.spare:
            buffer = self.spare.pop()
            if len(buffer) == self.part_size:
                return buffer
        return bytearray(self.part_size)

    def adopt(self, kept_key: str, kept_size: int) -> None:
        """Start from an earlier attempt's kept object: whole parts are copied inside the store,
        the rest is read back into the part buffer."""
        self.kept_key, self.kept_size = kept_key, kept_size
        self.state = encode_state(self.key, self.upload_id, kept_key)
        bucket, client = self.bucket.name, self.bucket.client
        whole = kept_size // self.part_size
        for number in range(1, whole + 1):
            first = (number - 1) * self.part_size
            with self._upload_errors("copy kept data"):
                reply = client.upload_part_copy(
                    Bucket=bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": kept_key},
                    CopySourceRange=f"bytes={first}-{first + self.part_size - 1}")
            self.parts.append(self._part(number, reply["CopyPartResult"]))
        self.number = whole + 1
        rest = kept_size - whole * self.part_size
        if rest:
            for piece in S3Range(self.bucket, kept_key, whole * self.part_size, rest):
                self._fill(memoryview(piece))
        self.offset = kept_size

    def _part(self, number: int, reply: dict) -> dict:
        """The entry of a stored part in the completion request."""
        part = {"PartNumber": number, "ETag": reply["ETag"]}
        if self.crc32 and reply.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = reply["ChecksumCRC32"]
        return part

    def kept(self) -> Iterator[bytes]:
        """The kept prefix, read back for the digests; the kept object is dropped afterwards."""
        if not getattr(self, "kept_key", None):
            return
        reader = S3Range(self.bucket, self.kept_key, 0, self.kept_size)
        if reader.size != self.kept_size:
            reader.close()
            raise DataMissing(self.kept_key)
        yield from reader
        with self.bucket.errors("drop kept data"):
            self.bucket.client.delete_object(Bucket=self.bucket.name, Key=self.kept_key)

    def write(self, data: memoryview) -> None:
        """Add bytes to the current part; a full part goes to the sender."""
        self.offset += len(data)
        self._fill(data)

    def _fill(self, data: memoryview) -> None:
        while data:
            if not self.buffer:
                self.buffer = self._new_buffer()
            count = min(self.part_size - self.filled, len(data))
            self.buffer[self.filled:self.filled + count] = data[:count]
            self.filled += count
            data = data[count:]
            if self.filled == self.part_size:
                self._hand_off()

    def _hand_off(self) -> None:
        body = self.buffer  # handed over, never copied
        if self.filled < len(body):  # the last part: cut to its length, in place
            del body[self.filled:]
        self.sender.put(self.number, body)
        self.number += 1
        self.part_size = part_size_for(self.base_part_size, self.expected, self.number)
        self.buffer, self.filled = bytearray(), 0

    def send_part(self, number: int, body: bytearray) -> None:
        """Upload one part (runs in the sender thread)."""
        extra = {}
        if self.crc32:  # zlib releases the GIL while it sums
            extra["ChecksumCRC32"] = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        with self._upload_errors("store a part"):
            reply = self.bucket.client.upload_part(Bucket=self.bucket.name, Key=self.key,
                                                  UploadId=self.upload_id, PartNumber=number, Body=body,
                                                  **extra)
        self.parts.append(self._part(number, {**extra, **reply}))

    @contextlib.contextmanager
    def _upload_errors(self, action: str):
        """Store errors, where a vanished multipart upload means someone aborted it."""
        try:
            with self.bucket.errors(action):
                yield
        except DataMissing:
            raise StoreUnavailable(f"Store '{self.bucket.store_id}': the upload was aborted in the store.") from None

    def commit(self) -> None:
        """Send the last part and complete the upload: the object appears whole, at once."""
        try:
            if self.filled or self.number == 1:  # an empty image is one empty part
                self._hand_off()
            self._drain()
            self.sender.check()
            parts = sorted(self.parts, key=lambda p: p["PartNumber"])
            with self._upload_errors("finish the upload"):
                self.bucket.client.complete_multipart_upload(
                    Bucket=self.bucket.name, Key=self.key, UploadId=self.upload_id,
                    MultipartUpload={"Parts": parts})
            self.closed = True
        except BaseException:
            self.abort()
            raise

    def suspend(self) -> str | None:
        """Keep what was received: complete the upload as the attempt's object, to be
        continued later; returns the state naming it (None if nothing could be kept)."""
        if self.offset == 0:
            self.abort()
            return None
        try:
            self.commit()
        except Exception as exc:
            log.warning("store %s: could not keep the bytes of an interrupted upload: %s", self.bucket.store_id, exc)
            return None
        return encode_state(self.key)

    def _drain(self) -> None:
        """Wait for the parts on their way, then free the part buffers at once."""
        self.sender.finish()
        self.spare.clear()
        self.buffer, self.filled = bytearray(), 0

    def abort(self) -> None:
        """Abort the multipart upload (its parts are dropped by the store); never raises."""
        self._drain()
        if self.closed:
            return
        self.closed = True
        self.bucket.abort_upload(self.key, self.upload_id)
