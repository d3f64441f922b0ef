"""One copy of an import: bytes from a source into a store, checked on the way.

The same checks as PUT /file run over every byte: md5 and the image digest (compared with
what the image records, when it records something already), the disk-format inspector, the
image size cap and the project's quota. The store's writer is recorded on the image row
before the first byte, so a crash leaves nothing that recovery cannot find.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable

from imagedata.errors import BadRequest, TooLarge
from imagedata.service import lifecycle
from imagedata.service.digest import ParallelDigest
from imagedata.service.formats import FormatSniffer, check_format, detected_format
from imagedata.service.heartbeat import Heartbeat
from imagedata.service.lifecycle import Attempt
from imagedata.stores.base import Store

PROGRESS_EVERY = 1.0  # seconds between progress reports


@dataclasses.dataclass(frozen=True)
class Expected:
    """What the copied bytes must be (None: not known yet; the first copy learns it)."""

    size: int | None = None
    md5: str | None = None
    digest: str | None = None
    algo: str | None = None  # of ``digest``: the image's os_hash_algo (None: the service's)


@dataclasses.dataclass(frozen=True)
class Copied:
    """What was committed: its size, digests and virtual size (and the disk format found in
    data declared raw, see ``service.detected``)."""

    size: int
    md5: str
    digest: str
    virtual_size: int | None
    detected: str | None = None


class DataMismatch(BadRequest):
    """The bytes read are not the image's (a swapped or damaged source)."""


def copy_into(store: Store, att: Attempt, source: Callable, expected: Expected, *, hash_algo: str,
              heartbeat: Heartbeat, progress: Callable[[int], None] = lambda n: None) -> Copied:
    """Write the pieces ``source(settle)`` yields as the attempt's object in ``store`` and
    commit it (``settle`` lets a source that reuses its buffers wait for the digests); any
    failure aborts the writer (what it left is removed) and raises. The digest is taken in
    ``expected.algo`` when the image records one (an algorithm changed since keeps its own)."""
    image = att.image
    hash_algo = expected.algo or hash_algo
    writer = store.open_writer(image.id, att.attempt, expected.size)
    try:
        lifecycle.record_writer(att, writer.state, store.store_id)
        att.state = writer.state
        digest = ParallelDigest(hash_algo)
        try:
            total, virtual_size, detected = _stream(source(digest.wait_backlog), writer, digest, att, expected,
                                                    heartbeat, progress)
            md5, image_digest = digest.finish()
        finally:
            digest.close()
        if expected.size is not None and total != expected.size:
            raise DataMismatch(f"Size mismatch: expected {expected.size} bytes, read {total} bytes.")
        if expected.md5 is not None and md5 != expected.md5:
            raise DataMismatch("The data read does not match the image's checksum (md5).")
        if expected.digest is not None and image_digest != expected.digest:
            raise DataMismatch(f"The data read does not match the image's os_hash_value ({hash_algo}).")
        heartbeat.beat_now()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return Copied(total, md5, image_digest, virtual_size, detected)


def _stream(pieces: Iterable, writer, digest: ParallelDigest, att: Attempt, expected: Expected,
            heartbeat: Heartbeat, progress: Callable[[int], None]) -> tuple[int, int | None, str | None]:
    sniffer = FormatSniffer()
    total, reported = 0, time.monotonic()
    for data in pieces:
        heartbeat.check()
        total += len(data)
        if total > att.limit:
            raise TooLarge(f"The incoming image is too large: the image size cap is {att.limit} bytes.")
        if att.quota_limit is not None and total > att.quota_limit:
            raise TooLarge(f"Image exceeds the storage quota: the import passed the {att.quota_limit} bytes "
                           "left in the project's image_size_total quota.")
        if expected.size is not None and total > expected.size:
            raise DataMismatch(f"Size mismatch: read more than the image's {expected.size} bytes.")
        digest.update(data)
        sniffer.update(data)
        writer.write(memoryview(data))
        if time.monotonic() - reported >= PROGRESS_EVERY:
            progress(total)
            reported = time.monotonic()
    virtual_size = check_format(sniffer, att.image.disk_format, att.image.container_format, total)
    progress(total)
    return total, virtual_size, detected_format(sniffer, att.image.disk_format, att.image.container_format)
