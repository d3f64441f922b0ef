"""boto3 plumbing for the S3 store: its settings, the client, and error translation.

boto3 is an optional extra (``pip install 'imagedata[s3]'``); it is imported only when an
S3 store is configured.
"""
from __future__ import annotations

import contextlib

from imagedata.config import ConfigError, S3Config
from imagedata.errors import StoreFull, StoreUnavailable
from imagedata.stores.base import DataMissing

CONNECT_TIMEOUT = 5
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
                    s3={"addressing_style": "path"},
                    # Checksums only where S3 requires them: md5 and the image digest
                    # are computed by the service itself, and not every S3 service speaks
                    # the newer checksum headers.
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
