"""The upload state machine: queued -> saving -> active, by compare-and-set.

1. ``begin``: one short transaction moves the image from queued to saving, records a
   lease (attempt id, host, pid, heartbeat) and reserves quota. Losing the race is 409;
   finding the image deleted is 410.
2. ``stream``: the store opens a writer, whose state (what a crash would leave behind)
   is recorded on the row; bytes go to it while md5 and sha512 are computed. A
   heartbeat thread renews the lease by time and notices a deletion.
3. ``finish``: the writer commits, then one compare-and-set on the attempt id makes the
   image active. If that finds the image deleted, the object is removed: 410.
Any failure discards what the writer holds and returns the image to queued.
"""
from __future__ import annotations

import dataclasses
import logging
import uuid

from imagedata import hints
from imagedata.db import UNAVAILABLE_ERRORS, database, write_transaction
from imagedata.errors import BadRequest, Gone, InvalidImageState, ServiceUnavailable, TooLarge
from imagedata.models import Image, utcnow
from imagedata.policy import Caller
from imagedata.service import Services, quotas
from imagedata.service.body import BodyReader, ClientAborted
from imagedata.service.client_digest import ExtraDigests, check_client_digests, parse_client_digests
from imagedata.service.heartbeat import Heartbeat, deleted_error, holds_lease, lost_lease, unavailable
from imagedata.service.digest import ParallelDigest
from imagedata.service.images import get_visible_image
from imagedata.service.detected import record_detected_format
from imagedata.service.formats import FormatSniffer, check_format, detected_format
from imagedata.service.lease import lease_fields, queued_fields, released_fields
from imagedata.service.resume import (ResumePoint, check_resume, drop_kept, keep_partial, kept_data_gone,
                                      parse_content_range, resume_store)
from imagedata.stores.base import DataMissing, Store, StoreWriter

log = logging.getLogger(__name__)


@dataclasses.dataclass
class UploadRequest:
    """What the API layer extracted from a PUT /v2/images/{id}/file request."""

    image_id: str
    stream: object
    content_length: int | None  # None when the body is chunked
    image_size: int | None = None  # x-openstack-image-size
    store_id: str | None = None  # X-Image-Meta-Store; None when absent
    content_range: str | None = None  # continues kept partial data (curl -C N -T file)
    content_md5: str | None = None  # the client's md5 of the whole image
    repr_digest: str | None = None  # RFC 9530 digests of the whole image


@dataclasses.dataclass
class Attempt:
    """One upload attempt that holds the image's lease."""

    image: Image
    store: Store
    attempt: str
    expected: int | None
    limit: int
    quota_limit: int | None
    resume: bool = False  # continues the partial data the image keeps
    wanted: dict = dataclasses.field(default_factory=dict)  # the client's digests {algo: raw}
    detected: str | None = None  # a disk format found in data declared raw


def choose_store(svc: Services, store_id: str | None) -> Store:
    """The store named by X-Image-Meta-Store, or the default; 400 for unknown ids."""
    if store_id is None:
        return svc.stores.default
    store = svc.stores.get(store_id)
    if store is None:
        raise hints.unknown_store(store_id, [s.store_id for s in svc.stores], svc.stores.default_id)
    return store


def expected_size(req: UploadRequest, point: ResumePoint | None = None) -> int | None:
    """The declared size: the Content-Range total, x-openstack-image-size, else Content-Length;
    400 if they disagree."""
    if point is not None:
        if req.image_size is not None and req.image_size != point.total:
            raise BadRequest(f"x-openstack-image-size {req.image_size} does not match the Content-Range "
                             f"total {point.total}.")
        return point.total
    if req.image_size is not None and req.content_length is not None and req.image_size != req.content_length:
        raise BadRequest(f"x-openstack-image-size {req.image_size} does not match "
                         f"Content-Length {req.content_length}.")
    return req.image_size if req.image_size is not None else req.content_length


