"""Resumable uploads, the request side: Content-Range, Upload-Offset, and where to continue.

An upload of a known total that is cut off (client gone, timeout, proxy reset) keeps the
bytes that arrived (``lifecycle.keep``): the store's writer suspends (fsynced file,
completed S3 object), and the image returns to `queued` with ``kept_size``/``kept_total``/
``kept_expires`` set and its quota reservation still held. ``HEAD .../file`` reports
``Upload-Offset``. A PUT with ``Content-Range: bytes N-(T-1)/T`` (what ``curl -C N -T file``
sends) continues at N; a plain PUT starts over. Kept bytes expire after
IMAGEDATA_RESUME_SECONDS (``lifecycle.expire_kept``).
"""
from __future__ import annotations

import dataclasses
import datetime
import re

from imagedata.errors import BadRequest, Conflict
from imagedata.models import Image, utcnow
from imagedata.service import Services
from imagedata.stores.base import Store

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


def kept_bytes(image: Image, now: datetime.datetime | None = None) -> tuple[int, int] | None:
    """(bytes kept, declared total) of an interrupted upload of the image, if they are live."""
    if image.kept_size is None or image.status != "queued" or image.deleted:
        return None
    if image.kept_expires is not None and image.kept_expires <= (now or utcnow()):
        return None
    return image.kept_size, image.kept_total


def offset_headers(image: Image) -> dict:
    """``Upload-Offset`` (and the total, ``Upload-Length``) of an image's kept bytes."""
    kept = kept_bytes(image)
    return {"Upload-Offset": str(kept[0]), "Upload-Length": str(kept[1])} if kept else {}


def check_resume(image: Image, point: ResumePoint | None) -> bool:
    """Whether a PUT continues the kept bytes (True) or starts over (False); 409/400 when its
    Content-Range does not fit what is kept."""
    kept = kept_bytes(image)
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
    """409 when the bytes an interrupted upload kept have vanished from their store."""
    return Conflict(f"The kept partial data of image {image_id} is gone from its store: start the upload "
                    "again at offset 0.", headers={"Upload-Offset": "0"})


def resume_store(svc: Services, image: Image, store_id: str | None, staging: Store | None = None) -> Store:
    """A resumed upload continues in the store that keeps its bytes: the staging store for a
    PUT /stage (``staging`` given), a configured store for a PUT /file."""
    store = svc.stores.get(image.attempt_store)
    staged = svc.stores.staging is not None and image.attempt_store == svc.stores.staging.store_id
    if staging is not None and not staged:
        raise BadRequest(f"The kept data of image {image.id} is an interrupted PUT /file: continue it there "
                         "or start over without Content-Range.")
    if staging is None and staged:
        raise BadRequest(f"The kept data of image {image.id} is an interrupted PUT /stage: continue it there "
                         "or start over without Content-Range.")
    if store is None or (store_id is not None and store_id != image.attempt_store):
        raise BadRequest(f"The kept data of image {image.id} is in store '{image.attempt_store}'; continue there "
                         "or start over without Content-Range.")
    return store
