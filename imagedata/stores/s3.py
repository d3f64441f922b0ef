"""S3-compatible object store (Ceph RGW, SeaweedFS, MinIO, AWS S3) through boto3.

Data lives at ``<prefix><image id>.<upload attempt>``; uploads are multipart uploads
(``s3writer.py``), reads are ranged GETs streamed in 1 MiB pieces (``s3client.py``).
"""
from __future__ import annotations

import logging
import time
from typing import Iterator

from imagedata.config import ConfigError, S3Config
from imagedata.errors import StoreUnavailable
from imagedata.stores.base import CachedHealth, DataMissing, StoreHealth, StoredObject, data_name, split_data_name
from imagedata.stores.s3client import (FULL_CODES, MISSING_CODES, S3Range, client_errors, decode_state, encode_state,
                                       make_client)
from imagedata.stores.s3writer import S3Writer

log = logging.getLogger(__name__)


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

    def discard_attempt(self, image_id: str, attempt: str) -> bool:
        """Abort every multipart upload open on the attempt's key (one, unless a crash repeated)."""
        key = self.key_of(data_name(image_id, attempt))
        try:
            with self.errors("list uploads"):
                uploads = self.client.list_multipart_uploads(Bucket=self.cfg.bucket, Prefix=key).get("Uploads", [])
        except (DataMissing, StoreUnavailable):
            return False
        found = [u["UploadId"] for u in uploads if u["Key"] == key]
        return any([self.abort_upload(key, upload_id) for upload_id in found])

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
