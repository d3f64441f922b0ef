"""Downloads: decide status, headers and open the data before anything is sent."""
from __future__ import annotations

import dataclasses
import logging

from imagedata.errors import BadRequest, Forbidden, ImageDataError, ImageDataUnavailable, ImageNotFound
from imagedata.models import Image, ImageLocation
from imagedata.policy import Caller, is_visible
from imagedata.service import Services, locations
from imagedata.service.images import find_image, member_status
from imagedata.service.client_digest import repr_digest_header
from imagedata.service.resume import offset_headers
from imagedata.service.ranges import ByteRange, check_multi_range, select_range
from imagedata.stores.base import DataMissing, DataReader, Store

log = logging.getLogger(__name__)

DATA_STATUSES = ("active", "deactivated")


@dataclasses.dataclass
class DownloadRequest:
    """The headers of GET /v2/images/{id}/file that shape the answer."""

    image_id: str
    range: str | None = None
    content_range: str | None = None  # legacy request header (pre-Pike clients)
    if_range: str | None = None
    if_none_match: str | None = None
    prefer: str | None = None  # ?prefer=store1,store2
    head: bool = False  # HEAD: the same headers, and the data is checked but not read


@dataclasses.dataclass
class Download:
    """A resolved answer: status, headers and (for 200/206) the opened byte range."""

    status: int
    headers: dict
    body: DataReader | None = None
    store: Store | None = None  # the store of the copy being read


def etag_of(image: Image) -> str | None:
    """A strong validator derived from the image's sha512 (data is immutable once active)."""
    return f'"{image.os_hash_value}"' if image.os_hash_value else None


def prepare_download(svc: Services, caller: Caller, req: DownloadRequest) -> Download:
    """Resolve a download in Glance's check order; the body is opened but not read."""
    image = find_image(req.image_id)
    if image is None:
        raise ImageNotFound(req.image_id)
    status = member_status(image, caller)
    if not is_visible(caller, image, status):
        raise ImageNotFound(req.image_id)
    if image.status == "deactivated" and not caller.is_admin:
        raise Forbidden("The requested image has been deactivated. Image data download is forbidden.")
    svc.policy.enforce("download_image", caller, image, status)
    prefer = preferred_stores(svc, req.prefer)
    check_multi_range(req.range)
    copies = locations.copies_of(image.id) if image.status in DATA_STATUSES else []
    if not copies:
        return Download(204, offset_headers(image))
    return _open_data(svc, image, copies, prefer, req)


def preferred_stores(svc: Services, prefer: str | None) -> list[str]:
    """The stores named in ?prefer=, in order; Glance: each must be configured (400 otherwise)."""
    names = [part.strip() for part in (prefer or "").split(",") if part.strip()]
    for name in names:
        if svc.stores.named(name) is None:
            shown = name if len(name) <= 64 and name.isprintable() else "(invalid)"
            raise BadRequest(f"Store '{shown}' is not configured.")
    return names


def _open_data(svc: Services, image: Image, copies: list[ImageLocation], prefer: list[str],
               req: DownloadRequest) -> Download:
    etag = etag_of(image)
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
    if image.checksum:
        headers["Content-MD5"] = image.checksum  # Glance: hex md5 of the whole image
    if etag:
        headers["ETag"] = etag
    digests = repr_digest_header(image.os_hash_algo, image.os_hash_value, image.checksum)
    if digests:
        headers["Repr-Digest"] = digests  # RFC 9530: of the whole image, also on a 206
    if etag and req.if_none_match and _etag_matches(req.if_none_match, etag):
        return Download(304, headers)
    use_range = req.if_range is None or req.if_range.strip() == etag
    chosen = select_range(req.range, req.content_range, image.size) if use_range else None
    if chosen is None:
        chosen, code = ByteRange(0, image.size), 200
    else:
        code = 206
        headers["Content-Range"] = f"bytes {chosen.start}-{chosen.last}/{image.size}"
    headers["Content-Length"] = str(chosen.length)
    store, body = open_copy(svc, image, copies, prefer, chosen.start, 0 if req.head else chosen.length)
    if req.head:
        body.close()
        return Download(code, headers)
    return Download(code, headers, body, store)


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or etag in candidates or f"W/{etag}" in candidates


def open_copy(svc: Services, image: Image, copies: list[ImageLocation], prefer: list[str], start: int,
              length: int) -> tuple[Store, DataReader]:
    """Open a range of the first copy that can be read: a copy missing from its store, of the
    wrong size, or in a store that is down or unreachable falls through to the next one."""
    ordered = locations.read_order(copies, svc.stores, prefer)
    if not ordered:
        if any(copy.status == "broken" for copy in copies):
            raise ImageDataUnavailable("The image data is damaged and cannot be served.")
        stored = ", ".join(sorted({copy.store for copy in copies}))
        raise ImageDataUnavailable(f"The store holding this image ('{stored}') is not configured.")
    failure: ImageDataError | None = None
    for store, copy in ordered:
        try:
            return store, open_checked(store, image, copy, start, length)
        except ImageDataError as exc:
            failure = exc
    raise failure


def open_checked(store: Store, image: Image, copy: ImageLocation, start: int, length: int) -> DataReader:
    """Open a range of one copy; refuse to serve it if it is missing or not the recorded size."""
    try:
        reader = store.open_range(image.id, copy.attempt, start, length)
    except DataMissing:
        log.error("image %s is active but its data is missing from store %s", image.id, store.store_id)
        raise ImageDataUnavailable("The image data is missing from its store and cannot be served.") from None
    except ImageDataError as exc:
        log.error("image %s: store %s cannot serve its copy: %s", image.id, store.store_id, exc.message)
        raise
    if reader.size != image.size:
        reader.close()
        log.error("image %s: stored data is %d bytes, expected %d", image.id, reader.size, image.size)
        raise ImageDataUnavailable("The image data is damaged and cannot be served.")
    return reader
