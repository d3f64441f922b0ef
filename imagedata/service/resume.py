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
import socket

from imagedata.errors import BadRequest, ClientAborted, Conflict
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


def interrupted_upload(exc: ClientAborted, received: int, expected: int | None, kept_seconds: int,
                       idle_timeout: float, resumable: bool = True) -> ClientAborted:
    """The 400 of a body that stopped short: how much arrived, and whether and how to resume.

    ``exc`` is the reader's error (its class is kept, so metrics still count it as the
    client's); ``kept_seconds`` is how long the arrived bytes are kept (0: they were not);
    ``resumable`` is false when the server has resumable uploads turned off.
    """
    why = _why(exc, idle_timeout)
    if expected is None:
        text = (f"The upload was cut off after {received} bytes ({why}). Nothing was kept, as the image size "
                "was not declared: upload the image again; with Content-Length or x-openstack-image-size the "
                "upload can be resumed after a cut.")
    elif kept_seconds:
        text = (f"The upload was cut off after {received} of {expected} bytes ({why}). The {received} bytes "
                f"are kept for {duration(kept_seconds)}: resume by sending the rest with "
                f"Content-Range: bytes {received}-{expected - 1}/{expected} (curl -C {received} -T FILE); "
                "HEAD on this URL shows the kept bytes in Upload-Offset.")
    else:
        off = "" if resumable else " (resumable uploads are off on this server)"
        text = (f"The upload was cut off after {received} of {expected} bytes ({why}). Nothing was kept{off}: "
                "upload the whole image again.")
    return type(exc)(text)


def _why(exc: BaseException, idle_timeout: float) -> str:
    """Why the body stopped, from the error the reader caught (its context)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return f"no data arrived for {idle_timeout:g} seconds"
    if isinstance(cause, ConnectionResetError):
        return "the connection was reset"
    if isinstance(cause, OSError):
        return f"the connection failed: {type(cause).__name__}"
    message = getattr(exc, "message", "")
    if cause is None and message and not message.startswith("The upload"):  # e.g. broken chunked framing
        return message.rstrip(".")[:1].lower() + message.rstrip(".")[1:]
    return "the connection closed before the end of the body"


def duration(seconds: int) -> str:
    """``86400`` -> ``24 hours``; ``90`` -> ``90 seconds``; ``5400`` -> ``90 minutes``."""
    for size, unit in ((3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
