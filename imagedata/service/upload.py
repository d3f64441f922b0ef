"""The upload state machine: queued -> saving -> active, by compare-and-set.

1. ``begin``: one short transaction moves the image from queued to saving, records a
   lease (attempt id, host, pid, heartbeat) and reserves quota. Losing the race is 409.
2. ``stream``: bytes go to a per-attempt temporary object while md5 and sha512 are
   computed; the lease is renewed (and deletion noticed) every few seconds.
3. ``finish``: the object is fsynced and renamed, then one compare-and-set on the
   attempt id makes the image active. If that finds the image deleted, our object is
   removed and the caller gets 410.
Any failure removes the temporary object and returns the image to queued.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import uuid

from imagedata.db import UNAVAILABLE_ERRORS, database, write_transaction
from imagedata.errors import (BadRequest, Conflict, Gone, ImageDataError, InvalidImageState,
                              ServiceUnavailable, TooLarge)
from imagedata.models import Image, utcnow
from imagedata.policy import Caller
from imagedata.service import Services, quotas
from imagedata.service.body import BodyReader
from imagedata.service.digest import ParallelDigest
from imagedata.service.images import get_visible_image
from imagedata.service.inspect import FormatSniffer, check_format
from imagedata.service.lease import lease_fields, queued_fields, released_fields
from imagedata.stores.base import Store

log = logging.getLogger(__name__)


@dataclasses.dataclass
class UploadRequest:
    """What the API layer extracted from a PUT /v2/images/{id}/file request."""

    image_id: str
    stream: object
    content_length: int | None  # None when the body is chunked
    image_size: int | None = None  # x-openstack-image-size
    store_id: str | None = None  # X-Image-Meta-Store; None when absent


@dataclasses.dataclass
class Attempt:
    """One upload attempt that holds the image's lease."""

    image: Image
    store: Store
    attempt: str
    expected: int | None
    limit: int
    quota_limit: int | None


def choose_store(svc: Services, store_id: str | None) -> Store:
    """The store named by X-Image-Meta-Store, or the default; 400 for unknown ids."""
    if store_id is None:
        return svc.stores.default
    store = svc.stores.get(store_id)
    if store is None:
        shown = store_id if len(store_id) <= 64 and store_id.isprintable() else "(invalid)"
        raise BadRequest(f"Store for identifier {shown} not found")
    return store


def expected_size(req: UploadRequest) -> int | None:
    """The declared size: x-openstack-image-size, else Content-Length; 400 if they disagree."""
    if req.image_size is not None and req.content_length is not None and req.image_size != req.content_length:
        raise BadRequest(f"x-openstack-image-size {req.image_size} does not match "
                         f"Content-Length {req.content_length}.")
    return req.image_size if req.image_size is not None else req.content_length


def upload_image_data(svc: Services, caller: Caller, req: UploadRequest) -> Image:
    """Store the request body as the image's data; the image is active on return."""
    store = choose_store(svc, req.store_id)
    image = get_visible_image(svc, caller, req.image_id, "upload_image")
    if image.status != "queued":
        raise InvalidImageState(f"Image status transition from {image.status} to saving is not allowed")
    _check_formats(image)
    expected = expected_size(req)
    cap = svc.settings.image_size_cap
    if expected is not None and expected > cap:
        raise TooLarge(cap_message(cap))
    problem = store.problem()
    if problem:
        raise ServiceUnavailable(f"Store '{store.store_id}' cannot accept data right now ({problem}).")
    attempt = begin(svc, image, store, expected)
    try:
        return finish(svc, attempt, *stream(svc, attempt, req))
    except BaseException as exc:
        abandon(attempt, exc)
        if not isinstance(exc, Gone):
            # DELETE removes the attempt's files, so the upload may fail in odd ways
            # (a vanished temp file); the caller should learn what really happened.
            gone = _deleted_error(image.id)
            if gone is not None:
                raise gone from exc
        raise


def _check_formats(image: Image) -> None:
    missing = [f for f in ("disk_format", "container_format") if getattr(image, f) is None]
    if len(missing) == 1:
        raise BadRequest(f"Property {missing[0]} must be set prior to saving data.")
    if missing:
        raise BadRequest(f"Properties {', '.join(missing)} must be set prior to saving data.")


def cap_message(cap: int) -> str:
    """The 413 text naming the image size cap."""
    return f"The incoming image is too large: the image size cap is {cap} bytes."


def begin(svc: Services, image: Image, store: Store, expected: int | None) -> Attempt:
    """Take the lease: compare-and-set queued -> saving and reserve quota, atomically."""
    attempt_id = uuid.uuid4().hex
    try:
        with write_transaction():
            fields = {**queued_fields(), **lease_fields(attempt_id), "status": "saving", "store": store.store_id}
            rows = (Image.update(**fields)
                    .where((Image.id == image.id) & (Image.status == "queued") & (Image.deleted == False))  # noqa: E712
                    .execute())
            if rows != 1:
                raise InvalidImageState("Image status transition from queued to saving is not allowed: "
                                        "another upload is in progress or the image changed.")
            reserved, quota_limit = quotas.reserve_upload(svc.settings, image.id, image.owner, expected)
            if reserved:
                Image.update(reserved_bytes=reserved).where(Image.id == image.id).execute()
    except UNAVAILABLE_ERRORS as exc:
        log.warning("database unavailable while starting upload of %s: %s", image.id, exc)
        raise ServiceUnavailable("The image database is busy or unavailable; try again.") from None
    log.info("upload %s of image %s started into store %s (declared size %s)",
             attempt_id, image.id, store.store_id, expected)
    return Attempt(image, store, attempt_id, expected, svc.settings.image_size_cap, quota_limit)