def upload_image_data(svc: Services, caller: Caller, req: UploadRequest) -> Image:
    """Store the request body as the image's data; the image is active on return."""
    requested = choose_store(svc, req.store_id)
    point = parse_content_range(req.content_range, req.content_length)
    wanted = parse_client_digests(req.content_md5, req.repr_digest)
    image = get_visible_image(svc, caller, req.image_id, "upload_image")
    if image.status != "queued":
        raise hints.not_queued(image.id, image.status)
    _check_formats(image)
    resume = check_resume(image, point)
    store = resume_store(svc, image, req.store_id) if resume else requested
    expected = expected_size(req, point)
    cap = svc.settings.image_size_cap
    if expected is not None and expected > cap:
        raise TooLarge(cap_message(cap))
    problem = store.health().problem
    if problem:
        raise ServiceUnavailable(f"Store '{store.store_id}' cannot accept data right now ({problem}).")
    attempt = begin(svc, image, store, expected, resume)
    attempt.wanted = wanted
    if not resume:
        drop_kept(svc, image)  # a plain PUT starts over
    try:
        return finish(svc, attempt, *stream(svc, attempt, req))
    except BaseException as exc:
        abandon(attempt, exc)
        if not isinstance(exc, Gone):
            # DELETE removes what the attempt holds, so the upload may fail in odd ways
            # (a vanished temp file, an aborted multipart upload); say what really happened.
            gone = deleted_error(image.id)
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


def begin(svc: Services, image: Image, store: Store, expected: int | None, resume: bool = False) -> Attempt:
    """Take the lease: compare-and-set queued -> saving and reserve quota, atomically.

    The row must still hold what was read (the same kept partial data, or none), so a
    resume or a restart never acts on data another request changed meanwhile.
    """
    attempt = uuid.uuid4().hex
    same_kept = (Image.upload_token.is_null() if image.upload_token is None
                 else Image.upload_token == image.upload_token)
    try:
        with write_transaction():
            fields = {**queued_fields(), **lease_fields(attempt, svc.settings.host_id),
                      "status": "saving", "store": store.store_id}
            if resume:  # until the new writer takes it over, the row still names the kept data
                fields["upload_state"] = image.upload_state
            rows = (Image.update(**fields)
                    .where((Image.id == image.id) & (Image.status == "queued") & same_kept
                           & (Image.deleted == False))  # noqa: E712
                    .execute())
            if rows != 1:
                raise deleted_error(image.id) or InvalidImageState(
                    "Image status transition from queued to saving is not allowed: "
                    "another upload is in progress or the image changed.")
            reserved, quota_limit = quotas.reserve_upload(svc.settings, image.id, image.owner, expected)
            if reserved:
                Image.update(reserved_bytes=reserved).where(Image.id == image.id).execute()
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable("starting", image.id, exc) from None
    log.info("upload %s of image %s started into store %s (declared size %s)",
             attempt, image.id, store.store_id, expected)
    return Attempt(image, store, attempt, expected, svc.settings.image_size_cap, quota_limit, resume)


def open_writer(att: Attempt) -> StoreWriter:
    """Open the store's writer and record its state on the row, so any host can clean up."""
    if att.resume:
        try:
            writer = att.store.resume_writer(att.image.id, att.attempt, att.image.upload_state,
                                             att.image.partial_size, att.expected)
        except DataMissing:
            raise kept_data_gone(att.image.id) from None
    else:
        writer = att.store.open_writer(att.image.id, att.attempt, att.expected)
    try:
        rows = Image.update(upload_state=writer.state).where(holds_lease(att.image.id, att.attempt)).execute()
    except BaseException as exc:
        writer.abort()
        if isinstance(exc, UNAVAILABLE_ERRORS):
            raise unavailable("recording", att.image.id, exc) from None
        raise
    if rows != 1:
        writer.abort()
        raise lost_lease(att.image.id)
    return writer


