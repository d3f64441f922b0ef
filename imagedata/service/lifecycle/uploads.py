"""The transitions of an upload (PUT /file, PUT /stage) and of a migrated image: take,
record the writer, renew, activate or stage, requeue or keep; and delete, deactivate."""
from __future__ import annotations

import datetime
import logging
import os
import uuid

from imagedata.db import UNAVAILABLE_ERRORS, database, write_transaction
from imagedata.errors import ImageNotFound, InvalidImageState
from imagedata.models import Image, utcnow
from imagedata.service import Services, locations, quotas
from imagedata.service.detected import record_detected_format
from imagedata.service.lifecycle.rows import (DATA_STATUSES, Attempt, deleted_error, lost_lease, owns,
                                              queued_columns, released_columns, unavailable,
                                              with_fresh_connection)
from imagedata.stores.base import Kept, Store

log = logging.getLogger(__package__)  # one logger for the whole state machine


def take(svc: Services, image: Image, store: Store, expected: int | None, resume: bool,
         status: str = "saving", reserve_quota: bool = True) -> Attempt:
    """queued -> saving (PUT /file) or uploading (PUT /stage) for a new attempt, with its
    lease and quota reservation (none for a migration: ``reserve_quota=False``), atomically.

    The row must still hold what was read (the same kept bytes, or none), so a resume or a
    restart never acts on data another request changed meanwhile. A fresh start (not a
    resume) removes the bytes an earlier interrupted attempt kept.
    """
    attempt = uuid.uuid4().hex
    same_kept = Image.attempt.is_null() if image.attempt is None else Image.attempt == image.attempt
    kept = Kept(image.attempt_state, image.kept_size) if resume else None
    try:
        with write_transaction():
            fields = {**queued_columns(), "status": status, "attempt": attempt, "attempt_host": svc.settings.host_id,
                      "attempt_pid": os.getpid(), "attempt_heartbeat": utcnow(), "attempt_store": store.store_id,
                      # until the new writer takes over, the row still names the kept bytes
                      "attempt_state": kept.state if kept else None}
            rows = (Image.update(**fields)
                    .where((Image.id == image.id) & (Image.status == "queued") & same_kept
                           & (Image.deleted == False))  # noqa: E712
                    .execute())
            if rows != 1:
                raise deleted_error(image.id) or InvalidImageState(
                    f"Image status transition from queued to {status} is not allowed: "
                    "another upload is in progress or the image changed.")
            reserved, quota_limit = (quotas.reserve_upload(svc.settings, image.id, image.owner, expected)
                                     if reserve_quota else (0, None))
            if reserved:
                Image.update(reserved_bytes=reserved).where(Image.id == image.id).execute()
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable("starting", image.id, exc) from None
    if not resume and image.kept_size is not None:
        locations.release(svc.stores, image.id, image.attempt_store, image.attempt, image.attempt_state)
    log.info("upload %s of image %s started into store %s (declared size %s)",
             attempt, image.id, store.store_id, expected)
    return Attempt(image, store, attempt, expected, svc.settings.image_size_cap, quota_limit, kept,
                   kept.state if kept else None)


def record_writer(att: Attempt, state: str, store_id: str | None = None) -> None:
    """Record what the attempt's writer would leave behind (in ``store_id``, when an import
    writes into several stores in turn); lost lease or no database raises."""
    fields = {"attempt_state": state} if store_id is None else {"attempt_state": state, "attempt_store": store_id}
    try:
        rows = Image.update(**fields).where(owns(att.image.id, att.attempt)).execute()
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable("recording", att.image.id, exc) from None
    if rows != 1:
        raise lost_lease(att.image.id)
    att.state = state


def still_holds(image_id: str, attempt: str) -> bool:
    """Whether ``attempt`` still holds the image (False when the database does not answer)."""
    try:
        return Image.select().where(owns(image_id, attempt)).exists()
    except UNAVAILABLE_ERRORS:
        return False


def renew(image_id: str, attempt: str) -> bool:
    """Prove the attempt is alive; False when it no longer holds the image."""
    return Image.update(attempt_heartbeat=utcnow()).where(owns(image_id, attempt)).execute() == 1


def activate(svc: Services, att: Attempt, size: int, md5: str, digest: str, virtual_size: int | None) -> Image:
    """saving -> active: the committed object becomes the image's first copy. If the attempt
    lost the image meanwhile, its object is removed and that is the error."""
    return _first_copy(svc, att, dict(status="active", size=size, checksum=md5, os_hash_algo=svc.settings.hash_algo,
                                      os_hash_value=digest, virtual_size=virtual_size, updated_at=utcnow()))


def activate_migrated(svc: Services, att: Attempt, status: str, record: dict,
                      updated_at: datetime.datetime) -> Image:
    """saving -> ``status`` (active, or deactivated as it was on the service it comes from)
    with the record carried over by ``imagedata migrate-from-glance``: ``record`` holds the
    size, checksum, os_hash_algo, os_hash_value and virtual_size the migration verified."""
    if status not in DATA_STATUSES:
        raise ValueError(f"a migrated image with data is active or deactivated, not {status}")
    fields = ("size", "checksum", "os_hash_algo", "os_hash_value", "virtual_size")
    return _first_copy(svc, att, dict(status=status, updated_at=updated_at, **{f: record.get(f) for f in fields}))


