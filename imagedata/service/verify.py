"""Proving stored bytes are still the uploaded ones: re-read, re-hash, compare with the record.

Every image with data (``active`` or ``deactivated``) is read back through the store
contract, so this works on every driver; its md5 (``checksum``) and its ``os_hash_algo``
digest are computed again and compared with the record. The read rate can be bounded so
a run can go on beside production traffic. Corrupt images can be deactivated on the spot
(a compare-and-set on the data the run read), so nobody downloads bad bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from typing import Callable, Iterable

from imagedata.errors import ImageDataError, ImageDataUnavailable
from imagedata.models import Image, utcnow
from imagedata.service import Services
from imagedata.stores.base import DataMissing

log = logging.getLogger(__name__)

DATA_STATUSES = ("active", "deactivated")
RESULTS = ("ok", "corrupt", "missing", "unreadable")


@dataclasses.dataclass
class Finding:
    """What re-reading one image found."""

    image_id: str
    store_id: str
    result: str  # one of RESULTS
    reason: str = ""
    size: int = 0  # bytes read
    deactivated: bool = False


class RateLimit:
    """Keeps the average read rate at or under ``bytes_per_second`` (None: no bound)."""

    def __init__(self, bytes_per_second: float | None, clock=time.monotonic, sleep=time.sleep):
        self.rate = bytes_per_second
        self.clock, self.sleep = clock, sleep
        self.start = clock()
        self.used = 0

    def spend(self, count: int) -> None:
        """Account for ``count`` bytes read; wait as long as the bound requires."""
        if not self.rate:
            return
        self.used += count
        ahead = self.used / self.rate - (self.clock() - self.start)
        if ahead > 0:
            self.sleep(ahead)


def select_images(store_id: str | None = None, image_id: str | None = None,
                  project: str | None = None) -> Iterable[Image]:
    """The images with data, oldest first, narrowed to a store, an image or a project."""
    query = Image.select().where(Image.status.in_(DATA_STATUSES) & (Image.deleted == False))  # noqa: E712
    if store_id is not None:
        query = query.where(Image.store == store_id)
    if image_id is not None:
        query = query.where(Image.id == image_id.lower())
    if project is not None:
        query = query.where(Image.owner == project)
    return query.order_by(Image.created_at, Image.id)


def _digests(image: Image):
    """Fresh md5 and os_hash_algo digests (the second None when the record names none)."""
    md5 = hashlib.md5(usedforsecurity=False)
    other = hashlib.new(image.os_hash_algo) if image.os_hash_algo else None
    return md5, other


def check_image(svc: Services, image: Image, limit: RateLimit,
                on_bytes: Callable[[int], None] = lambda n: None) -> Finding:
    """Re-read one image's data and compare its size and digests with the record."""
    finding = Finding(image.id, image.store or "", "ok")
    store = svc.stores.get(image.store)
    if store is None:
        return dataclasses.replace(finding, result="missing", reason=f"store {image.store!r} is not configured")
    if not image.data_key or image.size is None:
        return dataclasses.replace(finding, result="missing", reason="no data recorded")
    if not image.checksum and not image.os_hash_value:
        return dataclasses.replace(finding, result="unreadable", reason="no checksum recorded")
    try:
        md5, other = _digests(image)
    except ValueError:
        return dataclasses.replace(finding, result="unreadable", reason=f"unknown hash {image.os_hash_algo!r}")
    try:
        reader = store.open_range(image.id, image.data_key, 0, image.size)
    except DataMissing:
        return dataclasses.replace(finding, result="missing", reason="data missing")
    except ImageDataUnavailable as exc:
        return dataclasses.replace(finding, result="corrupt", reason=exc.message)
    except ImageDataError as exc:
        return dataclasses.replace(finding, result="unreadable", reason=exc.message)
    try:
        if reader.size != image.size:
            return dataclasses.replace(finding, result="corrupt",
                                       reason=f"data is {reader.size} bytes, expected {image.size}")
        for piece in reader:
            md5.update(piece)
            if other is not None:
                other.update(piece)
            finding.size += len(piece)
            on_bytes(len(piece))
            limit.spend(len(piece))
    except DataMissing:
        return dataclasses.replace(finding, result="missing", reason="data vanished while read")
    except ImageDataError as exc:
        return dataclasses.replace(finding, result="unreadable", reason=exc.message)
    finally:
        reader.close()
    if finding.size != image.size:
        return dataclasses.replace(finding, result="corrupt", reason=f"read {finding.size} of {image.size} bytes")
    if image.checksum and md5.hexdigest() != image.checksum:
        return dataclasses.replace(finding, result="corrupt", reason="md5 (checksum) does not match")
    if other is not None and image.os_hash_value and other.hexdigest() != image.os_hash_value:
        return dataclasses.replace(finding, result="corrupt", reason=f"{image.os_hash_algo} does not match")
    return finding


def still_current(image: Image) -> bool:
    """Whether the image still has the data that was read (not deleted or replaced meanwhile)."""
    row = Image.get_or_none(Image.id == image.id)
    return (row is not None and not row.deleted and row.status in DATA_STATUSES
            and row.store == image.store and row.data_key == image.data_key)


def deactivate_image(image: Image) -> bool:
    """Deactivate an active image whose data is corrupt (only if its data is still what was read)."""
    rows = (Image.update(status="deactivated", updated_at=utcnow())
            .where((Image.id == image.id) & (Image.status == "active") & (Image.deleted == False)  # noqa: E712
                   & (Image.data_key == image.data_key))
            .execute())
    return rows == 1


def verify_images(svc: Services, images: Iterable[Image], deactivate: bool = False,
                  max_rate: float | None = None, on_bytes: Callable[[int], None] = lambda n: None,
                  on_finding: Callable[[Finding], None] = lambda f: None) -> list[Finding]:
    """Check every image; images deleted or replaced while they were read are left out."""
    limit = RateLimit(max_rate)
    findings = []
    for image in images:
        finding = check_image(svc, image, limit, on_bytes)
        if finding.result != "ok":
            if not still_current(image):
                continue
            log.error("verify: image %s in store %s is %s: %s", image.id, finding.store_id, finding.result,
                      finding.reason)
            if deactivate and finding.result == "corrupt" and deactivate_image(image):
                finding.deactivated = True
                log.error("verify: image %s deactivated", image.id)
        findings.append(finding)
        on_finding(finding)
    return findings


def count_results(findings: Iterable[Finding]) -> dict[str, int]:
    """Images per result (every result present, zero when none)."""
    counts = dict.fromkeys(RESULTS, 0)
    for finding in findings:
        counts[finding.result] += 1
    return counts
