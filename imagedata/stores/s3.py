"""S3-compatible object store (Ceph RGW, SeaweedFS, MinIO, AWS S3) through boto3.

Data lives at ``<prefix><image id>.<upload attempt>``. An upload is a multipart upload
streamed from the request one part buffer at a time (while one part is sent, the next
is received), completed onto its final key: until then nothing is visible, and a crash
leaves only the multipart upload, which the writer's state names so any host can abort
it. Reads are ranged GETs streamed in 1 MiB pieces.
"""
from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from typing import Iterator

from imagedata.errors import StoreUnavailable
from imagedata.stores.base import (READ_PIECE, CachedHealth, DataMissing, StoreHealth, StoredObject,
                                   data_name, split_data_name)
from imagedata.config import ConfigError, S3Config
from imagedata.stores.s3client import client_errors, make_client

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
MAX_PART = 5 << 30
MIB = 1 << 20
FULL_CODES = {"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "InsufficientStorage", "StorageFull"}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def part_size_for(base: int, expected: int | None, part_number: int) -> int:
    """The size of part ``part_number`` (1-based).

    A declared size gets one fixed size that fits it in 10,000 parts. A body of unknown
    size starts at ``base`` and doubles every 1,000 parts, which keeps the buffer small
    for common images and still fits a 1 TiB image (16 MiB base: 15.6 GiB at 16 MiB,
    47 GiB at 32 MiB, ...; 10,000 parts hold 16 TB).
    """
    if expected is not None:
        needed = -(-expected // MAX_PARTS)
        return min(MAX_PART, max(base, -(-needed // MIB) * MIB))
    return min(MAX_PART, base << ((part_number - 1) // 1000))


class PartSender:
    """Sends full part buffers from a helper thread, one at a time, while the next fills."""

    def __init__(self, writer: "S3Writer"):
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="s3-parts", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            number, body = item
            if self.error is not None:
                continue
            try:
                self.writer.send_part(number, body)
            except BaseException as exc:
                self.error = exc

    def put(self, number: int, body: bytes) -> None:
        """Queue one part (blocks while the previous one is still being sent)."""
        self.check()
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


class S3Writer:
    """One upload attempt as a multipart upload onto the attempt's final key."""

    def __init__(self, store: "S3Store", image_id: str, attempt: str, expected_size: int | None):
        self.store = store
        self.key = store.key_of(data_name(image_id, attempt))
        self.expected = expected_size
        self.offset = 0
        self.parts: list[dict] = []
        self.closed = False
        with store.errors("start an upload"):
            self.upload_id = store.client.create_multipart_upload(Bucket=store.cfg.bucket, Key=self.key)["UploadId"]
        self.state = encode_state(self.key, self.upload_id)
        self.number = 1
        self.part_size = part_size_for(store.cfg.part_size, expected_size, 1)
        self.buffer = bytearray()
        self.sender = PartSender(self)

    def adopt(self, kept_key: str, kept_size: int) -> None:
        """Start from an earlier attempt's kept object: whole parts are copied inside the store,
        the rest is read back into the part buffer."""
        self.kept_key, self.kept_size = kept_key, kept_size
        self.state = encode_state(self.key, self.upload_id, kept_key)
        bucket, client = self.store.cfg.bucket, self.store.client
        whole = kept_size // self.part_size
        for number in range(1, whole + 1):
            first = (number - 1) * self.part_size
            with self._upload_errors("copy kept data"):
                reply = client.upload_part_copy(
                    Bucket=bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": kept_key},
                    CopySourceRange=f"bytes={first}-{first + self.part_size - 1}")
            self.parts.append({"PartNumber": number, "ETag": reply["CopyPartResult"]["ETag"]})
        self.number = whole + 1
        rest = kept_size - whole * self.part_size
        if rest:
            tail = S3Range(self.store, kept_key, whole * self.part_size, rest)
            for piece in tail:
                self.buffer += piece
        self.offset = kept_size

    def kept(self) -> Iterator[bytes]:
        """The kept prefix, read back for the digests; the kept object is dropped afterwards."""
        if not getattr(self, "kept_key", None):
            return
        reader = S3Range(self.store, self.kept_key, 0, self.kept_size)
        if reader.size != self.kept_size:
            reader.close()
            raise DataMissing(self.kept_key)
        yield from reader
        with self.store.errors("drop kept data"):
            self.store.client.delete_object(Bucket=self.store.cfg.bucket, Key=self.kept_key)

    def write(self, data: memoryview) -> None:
        """Add bytes to the current part; a full part goes to the sender."""
        self.offset += len(data)
        while data:
            room = self.part_size - len(self.buffer)
            self.buffer += data[:room]
            data = data[room:]
            if len(self.buffer) >= self.part_size:
                self._hand_off()

    def _hand_off(self) -> None:
        body, self.buffer = bytes(self.buffer), bytearray()
        self.sender.put(self.number, body)
        self.number += 1
        self.part_size = part_size_for(self.store.cfg.part_size, self.expected, self.number)

    def send_part(self, number: int, body: bytes) -> None:
        """Upload one part (runs in the sender thread)."""
        with self._upload_errors("store a part"):
            reply = self.store.client.upload_part(Bucket=self.store.cfg.bucket, Key=self.key,
                                                  UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"PartNumber": number, "ETag": reply["ETag"]})

    @contextlib.contextmanager
    def _upload_errors(self, action: str):
        """Store errors, where a vanished multipart upload means someone aborted it."""
        try:
            with self.store.errors(action):
                yield
        except DataMissing:
            raise StoreUnavailable(f"Store '{self.store.store_id}': the upload was aborted in the store.") from None

    def commit(self) -> None:
        """Send the last part and complete the upload: the object appears whole, at once."""
        try:
            if self.buffer or self.number == 1:  # an empty image is one empty part
                self._hand_off()
            self.sender.finish()
            self.sender.check()
            parts = sorted(self.parts, key=lambda p: p["PartNumber"])
            with self._upload_errors("finish the upload"):
                self.store.client.complete_multipart_upload(
                    Bucket=self.store.cfg.bucket, Key=self.key, UploadId=self.upload_id,
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
            log.warning("store %s: could not keep a partial upload: %s", self.store.store_id, exc)
            return None
        return encode_state(self.key)

    def abort(self) -> None:
        """Abort the multipart upload (its parts are dropped by the store); never raises."""
        self.buffer = bytearray()
        self.sender.finish()
        if self.closed:
            return
        self.closed = True
        self.store.abort_upload(self.key, self.upload_id)


def encode_state(key: str, upload_id: str | None = None, kept: str | None = None) -> str:
    """The writer state recorded on the image row: the multipart upload to abort and/or the
    object an interrupted upload kept."""
    value = {"key": key}
    if upload_id:
        value["upload_id"] = upload_id
    if kept:
        value["kept"] = kept
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def decode_state(state: str) -> dict | None:
    """The keys and upload id of a recorded writer state, or None if it is not an S3 one."""
    try:
        value = json.loads(state)
    except (ValueError, TypeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("key"), str):
        return None
    return {k: str(v) for k, v in value.items() if k in ("key", "upload_id", "kept")}


class S3Range:
    """An opened ranged GET: the object's size is known, the bytes stream on iteration."""

    def __init__(self, store: "S3Store", key: str, start: int, length: int):
        self.store = store
        self.length = length
        self.body = None
        self.key = key
        with store.errors("read data"):
            if length == 0:
                self.size = store.client.head_object(Bucket=store.cfg.bucket, Key=key)["ContentLength"]
                return
            reply = store.client.get_object(Bucket=store.cfg.bucket, Key=key,
                                            Range=f"bytes={start}-{start + length - 1}")
        self.body = reply["Body"]
        self.size = int(reply.get("ContentRange", "/").rsplit("/", 1)[1] or reply["ContentLength"])

    def __iter__(self) -> Iterator[bytes]:
        """The range in pieces of at most 1 MiB; an early end raises (never a silent short body)."""
        remaining = self.length
        while remaining > 0 and self.body is not None:
            with self.store.errors("read data"):
                data = self.body.read(min(READ_PIECE, remaining))
            if not data:
                raise StoreUnavailable(f"Store '{self.store.store_id}' ended the data early.")
            remaining -= len(data)
            yield data
        self.close()

    def close(self) -> None:
        """Release the connection (idempotent)."""
        if self.body is not None:
            self.body.close()
            self.body = None


class S3Store:
    """A store kept under one prefix of one bucket of an S3-compatible service."""

    kind = "s3"

    def __init__(self, store_id: str, cfg: S3Config, client=None):
        self.store_id = store_id
        self.cfg = cfg
        self.client = client or make_client(cfg)
        self._health = CachedHealth(self._probe, ttl=5.0)

    def errors(self, action: str):
        """A context that turns boto3 errors into domain errors naming this store."""
        return client_errors(self.store_id, action, FULL_CODES, MISSING_CODES)

    def prepare(self) -> None:
        """Check the bucket once at start-up: a missing bucket is a configuration error."""
        problem = self._probe()
        if problem.problem and problem.problem.startswith("bucket"):
            raise ConfigError(f"store {self.store_id}: {problem.problem}")
        if problem.problem:
            log.warning("store %s: %s", self.store_id, problem.problem)

    def key_of(self, name: str) -> str:
        """The object key of a name inside this store's prefix."""
        return f"{self.cfg.prefix}{name}"

    def open_writer(self, image_id: str, attempt: str, expected_size: int | None) -> S3Writer:
        """Start a multipart upload for one upload attempt."""
        return S3Writer(self, image_id, attempt, expected_size)

    def open_range(self, image_id: str, attempt: str, start: int, length: int) -> S3Range:
        """Start a ranged GET of an attempt's data (its size comes with the answer)."""
        return S3Range(self, self.key_of(data_name(image_id, attempt)), start, length)

    def local_file(self, reader):
        """No local file: the download layer streams the range."""
        return None

    def accel_name(self, image_id: str, attempt: str) -> str | None:
        """nginx cannot serve objects from here."""
        return None

    def delete(self, image_id: str, attempt: str) -> bool:
        """Delete an attempt's object; False when there was none."""
        return self._delete_key(self.key_of(data_name(image_id, attempt)))

    def resume_writer(self, image_id: str, attempt: str, kept_state: str, kept_size: int,
                      expected_size: int | None) -> S3Writer:
        """Continue the object an interrupted attempt kept, as a new attempt's multipart upload."""
        decoded = decode_state(kept_state or "") or {}
        kept_key = decoded.get("key", "")
        name = kept_key[len(self.cfg.prefix):] if kept_key.startswith(self.cfg.prefix) else ""
        parsed = split_data_name(name)
        if "upload_id" in decoded or parsed is None or parsed[0] != image_id:
            raise DataMissing(kept_state)
        with self.errors("check kept data"):
            size = self.client.head_object(Bucket=self.cfg.bucket, Key=kept_key)["ContentLength"]
        if size != kept_size:
            raise DataMissing(kept_state)
        writer = S3Writer(self, image_id, attempt, expected_size)
        try:
            writer.adopt(kept_key, kept_size)
        except BaseException:
            writer.abort()
            raise
        return writer

    def discard(self, state: str) -> bool:
        """Abort the multipart upload and drop the kept object a writer state names (ours only)."""
        decoded = decode_state(state or "")
        if decoded is None:
            return False
        removed = False
        if "upload_id" in decoded and self._ours(decoded["key"]):
            removed = self.abort_upload(decoded["key"], decoded["upload_id"])
        kept = decoded.get("kept") or (None if "upload_id" in decoded else decoded["key"])
        if kept and self._ours(kept):
            removed = self._delete_key(kept) or removed
        return removed

    def _ours(self, key: str) -> bool:
        return key.startswith(self.cfg.prefix) and split_data_name(key[len(self.cfg.prefix):]) is not None

    def _delete_key(self, key: str) -> bool:
        try:
            with self.errors("check data"):
                self.client.head_object(Bucket=self.cfg.bucket, Key=key)
        except DataMissing:
            return False
        with self.errors("delete data"):
            self.client.delete_object(Bucket=self.cfg.bucket, Key=key)
        return True

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Abort one multipart upload; False if it was gone or the store did not answer."""
        try:
            # Some services answer an abort of an unknown upload with success: ask first.
            with self.errors("look up an upload"):
                self.client.list_parts(Bucket=self.cfg.bucket, Key=key, UploadId=upload_id, MaxParts=1)
            with self.errors("abort an upload"):
                self.client.abort_multipart_upload(Bucket=self.cfg.bucket, Key=key, UploadId=upload_id)
            return True
        except DataMissing:
            return False
        except StoreUnavailable as exc:
            log.warning("store %s: could not abort upload of %s: %s", self.store_id, key, exc.message)
            return False

    def scan(self) -> Iterator[StoredObject]:
        """Objects and unfinished multipart uploads directly under the prefix."""
        now = time.time()
        bucket, prefix = self.cfg.bucket, self.cfg.prefix
        with self.errors("list objects"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/") or "/" in item["Key"][len(prefix):]:
                        continue  # a folder marker, or an object under a deeper prefix (another store)
                    parsed = split_data_name(item["Key"][len(prefix):])
                    kind, image_id, attempt = ("data",) + parsed if parsed else ("unknown", "", "")
                    yield StoredObject(item["Key"], kind, image_id, attempt, item["Size"],
                                       now - item["LastModified"].timestamp())
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("Uploads", []):
                    if "/" in item["Key"][len(prefix):]:
                        continue  # under a deeper prefix (another store): not every service honours Delimiter here
                    parsed = split_data_name(item["Key"][len(prefix):]) or ("", "")
                    yield StoredObject(item["Key"], "partial", parsed[0], parsed[1], 0,
                                       now - item["Initiated"].timestamp(),
                                       encode_state(item["Key"], item["UploadId"]))

    def remove_object(self, obj: StoredObject) -> bool:
        """Abort a scanned multipart upload or delete a scanned object of ours.

        Objects this service did not name are reported by scrub but never removed:
        buckets may be shared with other applications.
        """
        if obj.kind == "partial":
            return self.discard(obj.state)
        if obj.kind == "data" and obj.name.startswith(self.cfg.prefix):
            with self.errors("delete data"):
                self.client.delete_object(Bucket=self.cfg.bucket, Key=obj.name)
            return True
        return False

    def _probe(self) -> StoreHealth:
        try:
            with self.errors("check the bucket"):
                self.client.head_bucket(Bucket=self.cfg.bucket)
        except DataMissing:
            return StoreHealth(f"bucket {self.cfg.bucket!r} does not exist (create it first)")
        except StoreUnavailable as exc:
            return StoreHealth(exc.message)
        return StoreHealth(None)

    def health(self) -> StoreHealth:
        """The bucket answered a HEAD within the last few seconds."""
        return self._health.get()

    def location(self, image_id: str, attempt: str) -> str:
        """The object's URL (no credentials)."""
        return f"s3://{self.cfg.bucket}/{self.key_of(data_name(image_id, attempt))}"

    def describe(self) -> dict:
        """Bucket, prefix, endpoint and part size (credentials are never shown)."""
        return {"bucket": self.cfg.bucket, "prefix": self.cfg.prefix, "endpoint": self.cfg.endpoint or "",
                "region": self.cfg.region or "", "part_size": self.cfg.part_size}
