"""An image's lifecycle: every change of its status and of the columns of its upload attempt.

::

    queued --take--> saving --activate--> active <--deactivate / reactivate--> deactivated
      ^  ^             |  \\--keep--> queued, keeping the bytes that arrived --take (resume)--> saving
      |  +--requeue----+   (a failure; a dead attempt: recover)
      +--expire_kept--- (kept bytes past their time)          any --retire--> deleted

One attempt at a time holds an image: ``attempt`` names it, with the host and process that
run it and a heartbeat it renews by time (``renew``); ``owns()`` is the one definition of
"this attempt still holds the image". Every transition is a compare-and-set on those columns,
so it is correct across workers and hosts. The image's copies are recorded by ``locations``,
which is also the only module that removes data from a store.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import time
import uuid

from imagedata.db import UNAVAILABLE_ERRORS, database, write_transaction
from imagedata.errors import Conflict, Gone, ImageDataError, ImageNotFound, InvalidImageState, ServiceUnavailable
from imagedata.models import Image, utcnow
from imagedata.service import Services, locations, quotas
from imagedata.stores.base import Kept, Store

log = logging.getLogger(__name__)

DATA_STATUSES = ("active", "deactivated")
REQUEUE_TRIES = 4  # returning an image to queued survives a database restart of a few seconds


@dataclasses.dataclass
class Attempt:
    """One upload attempt that holds an image."""

    image: Image
    store: Store
    attempt: str
    expected: int | None
    limit: int  # the image size cap
    quota_limit: int | None
    kept: Kept | None = None  # the kept bytes this attempt continues (a resume)
    state: str | None = None  # what the attempt would leave in its store (its writer's state)
    wanted: dict = dataclasses.field(default_factory=dict)  # the client's digests {algo: raw}


def owns(image_id: str, attempt: str):
    """The condition under which ``attempt`` still holds the image while it writes."""
    return ((Image.id == image_id) & (Image.attempt == attempt) & (Image.status == "saving")
            & (Image.deleted == False))  # noqa: E712


def _released() -> dict:
    """Columns of an image that no attempt holds: no lease, no reservation, no kept bytes."""
    return dict(attempt=None, attempt_host=None, attempt_pid=None, attempt_heartbeat=None, attempt_store=None,
                attempt_state=None, reserved_bytes=0, kept_size=None, kept_total=None, kept_expires=None)


def _queued() -> dict:
    """Columns of an image back in `queued`: no data, no digests, no attempt."""
    return dict(status="queued", size=None, virtual_size=None, checksum=None, os_hash_algo=None,
                os_hash_value=None, updated_at=utcnow(), **_released())


def unavailable(action: str, image_id: str, exc: Exception) -> ServiceUnavailable:
    """The 503 for a database that did not answer during an upload step."""
    log.warning("database unavailable while %s upload of %s: %s", action, image_id, exc)
    return ServiceUnavailable("The image database is busy or unavailable; try again.")


def deleted_error(image_id: str) -> Gone | None:
    """410 if the image was deleted (before or during the upload), else None."""
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
    return deleted_error(image_id) or Conflict(
        f"The upload of image {image_id} lost its lease and was abandoned.")


def take(svc: Services, image: Image, store: Store, expected: int | None, resume: bool) -> Attempt:
    """queued -> saving for a new attempt, with its lease and quota reservation, atomically.

    The row must still hold what was read (the same kept bytes, or none), so a resume or a
    restart never acts on data another request changed meanwhile. A fresh start (not a
    resume) removes the bytes an earlier interrupted attempt kept.
    """
    attempt = uuid.uuid4().hex
    same_kept = Image.attempt.is_null() if image.attempt is None else Image.attempt == image.attempt
    kept = Kept(image.attempt_state, image.kept_size) if resume else None
    try:
        with write_transaction():
            fields = {**_queued(), "status": "saving", "attempt": attempt, "attempt_host": svc.settings.host_id,
                      "attempt_pid": os.getpid(), "attempt_heartbeat": utcnow(), "attempt_store": store.store_id,
                      # until the new writer takes over, the row still names the kept bytes
                      "attempt_state": kept.state if kept else None}
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
    if not resume and image.kept_size is not None:
        locations.release(svc.stores, image.id, image.attempt_store, image.attempt, image.attempt_state)
    log.info("upload %s of image %s started into store %s (declared size %s)",
             attempt, image.id, store.store_id, expected)
    return Attempt(image, store, attempt, expected, svc.settings.image_size_cap, quota_limit, kept,
                   kept.state if kept else None)


def record_writer(att: Attempt, state: str) -> None:
    """Record what the attempt's writer would leave behind; lost lease or no database raises."""
    try:
        rows = Image.update(attempt_state=state).where(owns(att.image.id, att.attempt)).execute()
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable("recording", att.image.id, exc) from None
    if rows != 1:
        raise lost_lease(att.image.id)
    att.state = state