def stream(svc: Services, att: Attempt, req: UploadRequest) -> tuple[int, str, str, int | None]:
    """Copy the body into the store; returns (size, md5, sha512, virtual size) of what was stored."""
    writer = att.store.open_writer(att.image.id, att.attempt, att.expected)
    digest = ParallelDigest()
    sniffer = FormatSniffer()
    heartbeat = Heartbeat(att.image.id, att.attempt, max(1.0, svc.settings.upload_lease_seconds / 6))
    total = 0
    try:
        for data in BodyReader(req.stream, req.content_length, svc.settings.chunk_size).chunks():
            total += len(data)
            _check_limits(att, req, total)
            digest.update(data)
            sniffer.update(data)
            writer.write(memoryview(data))
            heartbeat.beat()
        if att.expected is not None and total != att.expected:
            raise BadRequest(f"Size mismatch: expected {att.expected} bytes, got {total} bytes")
        virtual_size = check_format(sniffer, att.image.disk_format, att.image.container_format, total)
        heartbeat.beat(force=True)
        md5, sha512 = digest.finish()
        writer.commit()
    except BaseException:
        digest.close()
        writer.abort()
        raise
    return total, md5, sha512, virtual_size


def _check_limits(att: Attempt, req: UploadRequest, total: int) -> None:
    if req.image_size is not None and total > req.image_size:
        raise BadRequest(f"Size exceeds: expected {req.image_size} bytes, got {total} bytes")
    if total > att.limit:
        raise TooLarge(cap_message(att.limit))
    if att.quota_limit is not None and total > att.quota_limit:
        raise TooLarge(f"Image exceeds the storage quota: the upload passed the {att.quota_limit} bytes "
                       f"left in the project's image_size_total quota.")


class Heartbeat:
    """Renews the lease every ``interval`` seconds and notices a deleted image."""

    def __init__(self, image_id: str, attempt: str, interval: float):
        self.image_id = image_id
        self.attempt = attempt
        self.interval = interval
        self.last = time.monotonic()

    def beat(self, force: bool = False) -> None:
        """Renew the lease if due; raise Gone if the image was deleted meanwhile."""
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        try:
            rows = (Image.update(upload_heartbeat=utcnow())
                    .where((Image.id == self.image_id) & (Image.upload_token == self.attempt)
                           & (Image.status == "saving") & (Image.deleted == False))  # noqa: E712
                    .execute())
        except UNAVAILABLE_ERRORS as exc:
            log.warning("heartbeat of upload %s skipped: %s", self.attempt, exc)
            return
        if rows != 1:
            raise lost_lease(self.image_id)


def _deleted_error(image_id: str) -> Gone | None:
    """410 if the image was deleted during the upload, else None."""
    try:
        row = Image.get_or_none(Image.id == image_id)
    except UNAVAILABLE_ERRORS:
        return None
    if row is None or row.deleted:
        return Gone(f"Image {image_id} could not be found after upload. The image may have been "
                    "deleted during the upload, cleaning up the chunks uploaded.")
    return None


def lost_lease(image_id: str) -> ImageDataError:
    """410 if the image was deleted during the upload, else 409 (the lease was taken away)."""
    return _deleted_error(image_id) or Conflict(
        f"The upload of image {image_id} lost its lease and was abandoned.")


def finish(svc: Services, att: Attempt, size: int, md5: str, sha512: str, virtual_size: int | None) -> Image:
    """Make the committed object the image's data, or remove it if the lease is gone."""
    image = att.image
    values = dict(status="active", size=size, checksum=md5, os_hash_algo="sha512", os_hash_value=sha512,
                  virtual_size=virtual_size,
                  data_key=att.attempt, store=att.store.store_id, updated_at=utcnow(), **released_fields())
    try:
        with database.atomic():
            rows = (Image.update(**values)
                    .where((Image.id == image.id) & (Image.upload_token == att.attempt)
                           & (Image.status == "saving") & (Image.deleted == False))  # noqa: E712
                    .execute())
    except UNAVAILABLE_ERRORS as exc:
        _drop_object(att)
        log.warning("database unavailable while finishing upload of %s: %s", image.id, exc)
        raise ServiceUnavailable("The image database is busy or unavailable; try again.") from None
    if rows != 1:
        _drop_object(att)
        raise lost_lease(image.id)
    log.info("upload %s of image %s finished: %d bytes in store %s", att.attempt, image.id, size,
             att.store.store_id)
    return Image.get_by_id(image.id)


def _drop_object(att: Attempt) -> None:
    try:
        att.store.delete(att.image.id, att.attempt)
    except Exception as exc:
        log.warning("could not remove object of abandoned upload %s: %s", att.attempt, exc)


def abandon(att: Attempt, exc: BaseException) -> None:
    """Return the image to queued after a failed attempt (only if we still hold the lease)."""
    att.store.discard_attempt(att.image.id, att.attempt)
    try:
        rows = (Image.update(**queued_fields())
                .where((Image.id == att.image.id) & (Image.upload_token == att.attempt)
                       & (Image.status == "saving"))
                .execute())
    except Exception as db_exc:  # recovery resets the image when the lease expires
        log.error("could not return image %s to queued after a failed upload: %s", att.image.id, db_exc)
        return
    reason = getattr(exc, "message", None) or type(exc).__name__
    log.warning("upload %s of image %s failed (%s)%s", att.attempt, att.image.id, reason,
                "; image back to queued" if rows else "")

