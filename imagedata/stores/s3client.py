"""boto3 plumbing for the S3 store: the client, error translation, writer states, ranged reads.

boto3 is an optional extra (``pip install 'imagedata[s3]'``); it is imported only when an
S3 store is configured.
"""
from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Iterator

from imagedata.config import ConfigError, S3Config
from imagedata.errors import StoreFull, StoreUnavailable
from imagedata.stores.base import READ_PIECE, DataMissing

if TYPE_CHECKING:  # the store that owns a writer or a reader
    from imagedata.stores.s3 import S3Store

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
        """The range in pieces of at most S3_PIECE bytes; an early end raises (never a silent
        short body)."""
        remaining = self.length
        while remaining > 0 and self.body is not None:
            with self.store.errors("read data"):
                data = self.body.read(min(S3_PIECE, remaining))
            if not data:
                raise StoreUnavailable(f"Store '{self.store.store_id}' ended the data early.")
            remaining -= len(data)
            yield data
        self.close()

    def close(self) -> None:
        """Release the connection (idempotent)."""
        body, self.body = self.body, None
        if body is not None:
            body.close()