def renew(image_id: str, attempt: str) -> bool:
    """Prove the attempt is alive; False when it no longer holds the image."""
    return Image.update(attempt_heartbeat=utcnow()).where(owns(image_id, attempt)).execute() == 1


def activate(svc: Services, att: Attempt, size: int, md5: str, digest: str, virtual_size: int | None) -> Image:
    """saving -> active: the committed object becomes the image's first copy. If the attempt
    lost the image meanwhile, its object is removed and that is the error."""
    values = dict(status="active", size=size, checksum=md5, os_hash_algo=svc.settings.hash_algo,
                  os_hash_value=digest, virtual_size=virtual_size, updated_at=utcnow(), **_released())
    try:
        with database.atomic():
            rows = Image.update(**values).where(owns(att.image.id, att.attempt)).execute()
            if rows == 1:
                locations.add_copy(att.image.id, att.store.store_id, att.attempt, size)
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


def _with_fresh_connection(work):
    """Run a database step; when the connection died (a database restart), retry it on a new one."""
    for attempt_number in range(1, REQUEUE_TRIES + 1):
        try:
            return work()
        except UNAVAILABLE_ERRORS:
            if attempt_number == REQUEUE_TRIES:
                raise
        try:
            database.close()
        except Exception:  # a dead connection may refuse to close cleanly: it is dropped anyway
            pass
        time.sleep(0.5 * attempt_number)


def requeue(svc: Services, att: Attempt, reason: str) -> bool:
    """saving -> queued after a failed attempt (only while it still holds the image, on a fresh
    connection if the database restarted), then remove what the attempt left in its store;
    False when it no longer held the image."""
    try:
        rows = _with_fresh_connection(lambda: Image.update(**_queued()).where(
            (Image.id == att.image.id) & (Image.attempt == att.attempt) & (Image.status == "saving")).execute())
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
        rows = _with_fresh_connection(lambda: Image.update(**fields).where(owns(att.image.id, att.attempt)).execute())
    except UNAVAILABLE_ERRORS:
        rows = 0
    if rows != 1:
        locations.release(svc.stores, att.image.id, att.store.store_id, att.attempt, state)
        return False
    log.info("upload %s of image %s interrupted: %d of %d bytes kept for resuming", att.attempt, att.image.id,
             size, att.expected)
    return True


def expire_kept(svc: Services) -> list[str]:
    """Drop kept bytes whose time is up: the image stays queued, its quota is released."""
    expired = []
    now = utcnow()
    query = Image.select().where((Image.status == "queued") & Image.kept_expires.is_null(False)
                                 & (Image.kept_expires <= now))
    for image in query:
        rows = (Image.update(**_queued())
                .where((Image.id == image.id) & (Image.status == "queued") & (Image.attempt == image.attempt)
                       & (Image.kept_expires <= now))
                .execute())
        if rows != 1:
            continue
        locations.release(svc.stores, image.id, image.attempt_store, image.attempt, image.attempt_state)
        log.info("image %s: kept bytes of an interrupted upload (%s of %s) expired", image.id, image.kept_size,
                 image.kept_total)
        expired.append(image.id)
    return expired


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this host."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process that its parent has not reaped yet still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def lease_is_dead(image: Image, lease_seconds: int, host_id: str, now: datetime.datetime | None = None) -> bool:
    """Dead when its process is gone from this very host, or its heartbeat expired (anywhere)."""
    now = now or utcnow()
    if image.attempt_host == host_id and not pid_alive(image.attempt_pid):
        return True
    beat = image.attempt_heartbeat
    return beat is None or (now - beat).total_seconds() > lease_seconds


def recover(svc: Services) -> list[str]:
    """Return every image whose attempt is dead to `queued`; remove what the attempt left
    (whatever step it died in: an unfinished object found by name, a recorded writer state,
    kept bytes it was taking over, a committed object not yet recorded)."""
    lease_seconds, host_id = svc.settings.upload_lease_seconds, svc.settings.host_id
    recovered = []
    for image in Image.select().where((Image.status == "saving") & (Image.deleted == False)):  # noqa: E712
        if not lease_is_dead(image, lease_seconds, host_id):
            continue
        rows = (Image.update(**_queued())
                .where((Image.id == image.id) & (Image.status == "saving") & (Image.attempt == image.attempt))
                .execute())
        if rows != 1:
            continue
        locations.release(svc.stores, image.id, image.attempt_store, image.attempt, image.attempt_state)
        log.warning("image %s: upload %s (host %s pid %s) is gone; image returned to queued",
                    image.id, image.attempt, image.attempt_host, image.attempt_pid)
        recovered.append(image.id)
    return recovered


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
