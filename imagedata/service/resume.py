"""Resumable uploads: keep what an interrupted upload received, continue it later.

An upload of a known total that is cut off (client gone, timeout, proxy reset) keeps the
bytes that arrived: the store's writer suspends (fsynced file, completed S3 object), and
the image returns to `queued` with ``partial_size``/``partial_total``/``partial_expires``
set and its quota reservation still held. ``HEAD .../file`` reports ``Upload-Offset``. A
PUT with ``Content-Range: bytes N-(T-1)/T`` (what ``curl -C N -T file`` sends) continues
at N; a plain PUT starts over. Kept data expires after IMAGEDATA_RESUME_SECONDS.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import re

from imagedata.db import UNAVAILABLE_ERRORS
from imagedata.errors import BadRequest, Conflict
from imagedata.models import Image, utcnow
from imagedata.service import Services
from imagedata.service.heartbeat import holds_lease
from imagedata.service.lease import queued_fields
from imagedata.stores import StoreRegistry
from imagedata.stores.base import Store, StoreWriter

log = logging.getLogger(__name__)

CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d{1,20})-(\d{1,20})/(\d{1,20})$")


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """Where a PUT with Content-Range continues: its first byte and the image's total size."""

    offset: int
    total: int


def parse_content_range(value: str | None, content_length: int | None) -> ResumePoint | None:
    """The resume point of a ``Content-Range: bytes N-(T-1)/T`` upload header (None if absent)."""
    if value is None:
        return None
    match = CONTENT_RANGE_RE.match(value.strip())
    if not match:
        raise BadRequest("Invalid Content-Range: an upload continues with 'bytes N-(T-1)/T'.")
    first, last, total = (int(g) for g in match.groups())
    if first > last or last != total - 1:
        raise BadRequest(f"Invalid Content-Range {value.strip()[:80]!r}: an upload must run to the end of "
                         "the image (bytes N-(T-1)/T).")
    if content_length is not None and content_length != total - first:
        raise BadRequest(f"Content-Length {content_length} does not match Content-Range "
                         f"(expected {total - first} bytes).")
    return ResumePoint(first, total)


def kept_partial(image: Image, now: datetime.datetime | None = None) -> tuple[int, int] | None:
    """(bytes kept, declared total) of the image's kept partial data, if it has live data."""
    if image.partial_size is None or image.status != "queued" or image.deleted:
        return None
    if image.partial_expires is not None and image.partial_expires <= (now or utcnow()):
        return None
    return image.partial_size, image.partial_total


def offset_headers(image: Image) -> dict:
    """``Upload-Offset`` (and the total, ``Upload-Length``) of an image's kept partial data."""
    kept = kept_partial(image)
    return {"Upload-Offset": str(kept[0]), "Upload-Length": str(kept[1])} if kept else {}


def check_resume(image: Image, point: ResumePoint | None) -> bool:
    """Whether a PUT continues the kept data (True) or starts over (False); 409/400 when its
    Content-Range does not fit what is kept."""
    kept = kept_partial(image)
    if point is None:
        return False
    if kept is None:
        if point.offset != 0:
            raise Conflict(f"No partial data is kept for image {image.id}: start the upload at offset 0.",
                           headers={"Upload-Offset": "0"})
        return False
    size, total = kept
    if point.total != total:
        raise BadRequest(f"The upload was started with a total of {total} bytes, not {point.total}.")
    if point.offset != size:
        raise Conflict(f"The kept data of image {image.id} ends at byte {size}: continue from there.",
                       headers={"Upload-Offset": str(size), "Upload-Length": str(total)})
    return True


def kept_data_gone(image_id: str) -> Conflict:
    """409 when the data an interrupted upload kept has vanished from its store."""
    return Conflict(f"The kept partial data of image {image_id} is gone from its store: start the upload "
                    "again at offset 0.", headers={"Upload-Offset": "0"})


def kept_fields(size: int, total: int, state: str, seconds: int) -> dict:
    """Columns of an image whose interrupted upload keeps ``size`` of ``total`` bytes."""
    now = utcnow()
    return dict(status="queued", partial_size=size, partial_total=total, upload_state=state,
                partial_expires=now + datetime.timedelta(seconds=seconds), upload_host=None,
                upload_pid=None, upload_heartbeat=None, updated_at=now)


def expire_partials(stores: StoreRegistry) -> list[str]:
    """Drop kept partial data whose time is up: the image stays queued, its quota is released."""
    expired = []
    now = utcnow()
    query = Image.select().where((Image.status == "queued") & Image.partial_expires.is_null(False)
                                 & (Image.partial_expires <= now))
    for image in query:
        rows = (Image.update(**queued_fields())
                .where((Image.id == image.id) & (Image.status == "queued")
                       & (Image.upload_token == image.upload_token) & (Image.partial_expires <= now))
                .execute())
        if rows != 1:
            continue
        store = stores.get(image.store)
        try:
            if store is not None and image.upload_state:
                store.discard(image.upload_state)
        except Exception as exc:  # the scrubber finds what is left
            log.warning("could not remove expired partial data of image %s: %s", image.id, exc)
        log.info("image %s: kept partial upload (%s of %s bytes) expired", image.id, image.partial_size,
                 image.partial_total)
        expired.append(image.id)
    return expired


def resume_store(svc: Services, image: Image, store_id: str | None) -> Store:
    """A resumed upload continues in the store that keeps its data."""
    store = svc.stores.get(image.store)
    if store is None or (store_id is not None and store_id != image.store):
        raise BadRequest(f"The kept data of image {image.id} is in store '{image.store}'; continue there "
                         "or start over without Content-Range.")
    return store


def drop_kept(svc: Services, image: Image) -> None:
    """Remove the partial data an earlier interrupted upload kept (the new attempt owns the row)."""
    store = svc.stores.get(image.store)
    if store is not None and image.partial_size is not None and image.upload_state:
        try:
            store.discard(image.upload_state)
        except Exception as exc:  # the scrubber finds what is left
            log.warning("could not drop the kept partial data of image %s: %s", image.id, exc)


def keep_partial(svc: Services, att, writer: StoreWriter) -> bool:
    """After a cut-off body: keep what arrived, hold the reservation, image back to queued."""
    if not svc.settings.resume_seconds or att.expected is None or writer.offset >= att.expected:
        return False
    state = writer.suspend()
    if state is None:
        return False
    try:
        rows = (Image.update(**kept_fields(writer.offset, att.expected, state, svc.settings.resume_seconds))
                .where(holds_lease(att.image.id, att.attempt)).execute())
    except UNAVAILABLE_ERRORS:
        rows = 0
    if rows != 1:
        att.store.discard(state)
        return False
    log.info("upload %s of image %s interrupted: %d of %d bytes kept for resuming", att.attempt,
             att.image.id, writer.offset, att.expected)
    return True
