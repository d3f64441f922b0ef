"""PUT /v2/images/{id}/file: the request's checks, then the image's data streamed into a store.

1. ``lifecycle.take`` moves the image from queued to saving for a new attempt (its lease,
   its quota reservation); losing the race is 409, finding the image deleted is 410.
2. ``stream``: the store opens a writer, whose state (what a crash would leave behind) is
   recorded on the row; bytes go to it while md5 and the image digest are computed. A
   heartbeat thread renews the lease by time and notices a deletion.
3. ``lifecycle.activate`` makes the committed object the image's first copy.
A client that goes away keeps what arrived (``lifecycle.keep``, when resumable uploads are
on); any other failure returns the image to queued (``lifecycle.requeue``).
"""
from __future__ import annotations

import dataclasses
import logging

from imagedata.errors import BadRequest, ClientAborted, Gone, InvalidImageState, ServiceUnavailable, TooLarge
from imagedata.models import Image
from imagedata.policy import Caller
from imagedata.service import Services, lifecycle
from imagedata.service.body import BodyReader
from imagedata.service.client_digest import ExtraDigests, check_client_digests, parse_client_digests
from imagedata.service.digest import ParallelDigest
from imagedata.service.formats import FormatSniffer, check_format
from imagedata.service.heartbeat import Heartbeat
from imagedata.service.images import get_visible_image
from imagedata.service.lifecycle import Attempt
from imagedata.service.resume import ResumePoint, check_resume, kept_data_gone, parse_content_range, resume_store
from imagedata.stores.base import DataMissing, Store, StoreWriter

log = logging.getLogger(__name__)


@dataclasses.dataclass
class UploadRequest:
    """What the API layer extracted from a PUT /v2/images/{id}/file request."""

    image_id: str
    stream: object  # the body: an object with ``readinto`` (0 at its end) and ``close``
    content_length: int | None  # None when the body is chunked
    image_size: int | None = None  # x-openstack-image-size
    store_id: str | None = None  # X-Image-Meta-Store; None when absent
    content_range: str | None = None  # continues kept bytes (curl -C N -T file)
    content_md5: str | None = None  # the client's md5 of the whole image
    repr_digest: str | None = None  # RFC 9530 digests of the whole image


def choose_store(svc: Services, store_id: str | None) -> Store:
    """The store named by X-Image-Meta-Store, or the default; 400 for unknown ids."""
    if store_id is None:
        return svc.stores.default
    store = svc.stores.named(store_id)
    if store is None:
        shown = store_id if len(store_id) <= 64 and store_id.isprintable() else "(invalid)"
        raise BadRequest(f"Store for identifier {shown} not found")
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


def upload_image_data(svc: Services, caller: Caller, req: UploadRequest, stage: bool = False) -> Image:
    """Store the request body as the image's data; the image is active on return. With
    ``stage`` (PUT /stage, glance-direct), the body goes to the staging store instead and
    the image is `uploading` on return, its data waiting for an import."""
    requested = svc.stores.staging if stage else choose_store(svc, req.store_id)
    point = parse_content_range(req.content_range, req.content_length)
    wanted = parse_client_digests(req.content_md5, req.repr_digest)
    image = get_visible_image(svc, caller, req.image_id, "upload_image")
    writing = "uploading" if stage else "saving"
    if image.status != "queued":
        raise InvalidImageState(f"Image status transition from {image.status} to {writing} is not allowed")
    if not stage:
        _check_formats(image)  # Glance: staging takes an image whose formats are not set yet
    resume = check_resume(image, point)
    store = resume_store(svc, image, None if stage else req.store_id, requested if stage else None) \
        if resume else requested
    expected = expected_size(req, point)
    cap = svc.settings.image_size_cap
    if expected is not None and expected > cap:
        raise TooLarge(cap_message(cap))
    problem = store.health().problem
    if problem:
        raise ServiceUnavailable(f"Store '{store.store_id}' cannot accept data right now ({problem}).")
    att = lifecycle.take(svc, image, store, expected, resume, writing)
    att.wanted = wanted
    try:
        if stage:
            return lifecycle.staged(svc, att, *stream(svc, att, req))
        return lifecycle.activate(svc, att, *stream(svc, att, req))
    except BaseException as exc:
        if not isinstance(exc, Gone):
            # DELETE removes what the attempt holds, so the upload may fail in odd ways
            # (a vanished temp file, an aborted multipart upload); say what really happened.
            gone = lifecycle.deleted_error(image.id)
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


