"""The ``store`` fixture: every contract test runs once per driver, against the real thing."""
from __future__ import annotations

import uuid

import pytest

from imagedata.config import parse_stores
from imagedata.stores.filesystem import FilesystemStore

DRIVERS = ("file", "s3")


@pytest.fixture(scope="session")
def contract_bucket(seaweedfs):
    """One bucket for the contract tests; each test gets its own prefix in it."""
    return seaweedfs.make_bucket("contract")


def make_s3_store(seaweedfs, bucket: str, prefix: str, store_id: str = "s3", part_size: int = 5 << 20,
                  **options: str):
    """An S3 store configured exactly as IMAGEDATA_STORES would configure it (``options``:
    more store URL options, such as checksum=sha256)."""
    from imagedata.stores.s3 import S3Store

    url = f"{seaweedfs.store_url(bucket, prefix)}&part_size={part_size}"
    url += "".join(f"&{name}={value}" for name, value in options.items())
    cfg = parse_stores(f"{store_id}={url}", seaweedfs.env())[0]
    store = S3Store(cfg.store_id, cfg.s3)
    store.prepare()
    return store


@pytest.fixture(params=DRIVERS)
def store(request, tmp_path):
    """A fresh, empty store of each driver."""
    if request.param == "file":
        fs = FilesystemStore("file", str(tmp_path / "file"))
        fs.prepare()
        return fs
    seaweedfs = request.getfixturevalue("seaweedfs")
    bucket = request.getfixturevalue("contract_bucket")
    return make_s3_store(seaweedfs, bucket, f"t-{uuid.uuid4().hex[:12]}")
