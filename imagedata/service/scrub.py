"""Finding debris and damage: orphan objects in stores, copies whose data is wrong."""
from __future__ import annotations

import dataclasses
import logging

from imagedata.models import Image, ImageLocation
from imagedata.service import Services, locations
from imagedata.service.lifecycle import HELD, lease_is_dead
from imagedata.service.resume import kept_bytes
from imagedata.stores.base import DataMissing, StoredObject

log = logging.getLogger(__name__)

DATA_STATUSES = ("active", "deactivated")
IMPORTING = ("uploading", "importing")


@dataclasses.dataclass
class Finding:
    """One problem: an orphan object in a store, or a broken copy of an image."""

    kind: str  # "orphan" or "broken"
    store_id: str
    name: str  # object name (orphans) or image id (broken copies)
    reason: str
    fixed: bool = False


def _object_is_wanted(svc: Services, store_id: str, obj: StoredObject) -> str | None:
    """None when the object is a copy of a live image, or belongs to a live or kept attempt;
    else why it is an orphan."""
    if obj.kind == "unknown":
        return "not a file this service writes"
    image = Image.get_or_none(Image.id == obj.image_id)
    if image is None:
        return "no image record"
    if image.deleted:
        return "image deleted"
    attempts_here = image.attempt == obj.attempt and image.attempt_store == store_id
    if attempts_here and image.status in HELD and not lease_is_dead(
            image, svc.settings.upload_lease_seconds, svc.settings.host_id):
        return None
    if attempts_here and kept_bytes(image) is not None:
        return None  # an interrupted upload's kept bytes, waiting to be resumed
    if obj.kind == "unfinished":
        return "unfinished upload with no live lease"
    copy = ImageLocation.get_or_none((ImageLocation.image == image.id) & (ImageLocation.store == store_id)
                                     & (ImageLocation.attempt == obj.attempt))
    if copy is not None and image.status in DATA_STATUSES + IMPORTING:
        return None  # a copy, or the staged data or a first copy of an import in flight
    return f"not the data of the image (status {image.status})"


def find_orphans(svc: Services, fix: bool) -> list[Finding]:
    """Objects in any store that no image copy, live upload or kept upload owns; removed when ``fix``."""
    findings = []
    for store in list(svc.stores) + ([svc.stores.staging] if svc.stores.staging is not None else []):
        for obj in store.scan():
            reason = _object_is_wanted(svc, store.store_id, obj)
            if reason is None:
                continue
            finding = Finding("orphan", store.store_id, obj.name, reason)
            if fix:
                # Re-check right before removing: an upload may have finished meanwhile.
                if _object_is_wanted(svc, store.store_id, obj) is not None and locations.remove_orphan(store, obj):
                    finding.fixed = True
                    log.warning("scrub: removed %s from store %s (%s)", obj.name, store.store_id, reason)
            findings.append(finding)
    return findings


def _data_problem(svc: Services, image: Image, copy: ImageLocation) -> str | None:
    store = svc.stores.get(copy.store)
    if store is None:
        return f"store {copy.store!r} is not configured"
    try:
        reader = store.open_range(image.id, copy.attempt, 0, 0)
        size = reader.size
        reader.close()
    except DataMissing:
        return "data file missing"
    except Exception as exc:
        return getattr(exc, "message", None) or type(exc).__name__
    if size != image.size:
        return f"data is {size} bytes, expected {image.size}"
    return None


def find_broken(svc: Services, fix: bool) -> list[Finding]:
    """Copies of images with data that are missing or of the wrong size; flagged (never
    served) when ``fix``, and a flag cleared once a copy is whole again."""
    findings = []
    query = (ImageLocation.select(ImageLocation, Image).join(Image)
             .where(Image.status.in_(DATA_STATUSES) & (Image.deleted == False)))  # noqa: E712
    for copy in query:
        image = copy.image
        problem = _data_problem(svc, image, copy)
        if problem is None:
            if copy.status == "broken" and fix:
                locations.flag_copy(copy, None)
            continue
        finding = Finding("broken", copy.store, image.id, problem)
        if fix and locations.flag_copy(copy, problem):
            finding.fixed = True
            log.error("scrub: the copy of image %s in store %s flagged broken: %s", image.id, copy.store, problem)
        findings.append(finding)
    return findings


def scrub(svc: Services, fix: bool = False) -> list[Finding]:
    """Every orphan and broken copy; with ``fix`` orphans are removed and broken copies flagged."""
    return find_orphans(svc, fix) + find_broken(svc, fix)


def locate(svc: Services, image_id: str) -> list[tuple[str, object]] | None:
    """Where an image's data lives (a path or URL per copy, for operators); None if there is no
    such image."""
    image = Image.get_or_none(Image.id == image_id.lower())
    if image is None:
        return None
    copies = locations.copies_of(image.id)
    found: list[tuple[str, object]] = [
        ("id", image.id), ("status", image.status), ("deleted", bool(image.deleted)),
        ("stores", ",".join(copy.store for copy in copies) or None), ("size", image.size)]
    for copy in copies:
        store = svc.stores.get(copy.store)
        where = store.location(image.id, copy.attempt) if store is not None else f"{copy.store}: not configured"
        found.append(("data", where if copy.status == "active" else f"{where} (broken: {copy.error})"))
    if image.status == "saving" and image.attempt:
        found.append(("upload", f"attempt {image.attempt} by {image.attempt_host} pid {image.attempt_pid} "
                                f"into store {image.attempt_store}"))
    return found