def open_writer(att: Attempt) -> StoreWriter:
    """Open the store's writer (continuing the kept bytes of a resume) and record its state."""
    try:
        writer = att.store.open_writer(att.image.id, att.attempt, att.expected, att.kept)
    except DataMissing:
        raise kept_data_gone(att.image.id) from None
    try:
        lifecycle.record_writer(att, writer.state)
    except BaseException:
        writer.abort()
        raise
    return writer


def stream(svc: Services, att: Attempt, req: UploadRequest) -> tuple[int, str, str, int | None]:
    """Copy the body into the store; returns (size, md5, digest, virtual size) of what was
    committed. On failure the image is queued again, keeping what arrived if the client
    went away (and resumable uploads are on)."""
    try:
        writer = open_writer(att)
    except BaseException as exc:
        lifecycle.requeue(svc, att, _reason(exc))
        raise
    digest = ParallelDigest(svc.settings.hash_algo)
    heartbeat = Heartbeat(att.image.id, att.attempt, max(1.0, svc.settings.upload_lease_seconds / 6))
    try:
        result = _copy(att, req, writer, digest, heartbeat, svc.settings.chunk_size)
    except ClientAborted as exc:
        digest.close()
        heartbeat.stop()
        if not _keep(svc, att, writer):
            writer.abort()
            lifecycle.requeue(svc, att, _reason(exc))
        raise
    except BaseException as exc:
        digest.close()
        heartbeat.stop()
        writer.abort()
        lifecycle.requeue(svc, att, _reason(exc))
        raise
    finally:
        heartbeat.stop()
    return result


def _copy(att: Attempt, req: UploadRequest, writer: StoreWriter, digest: ParallelDigest, heartbeat: Heartbeat,
          chunk_size: int) -> tuple[int, str, str, int | None]:
    """The kept prefix of a resume (already stored) and then the body: digests, format
    checks and limits on every byte, the new bytes to the writer; committed at the end."""
    extra = ExtraDigests(att.wanted, covered=("md5", digest.algorithm))
    sniffer = FormatSniffer()
    total, kept = 0, writer.offset
    for data in _kept_then_body(att, writer, req, chunk_size, digest.wait_backlog):
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
    # Staged data whose formats are not declared yet gets the safety checks only (the
    # import checks the format again once it is declared).
    declared = att.image.disk_format is not None
    virtual_size = check_format(sniffer, att.image.disk_format if declared else None,
                                att.image.container_format if declared else None, total)
    md5, image_digest = digest.finish()
    check_client_digests(att.wanted, {"md5": md5, digest.algorithm: image_digest, **extra.hexdigests()})
    heartbeat.beat_now()
    writer.commit()
    return total, md5, image_digest, virtual_size


def _kept_then_body(att: Attempt, writer: StoreWriter, req: UploadRequest, chunk_size: int, settle):
    """The kept prefix of a resumed upload (already stored), then the request body.

    ``settle`` lets the body reader reuse its buffers once the digests are done with them.
    """
    try:
        yield from writer.kept()
    except DataMissing:
        raise kept_data_gone(req.image_id) from None
    most = _body_most(att, req, writer.offset)
    yield from BodyReader(req.stream, req.content_length, chunk_size, settle, most).chunks()


def _body_most(att: Attempt, req: UploadRequest, kept: int) -> int:
    """The most body bytes worth reading: one past the tightest limit (after the kept prefix)."""
    limits = [att.limit, att.quota_limit, req.image_size]
    return min(limit for limit in limits if limit is not None) - kept + 1


def _check_limits(att: Attempt, req: UploadRequest, total: int) -> None:
    if req.image_size is not None and total > req.image_size:
        raise BadRequest(f"Size exceeds: expected {req.image_size} bytes, got {total} bytes")
    if total > att.limit:
        raise TooLarge(cap_message(att.limit))
    if att.quota_limit is not None and total > att.quota_limit:
        raise TooLarge(f"Image exceeds the storage quota: the upload passed the {att.quota_limit} bytes "
                       f"left in the project's image_size_total quota.")


def _keep(svc: Services, att: Attempt, writer: StoreWriter) -> bool:
    """After a cut-off body: keep what arrived for a resume, if resumable uploads are on and
    the total is known."""
    if not svc.settings.resume_seconds or att.expected is None or writer.offset >= att.expected:
        return False
    size = writer.offset
    state = writer.suspend()
    if state is None:
        return False
    return lifecycle.keep(svc, att, size, state)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or type(exc).__name__
