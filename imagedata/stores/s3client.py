"""boto3 plumbing for the S3 store: the client, the bucket handle, writer states, ranged reads.

The writer and the reader get an :class:`S3Bucket` (client, bucket, prefix, error
translation, key naming), never the store. boto3 is an optional extra
(``pip install 'imagedata[s3]'``); it is imported only when an S3 store is configured.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from typing import Iterator

from imagedata.config import ConfigError, S3Config
from imagedata.errors import StoreFull, StoreUnavailable
from imagedata.stores.base import READ_PIECE, DataMissing, split_data_name

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5
FULL_CODES = {"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "InsufficientStorage", "StorageFull"}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
# Pieces of a download, just under 1 MiB: each read is a new bytes object (the server
# wants bytes), and at 1 MiB and more glibc maps and unmaps each one (the workers' fixed
# mmap threshold, gunicorn.conf.py), which cost a quarter of a worker's CPU in page faults.
S3_PIECE = READ_PIECE - (64 << 10)
READ_TIMEOUT = 60


def make_client(cfg: S3Config):
    """A boto3 S3 client with bounded timeouts and path-style addressing.

    Credentials: the configured pair, else boto3's standard chain (AWS_ACCESS_KEY_ID,
    shared files, instance roles...).
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError("an s3:// store needs boto3: pip install 'imagedata[s3]'") from None
    config = Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                    retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=64,
                    # With checksum=crc32 the writer sends a CRC32 per part, so the payload
                    # need not be signed too (SHA-256 over every byte again).
                    s3={"addressing_style": "path", "payload_signing_enabled": cfg.checksum == "sha256"},
                    # No checksums added by botocore: the writer adds its own per part (above),
                    # md5 and the image digest are the service's, and not every S3 service
                    # speaks the newer checksum headers.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    session = boto3.session.Session(aws_access_key_id=cfg.access_key, aws_secret_access_key=cfg.secret_key,
                                    region_name=cfg.region or None)
    return session.client("s3", endpoint_url=cfg.endpoint or None, config=config)


@contextlib.contextmanager
def client_errors(store_id: str, action: str, full_codes: set, missing_codes: set):
    """Translate boto3 errors raised inside the block into the store contract's errors."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in missing_codes or code == "NoSuchUpload":
            raise DataMissing(code) from None
        if code in full_codes:
            raise StoreFull(f"Image storage media is full: store '{store_id}' has no room for this image.") from None
        raise StoreUnavailable(f"Store '{store_id}' could not {action} ({code or 'error'}).") from None
    except BotoCoreError as exc:
        raise StoreUnavailable(f"Store '{store_id}' cannot be reached: could not {action} "
                               f"({type(exc).__name__}).") from None


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


@dataclasses.dataclass(frozen=True)
class S3Bucket:
    """One store's place in an S3 service: the client, the bucket and the key prefix."""

    store_id: str
    client: object
    name: str
    prefix: str

    def errors(self, action: str):
        """A context that turns boto3 errors into domain errors naming the store."""
        return client_errors(self.store_id, action, FULL_CODES, MISSING_CODES)

    def key_of(self, name: str) -> str:
        """The object key of a name inside the prefix."""
        return f"{self.prefix}{name}"

    def image_of(self, key: str) -> str | None:
        """The image id of a key this service named inside the prefix, else None."""
        if not key.startswith(self.prefix):
            return None
        parsed = split_data_name(key[len(self.prefix):])
        return parsed[0] if parsed else None

    def delete_key(self, key: str) -> bool:
        """Delete one object; False when there was none."""
        try:
            with self.errors("check data"):
                self.client.head_object(Bucket=self.name, Key=key)
        except DataMissing:
            return False
        with self.errors("delete data"):
            self.client.delete_object(Bucket=self.name, Key=key)
        return True

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Abort one multipart upload; False if it was gone or the service did not answer."""
        try:
            # Some services answer an abort of an unknown upload with success: ask first.
            with self.errors("look up an upload"):
                self.client.list_parts(Bucket=self.name, Key=key, UploadId=upload_id, MaxParts=1)
            with self.errors("abort an upload"):
                self.client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)
            return True
        except DataMissing:
            return False
        except StoreUnavailable as exc:
            log.warning("store %s: could not abort upload of %s: %s", self.store_id, key, exc.message)
            return False

    def uploads_on(self, key: str) -> list[str]:
        """The ids of the multipart uploads open on exactly ``key``."""
        with self.errors("list uploads"):
            uploads = self.client.list_multipart_uploads(Bucket=self.name, Prefix=key).get("Uploads", [])
        return [u["UploadId"] for u in uploads if u["Key"] == key]


class S3Range:
    """An opened ranged GET: the object's size is known, the bytes stream on iteration."""

    accel_name = None  # nginx cannot serve objects from here

    def __init__(self, bucket: S3Bucket, key: str, start: int, length: int):
        self.bucket = bucket
        self.length = length
        self.body = None
        self.key = key
        with bucket.errors("read data"):
            if length == 0:
                self.size = bucket.client.head_object(Bucket=bucket.name, Key=key)["ContentLength"]
                return
            reply = bucket.client.get_object(Bucket=bucket.name, Key=key, Range=f"bytes={start}-{start + length - 1}")
        self.body = reply["Body"]
        self.size = int(reply.get("ContentRange", "/").rsplit("/", 1)[1] or reply["ContentLength"])

    def local_file(self):
        """No local file: the download layer streams the range."""
        return None

    def __iter__(self) -> Iterator[bytes]:
        """The range in pieces of at most S3_PIECE bytes; an early end raises (never a silent
        short body)."""
        remaining = self.length
        while remaining > 0 and self.body is not None:
            with self.bucket.errors("read data"):
                data = self.body.read(min(S3_PIECE, remaining))
            if not data:
                raise StoreUnavailable(f"Store '{self.bucket.store_id}' ended the data early.")
            remaining -= len(data)
            yield data
        self.close()

    def close(self) -> None:
        """Release the connection (idempotent)."""
        body, self.body = self.body, None
        if body is not None:
            body.close()
