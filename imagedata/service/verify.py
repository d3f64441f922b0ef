"""Proving stored bytes are still the uploaded ones: re-read, re-hash, compare with the record.

Every copy of every image with data (``active`` or ``deactivated``) is read back through
the store contract, so this works on every driver; its md5 (``checksum``) and its
``os_hash_algo`` digest are computed again and compared with the record. The read rate can
be bounded so a run can go on beside production traffic. A corrupt copy can be taken out of
service on the spot, so nobody downloads bad bytes: flagged broken while the image has
another copy, the image deactivated when it was its only one (compare-and-set on the data
the run read).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from typing import Callable, Iterable

from imagedata.errors import ImageDataError, ImageDataUnavailable
from imagedata.models import Image, ImageLocation
from imagedata.service import Services, lifecycle, locations
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


def select_copies(store_id: str | None = None, image_id: str | None = None,
                  project: str | None = None) -> list[ImageLocation]:
    """The copies of images with data (each with its ``image``), oldest image first, narrowed
    to a store, an image or a project."""
    query = (ImageLocation.select(ImageLocation, Image).join(Image)
             .where(Image.status.in_(DATA_STATUSES) & (Image.deleted == False)))  # noqa: E712
    if store_id is not None:
        query = query.where(ImageLocation.store == store_id)
    if image_id is not None:
        query = query.where(Image.id == image_id.lower())
    if project is not None:
        query = query.where(Image.owner == project)
    return list(query.order_by(Image.created_at, Image.id, ImageLocation.id))


def _digests(image: Image):
    """Fresh md5 and os_hash_algo digests (the second None when the record names none)."""
    md5 = hashlib.md5(usedforsecurity=False)
    other = hashlib.new(image.os_hash_algo) if image.os_hash_algo else None
    return md5, other


def check_copy(svc: Services, copy: ImageLocation, limit: RateLimit,
               on_bytes: Callable[[int], None] = lambda n: None) -> Finding:
    """Re-read one copy of an image and compare its size and digests with the record."""
    image = copy.image
    finding = Finding(image.id, copy.store, "ok")
    store = svc.stores.get(copy.store)
    if store is None:
        return dataclasses.replace(finding, result="missing", reason=f"store {copy.store!r} is not configured")
    if image.size is None:
        return dataclasses.replace(finding, result="missing", reason="no data recorded")
    if not image.checksum and not image.os_hash_value:
        return dataclasses.replace(finding, result="unreadable", reason="no checksum recorded")
    try:
        md5, other = _digests(image)
    except ValueError:
        return dataclasses.replace(finding, result="unreadable", reason=f"unknown hash {image.os_hash_algo!r}")
    try:
        reader = store.open_range(image.id, copy.attempt, 0, image.size)
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


def still_current(copy: ImageLocation) -> bool:
    """Whether the copy that was read is still one of the image's (not deleted or replaced)."""
    row = Image.get_or_none(Image.id == copy.image.id)
    return (row is not None and not row.deleted and row.status in DATA_STATUSES
            and any(c.id == copy.id and c.attempt == copy.attempt for c in locations.copies_of(row.id)))


def take_out_of_service(copy: ImageLocation) -> bool:
    """A corrupt copy serves nobody: flagged broken while the image has another active copy,
    else the image is deactivated (only if that copy is still its data)."""
    others = [c for c in locations.copies_of(copy.image.id) if c.id != copy.id and c.status == "active"]
    if others:
        return locations.flag_copy(copy, "corrupt: found by verify")
    return still_current(copy) and lifecycle.set_data_status(copy.image.id, "active", "deactivated")


def verify_images(svc: Services, copies: Iterable[ImageLocation], deactivate: bool = False,
                  max_rate: float | None = None, on_bytes: Callable[[int], None] = lambda n: None,
                  on_finding: Callable[[Finding], None] = lambda f: None) -> list[Finding]:
    """Check every copy; copies deleted or replaced while they were read are left out."""
    limit = RateLimit(max_rate)
    findings = []
    for copy in copies:
        finding = check_copy(svc, copy, limit, on_bytes)
        if finding.result != "ok":
            if not still_current(copy):
                continue
            log.error("verify: image %s in store %s is %s: %s", finding.image_id, finding.store_id, finding.result,
                      finding.reason)
            if deactivate and finding.result == "corrupt" and take_out_of_service(copy):
                finding.deactivated = True
                log.error("verify: the copy of image %s in store %s taken out of service", finding.image_id,
                          finding.store_id)
        findings.append(finding)
        on_finding(finding)
    return findings


def count_results(findings: Iterable[Finding]) -> dict[str, int]:
    """Images per result (every result present, zero when none)."""
    counts = dict.fromkeys(RESULTS, 0)
    for finding in findings:
        counts[finding.result] += 1
    return counts