def _first_copy(svc: Services, att: Attempt, values: dict) -> Image:
    """saving -> ``values`` (status and data columns): the attempt's committed object becomes
    the image's first copy, or is removed when the attempt lost the image meanwhile."""
    size = values["size"]
    values = {**values, **released_columns()}
    try:
        with database.atomic():
            rows = Image.update(**values).where(owns(att.image.id, att.attempt)).execute()
            if rows == 1:
                locations.add_copy(att.image.id, att.store.store_id, att.attempt, size)
                record_detected_format(att.image.id, att.detected)
    except UNAVAILABLE_ERRORS as exc:
        error = unavailable("finishing", att.image.id, exc)
        requeue(svc, att, "the database did not answer")  # on a fresh connection; removes the object
        raise error from None
    if rows != 1:
        locations.release(svc.stores, att.image.id, att.store.store_id, att.attempt)
        raise lost_lease(att.image.id)
    log.info("upload %s of image %s finished: %d bytes in store %s", att.attempt, att.image.id, size,
             att.store.store_id)
    return Image.get_by_id(att.image.id)


def staged(svc: Services, att: Attempt, size: int, md5: str, digest: str, virtual_size: int | None) -> Image:
    """PUT /stage done: the image stays `uploading`, its data waiting in the staging store (a
    staged copy) for an import; the attempt lets go, the quota reservation stays. (Glance
    records the size now and the digests when the import has read the data again.)"""
    values = dict(size=size, updated_at=utcnow(), attempt=None, attempt_host=None, attempt_pid=None,
                  attempt_heartbeat=None, attempt_store=None, attempt_state=None)
    try:
        with database.atomic():
            rows = Image.update(**values).where(owns(att.image.id, att.attempt)).execute()
            if rows == 1:
                locations.add_copy(att.image.id, att.store.store_id, att.attempt, size, status="staged")
    except UNAVAILABLE_ERRORS as exc:
        error = unavailable("staging", att.image.id, exc)
        requeue(svc, att, "the database did not answer")
        raise error from None
    if rows != 1:
        locations.release(svc.stores, att.image.id, att.store.store_id, att.attempt)
        raise lost_lease(att.image.id)
    log.info("stage %s of image %s done: %d bytes wait in the staging store", att.attempt, att.image.id, size)
    return Image.get_by_id(att.image.id)


def requeue(svc: Services, att: Attempt, reason: str) -> bool:
    """saving -> queued after a failed attempt (only while it still holds the image, on a fresh
    connection if the database restarted), then remove what the attempt left in its store;
    False when it no longer held the image."""
    try:
        rows = with_fresh_connection(lambda: Image.update(**queued_columns()).where(
            (Image.id == att.image.id) & (Image.attempt == att.attempt)
            & Image.status.in_(("saving", "uploading"))).execute())
    except Exception as exc:  # recovery resets the image when the lease expires
        log.error("could not return image %s to queued after a failed upload: %s", att.image.id, exc)
        return False
    if rows == 1:  # (otherwise whoever took the image away removed the attempt's data)
        locations.release(svc.stores, att.image.id, att.store.store_id, att.attempt, att.state)
    log.warning("upload %s of image %s failed (%s)%s", att.attempt, att.image.id, reason,
                "; image back to queued" if rows else "")
    return rows == 1


def keep(svc: Services, att: Attempt, size: int, state: str) -> bool:
    """saving -> queued keeping the ``size`` bytes the writer suspended as ``state`` (resumable
    for IMAGEDATA_RESUME_SECONDS; the reservation stays). False (and the bytes removed) when
    the attempt no longer holds the image."""
    now = utcnow()
    fields = dict(status="queued", kept_size=size, kept_total=att.expected, attempt_state=state,
                  kept_expires=now + datetime.timedelta(seconds=svc.settings.resume_seconds),
                  attempt_host=None, attempt_pid=None, attempt_heartbeat=None, updated_at=now)
    try:
        rows = with_fresh_connection(lambda: Image.update(**fields).where(owns(att.image.id, att.attempt)).execute())
    except UNAVAILABLE_ERRORS:
        rows = 0
    if rows != 1:
        locations.release(svc.stores, att.image.id, att.store.store_id, att.attempt, state)
        return False
    log.info("upload %s of image %s interrupted: %d of %d bytes kept for resuming", att.attempt, att.image.id,
             size, att.expected)
    return True


def retire(svc: Services, image: Image) -> Image:
    """Any status -> deleted (the id is never reused); then remove every copy and whatever an
    attempt holds. An upload still streaming notices at its next heartbeat and stops."""
    now = utcnow()
    with write_transaction():
        rows = (Image.update(deleted=True, deleted_at=now, updated_at=now, status="deleted", reserved_bytes=0)
                .where((Image.id == image.id) & (Image.deleted == False)).execute())  # noqa: E712
        if rows != 1:
            raise ImageNotFound(image.id)
        # Re-read inside the transaction: an upload may have made the image active between
        # our read and the update; its copy must go too. (After the update none can finish.)
        deleted = Image.get_by_id(image.id)
        copies = locations.drop_copies(image.id)
    log.info("image %s deleted (was %s)", deleted.id, image.status)
    locations.release_copies(svc.stores, deleted.id, copies)
    locations.release(svc.stores, deleted.id, deleted.attempt_store, deleted.attempt, deleted.attempt_state)
    return deleted


def set_data_status(image_id: str, source: str, target: str) -> bool:
    """active <-> deactivated by compare-and-set; False when the image was not in ``source``."""
    rows = (Image.update(status=target, updated_at=utcnow())
            .where((Image.id == image_id) & (Image.status == source) & (Image.deleted == False)).execute())  # noqa: E712
    return rows == 1