def stream(svc: Services, att: Attempt, req: UploadRequest) -> tuple[int, str, str, int | None]:
    """Copy the body into the store; returns (size, md5, sha512, virtual size) of what was stored.

    A resumed upload first re-reads the kept prefix for the digests. A body cut off before
    its declared end keeps what arrived (if resumable uploads are on).
    """
    writer = open_writer(att)
    digest = ParallelDigest(svc.settings.hash_algo)
    extra = ExtraDigests(att.wanted, covered=("md5", digest.algorithm))
    sniffer = FormatSniffer()
    heartbeat = Heartbeat(att.image.id, att.attempt, max(1.0, svc.settings.upload_lease_seconds / 6))
    total, kept = 0, writer.offset
    try:
        for data in _kept_then_body(writer, req, svc.settings.chunk_size, digest.wait_backlog):
            heartbeat.check()
            total += len(data)
            _check_limits(att, req, total)
            digest.update(data)
            extra.update(data)
            sniffer.update(data)
            if total > kept:  # the kept prefix is in the store already
                writer.write(memoryview(data))
        if att.expected is not None and total != att.expected:
            raise BadRequest(f"Size mismatch: expected {att.expected} bytes, got {total} bytes")
        virtual_size = check_format(sniffer, att.image.disk_format, att.image.container_format, total)
        att.detected = detected_format(sniffer, att.image.disk_format, att.image.container_format)
        md5, sha512 = digest.finish()
        check_client_digests(att.wanted, {"md5": md5, digest.algorithm: sha512, **extra.hexdigests()})
        heartbeat.beat_now()
        writer.commit()
    except ClientAborted as exc:
        digest.close()
        heartbeat.stop()
        kept = keep_partial(svc, att, writer)
        if not kept:
            writer.abort()
        settings = svc.settings
        raise hints.interrupted_upload(exc, total, att.expected, settings.resume_seconds if kept else 0,
                                       settings.upload_idle_timeout, bool(settings.resume_seconds)) from exc
    except BaseException:
        digest.close()
        writer.abort()
        raise
    finally:
        heartbeat.stop()
    return total, md5, sha512, virtual_size


def _kept_then_body(writer: StoreWriter, req: UploadRequest, chunk_size: int, settle=None):
    """The kept prefix of a resumed upload (already stored), then the request body.

    ``settle`` lets the body reader reuse its buffers once the digests are done with them.
    """
    try:
        yield from writer.kept()
    except DataMissing:
        raise kept_data_gone(req.image_id) from None
    yield from BodyReader(req.stream, req.content_length, chunk_size, settle).chunks()


def _check_limits(att: Attempt, req: UploadRequest, total: int) -> None:
    if req.image_size is not None and total > req.image_size:
        raise BadRequest(f"Size exceeds: expected {req.image_size} bytes, got {total} bytes")
    if total > att.limit:
        raise TooLarge(cap_message(att.limit))
    if att.quota_limit is not None and total > att.quota_limit:
        raise TooLarge(f"Image exceeds the storage quota: the upload passed the {att.quota_limit} bytes "
                       f"left in the project's image_size_total quota.")


def finish(svc: Services, att: Attempt, size: int, md5: str, sha512: str, virtual_size: int | None) -> Image:
    """Make the committed object the image's data, or remove it if the lease is gone."""
    image = att.image
    values = dict(status="active", size=size, checksum=md5, os_hash_algo=svc.settings.hash_algo, os_hash_value=sha512,
                  virtual_size=virtual_size,
                  data_key=att.attempt, store=att.store.store_id, updated_at=utcnow(), **released_fields())
    try:
        with database.atomic():
            rows = Image.update(**values).where(holds_lease(att.image.id, att.attempt)).execute()
            if rows == 1:
                record_detected_format(image.id, att.detected)
    except UNAVAILABLE_ERRORS as exc:
        _drop_object(att)
        raise unavailable("finishing", image.id, exc) from None
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
