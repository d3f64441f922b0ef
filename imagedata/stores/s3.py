"""S3-compatible object store (Ceph RGW, SeaweedFS, MinIO, AWS S3) through boto3.

Data lives at ``<prefix><image id>.<upload attempt>``; uploads are multipart uploads
(``s3writer.py``), reads are ranged GETs streamed in 1 MiB pieces (``s3client.py``). Both
get the store's :class:`S3Bucket` handle, not the store.
"""
from __future__ import annotations

import logging
import time
from typing import Iterator

from imagedata.config import ConfigError, S3Config
from imagedata.errors import StoreUnavailable
from imagedata.stores.base import CachedHealth, DataMissing, Kept, StoreHealth, StoredObject, data_name, split_data_name
from imagedata.stores.s3client import S3Bucket, S3Range, decode_state, encode_state, make_client
from imagedata.stores.s3writer import S3Writer

log = logging.getLogger(__name__)


class S3Store:
    """A store kept under one prefix of one bucket of an S3-compatible service."""

    kind = "s3"

    def __init__(self, store_id: str, cfg: S3Config, client=None):
        self.store_id = store_id
        self.cfg = cfg
        self.bucket = S3Bucket(store_id, client or make_client(cfg), cfg.bucket, cfg.prefix)
        self._health = CachedHealth(self._probe, ttl=5.0)

    def prepare(self) -> None:
        """Check the bucket once at start-up: a missing bucket is a configuration error."""
        problem = self._probe()
        if problem.problem and problem.problem.startswith("bucket"):
            raise ConfigError(f"store {self.store_id}: {problem.problem}")
        if problem.problem:
            log.warning("store %s: %s", self.store_id, problem.problem)

    def open_writer(self, image_id: str, attempt: str, expected_size: int | None,
                    kept: Kept | None = None) -> S3Writer:
        """Start a multipart upload for one upload attempt, continuing ``kept`` if given (an
        object an interrupted attempt completed with the bytes it had)."""
        kept_key = self._kept_key(image_id, kept) if kept is not None else None
        writer = S3Writer(self.bucket, image_id, attempt, expected_size, self.cfg.part_size,
                          self.cfg.checksum == "crc32")
        if kept_key is not None:
            try:
                writer.adopt(kept_key, kept.size)
            except BaseException:
                writer.abort()
                raise
        return writer

    def _kept_key(self, image_id: str, kept: Kept) -> str:
        """The key of the kept object, checked to be this image's and of the kept size."""
        decoded = decode_state(kept.state or "") or {}
        kept_key = decoded.get("key", "")
        if "upload_id" in decoded or self.bucket.image_of(kept_key) != image_id:
            raise DataMissing(kept.state)
        with self.bucket.errors("check kept data"):
            size = self.bucket.client.head_object(Bucket=self.bucket.name, Key=kept_key)["ContentLength"]
        if size != kept.size:
            raise DataMissing(kept.state)
        return kept_key

    def open_range(self, image_id: str, attempt: str, start: int, length: int) -> S3Range:
        """Start a ranged GET of an attempt's data (its size comes with the answer)."""
        return S3Range(self.bucket, self.bucket.key_of(data_name(image_id, attempt)), start, length)

    def remove(self, image_id: str, attempt: str, state: str | None = None) -> bool:
        """Abort every multipart upload open on the attempt's key (found by listing, so an
        upload started before its state was recorded goes too), abort the one ``state``
        names, delete the kept object it names and the attempt's final object."""
        key = self.bucket.key_of(data_name(image_id, attempt))
        removed = False
        decoded = decode_state(state or "") or {}
        if "upload_id" in decoded and self.bucket.image_of(decoded["key"]) == image_id:
            removed = self.bucket.abort_upload(decoded["key"], decoded["upload_id"])
        try:
            uploads = self.bucket.uploads_on(key)
        except DataMissing:
            uploads = []
        removed = any([self.bucket.abort_upload(key, upload_id) for upload_id in uploads]) or removed
        kept = decoded.get("kept") or (None if "upload_id" in decoded else decoded.get("key"))
        if kept and self.bucket.image_of(kept) == image_id:
            removed = self.bucket.delete_key(kept) or removed
        return self.bucket.delete_key(key) or removed

    def scan(self) -> Iterator[StoredObject]:
        """Objects and unfinished multipart uploads directly under the prefix."""
        now = time.time()
        client, bucket, prefix = self.bucket.client, self.bucket.name, self.bucket.prefix
        with self.bucket.errors("list objects"):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/") or "/" in item["Key"][len(prefix):]:
                        continue  # a folder marker, or an object under a deeper prefix (another store)
                    parsed = split_data_name(item["Key"][len(prefix):])
                    kind, image_id, attempt = ("data",) + parsed if parsed else ("unknown", "", "")
                    yield StoredObject(item["Key"], kind, image_id, attempt, item["Size"],
                                       now - item["LastModified"].timestamp())
            for page in client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("Uploads", []):
                    if "/" in item["Key"][len(prefix):]:
                        continue  # under a deeper prefix (another store): not every service honours Delimiter here
                    parsed = split_data_name(item["Key"][len(prefix):]) or ("", "")
                    yield StoredObject(item["Key"], "unfinished", parsed[0], parsed[1], 0,
                                       now - item["Initiated"].timestamp(),
                                       encode_state(item["Key"], item["UploadId"]))

    def remove_object(self, obj: StoredObject) -> bool:
        """Abort a scanned multipart upload or delete a scanned object of ours.

        Objects this service did not name are reported by scrub but never removed:
        buckets may be shared with other applications.
        """
        if obj.kind == "unfinished":
            decoded = decode_state(obj.state) or {}
            if "upload_id" in decoded and self.bucket.image_of(decoded["key"]) is not None:
                return self.bucket.abort_upload(decoded["key"], decoded["upload_id"])
            return False
        if obj.kind == "data" and self.bucket.image_of(obj.name) is not None:
            with self.bucket.errors("delete data"):
                self.bucket.client.delete_object(Bucket=self.bucket.name, Key=obj.name)
            return True
        return False

    def _probe(self) -> StoreHealth:
        try:
            with self.bucket.errors("check the bucket"):
                self.bucket.client.head_bucket(Bucket=self.bucket.name)
        except DataMissing:
            return StoreHealth(f"bucket {self.bucket.name!r} does not exist (create it first)")
        except StoreUnavailable as exc:
            return StoreHealth(exc.message)
        return StoreHealth(None)

    def health(self) -> StoreHealth:
        """The bucket answered a HEAD within the last few seconds."""
        return self._health.get()

    def location(self, image_id: str, attempt: str) -> str:
        """The object's URL (no credentials)."""
        return f"s3://{self.bucket.name}/{self.bucket.key_of(data_name(image_id, attempt))}"

    def describe(self) -> dict:
        """Bucket, prefix, endpoint and part size (credentials are never shown)."""
        return {"bucket": self.cfg.bucket, "prefix": self.cfg.prefix, "endpoint": self.cfg.endpoint or "",
                "region": self.cfg.region or "", "part_size": self.cfg.part_size}
