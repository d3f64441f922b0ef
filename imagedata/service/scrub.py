"""Finding debris and damage: orphan files in stores, active images whose data is wrong."""
from __future__ import annotations

import dataclasses
import logging

from imagedata.models import Image
from imagedata.service import Services
from imagedata.service.lease import lease_is_dead
from imagedata.service.resume import kept_partial
from imagedata.stores.base import DataMissing

log = logging.getLogger(__name__)

DATA_STATUSES = ("active", "deactivated")


@dataclasses.dataclass
class Finding:
    """One problem: an orphan object in a store, or a broken image."""

    kind: str  # "orphan" or "broken"
    store_id: str
    name: str  # object name (orphans) or image id (broken images)
    reason: str
    fixed: bool = False


def _object_is_wanted(svc: Services, store_id: str, obj) -> str | None:
    """None when the object belongs to a live image or upload, else why it is an orphan."""
    if obj.kind == "unknown":
        return "not a file this service writes"
    image = Image.get_or_none(Image.id == obj.image_id)
    if image is None:
        return "no image record"
    if image.deleted:
        return "image deleted"
    live_upload = (image.status == "saving" and image.upload_token == obj.attempt and image.store == store_id
                   and not lease_is_dead(image, svc.settings.upload_lease_seconds, svc.settings.host_id))
    if live_upload:
        return None
    if (kept_partial(image) is not None and image.upload_token == obj.attempt and image.store == store_id):
        return None  # an interrupted upload's kept data, waiting to be resumed
    if obj.kind == "partial":
        return "unfinished upload with no live lease"
    if image.status in DATA_STATUSES and image.store == store_id and image.data_key == obj.attempt:
        return None
    return f"not the data of the image (status {image.status})"


def find_orphans(svc: Services, fix: bool) -> list[Finding]:
    """Objects in any store that no active image or live upload owns; removed when ``fix``."""
    findings = []
    for store in svc.stores:
        for obj in store.scan():
            reason = _object_is_wanted(svc, store.store_id, obj)
            if reason is None:
                continue
            finding = Finding("orphan", store.store_id, obj.name, reason)
            if fix:
                # Re-check right before removing: an upload may have finished meanwhile.
                if _object_is_wanted(svc, store.store_id, obj) is not None and store.remove_object(obj):
                    finding.fixed = True
                    log.warning("scrub: removed %s from store %s (%s)", obj.name, store.store_id, reason)
            findings.append(finding)
    return findings


def _data_problem(svc: Services, image: Image) -> str | None:
    store = svc.stores.get(image.store)
    if store is None:
        return f"store {image.store!r} is not configured"
    if not image.data_key:
        return "no data recorded"
    try:
        reader = store.open_range(image.id, image.data_key, 0, 0)
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
    """Active images whose data is missing or of the wrong size; flagged when ``fix``."""
    findings = []
    query = Image.select().where(Image.status.in_(DATA_STATUSES) & (Image.deleted == False))  # noqa: E712
    for image in query:
        problem = _data_problem(svc, image)
        if problem is None:
            if image.data_error and fix:
                Image.update(data_error=None).where(Image.id == image.id).execute()
            continue
        finding = Finding("broken", image.store or "", image.id, problem)
        if fix:
            Image.update(data_error=problem[:255]).where(Image.id == image.id).execute()
            finding.fixed = True
            log.error("scrub: image %s flagged broken: %s", image.id, problem)
        findings.append(finding)
    return findings


def scrub(svc: Services, fix: bool = False) -> list[Finding]:
    """Every orphan and broken image; with ``fix`` orphans are removed and broken images flagged."""
    return find_orphans(svc, fix) + find_broken(svc, fix)


def locate(svc: Services, image_id: str) -> dict | None:
    """Where an image's data lives (a path or URL, for operators); None if there is no such image."""
    image = Image.get_or_none(Image.id == image_id.lower())
    if image is None:
        return None
    store = svc.stores.get(image.store)
    found = {"id": image.id, "status": image.status, "deleted": bool(image.deleted), "store": image.store,
             "size": image.size, "data": None, "upload": None}
    if store is not None and image.data_key:
        found["data"] = store.location(image.id, image.data_key)
    if store is not None and image.status == "saving" and image.upload_token:
        found["upload"] = f"attempt {image.upload_token} by {image.upload_host} pid {image.upload_pid}"
    return found
