"""IMAGEDATA_STORES and IMAGEDATA_STAGING_STORE: which stores there are, and where each
keeps its data (a folder, or an S3 bucket and prefix)."""
from __future__ import annotations

import dataclasses
import os
import re
from urllib.parse import parse_qs, unquote, urlsplit

from imagedata.config.values import ConfigError

STORE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_STORE_PREFIX = "os_glance_"
STAGING_STORE_ID = "os_glance_staging_store"  # Glance's reserved id of its staging store
# Two part buffers per S3 upload (one filling, one being sent): 8 MiB parts keep a worker's
# growth during an upload near 22 MB; 16 MiB parts made it 38 MB, for no measurable speed.
DEFAULT_PART_SIZE = 8 << 20


@dataclasses.dataclass(frozen=True)
class S3Config:
    """Where an S3 store lives and how to sign in (secrets never appear in its repr)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    checksum: str = "crc32"  # how each part's bytes are protected on the way: see S3_CHECKSUMS
    access_key: str | None = dataclasses.field(default=None, repr=False)
    secret_key: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    """One configured store: its id, driver type and where it keeps data."""

    store_id: str
    kind: str  # "file" or "s3"
    path: str = ""  # file stores: the absolute root directory
    s3: S3Config | None = None  # s3 stores: bucket, prefix, endpoint...


def parse_stores(value: str, env: dict | None = None, reserved_ok: bool = False) -> tuple[StoreConfig, ...]:
    """Parse ``id=file:///abs/path,id2=s3://bucket/prefix?endpoint=...`` into store configs."""
    stores = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        store_id, sep, url = entry.partition("=")
        store_id = store_id.strip()
        if not sep or not STORE_ID_RE.match(store_id):
            raise ConfigError(f"IMAGEDATA_STORES: bad entry {entry!r}")
        if store_id.startswith(RESERVED_STORE_PREFIX) and not reserved_ok:
            raise ConfigError(f"IMAGEDATA_STORES: {store_id!r} is a reserved id")
        if any(s.store_id == store_id for s in stores):
            raise ConfigError(f"IMAGEDATA_STORES: {store_id!r} given twice")
        parts = urlsplit(url.strip())
        if parts.scheme == "file":
            stores.append(_file_store(store_id, parts))
        elif parts.scheme == "s3":
            stores.append(StoreConfig(store_id, "s3", s3=_s3_store(store_id, parts, env or {})))
        else:
            raise ConfigError(f"IMAGEDATA_STORES: {store_id} must be a file:/// or s3:// URL")
    if not stores:
        raise ConfigError("IMAGEDATA_STORES names no store")
    return tuple(stores)


def _file_store(store_id: str, parts) -> StoreConfig:
    if parts.netloc not in ("", "localhost") or parts.query:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id} must be a file:///absolute/path URL")
    path = unquote(parts.path)
    if not os.path.isabs(path):
        raise ConfigError(f"IMAGEDATA_STORES: {store_id} path must be absolute")
    return StoreConfig(store_id, "file", os.path.normpath(path))


def staging_store(value: str, default: StoreConfig, env: dict) -> StoreConfig:
    """IMAGEDATA_STAGING_STORE (a file:/// or s3:// URL), or by default the default store's
    ``staging`` sub-folder (file) or ``staging/`` sub-prefix (S3)."""
    if value.strip():
        (cfg,) = parse_stores(f"{STAGING_STORE_ID}={value.strip()}", env, reserved_ok=True)
        return cfg
    if default.kind == "file":
        return StoreConfig(STAGING_STORE_ID, "file", os.path.join(default.path, "staging"))
    return StoreConfig(STAGING_STORE_ID, "s3", s3=dataclasses.replace(default.s3, prefix=f"{default.s3.prefix}staging/"))


S3_QUERY_KEYS = ("endpoint", "region", "part_size", "checksum")
# How the bytes of each part are protected on their way to the store. "crc32": an S3 CRC32
# checksum per part (x-amz-checksum-crc32, itself signed), checked by the store, and an
# unsigned payload; "sha256": the payload signed with SHA-256 (SigV4), for S3 services
# that do not know the newer checksum headers. CRC32 costs a third of SHA-256 here.
S3_CHECKSUMS = ("crc32", "sha256")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _s3_store(store_id: str, parts, env: dict) -> S3Config:
    """``s3://bucket/prefix?endpoint=http://host:port&region=r&part_size=bytes&checksum=crc32``."""
    if "@" in parts.netloc:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: credentials do not belong in the URL; set "
                          "IMAGEDATA_S3_ACCESS_KEY_ID and IMAGEDATA_S3_SECRET_ACCESS_KEY")
    bucket = parts.netloc
    if not BUCKET_RE.match(bucket):
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: {bucket!r} is not a valid bucket name")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(S3_QUERY_KEYS))
    if unknown:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: unknown option {unknown[0]!r} "
                          f"(known: {', '.join(S3_QUERY_KEYS)})")
    option = {k: v[-1] for k, v in query.items()}
    endpoint = option.get("endpoint") or None
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: endpoint must be an http:// or https:// URL")
    prefix = unquote(parts.path).strip("/")
    if any(piece in ("", ".", "..") for piece in prefix.split("/")) and prefix:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: bad prefix {prefix!r}")
    part_size = DEFAULT_PART_SIZE
    if "part_size" in option:
        try:
            part_size = int(option["part_size"])
        except ValueError:
            raise ConfigError(f"IMAGEDATA_STORES: {store_id}: part_size must be a number of bytes") from None
        if not 5 << 20 <= part_size <= 5 << 30:
            raise ConfigError(f"IMAGEDATA_STORES: {store_id}: part_size must be from 5 MiB to 5 GiB")
    checksum = option.get("checksum") or "crc32"
    if checksum not in S3_CHECKSUMS:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: checksum must be one of {', '.join(S3_CHECKSUMS)}")
    return S3Config(bucket=bucket, prefix=f"{prefix}/" if prefix else "", endpoint=endpoint,
                    region=option.get("region") or None, part_size=part_size, checksum=checksum,
                    access_key=env.get("IMAGEDATA_S3_ACCESS_KEY_ID") or None,
                    secret_key=env.get("IMAGEDATA_S3_SECRET_ACCESS_KEY") or None)
