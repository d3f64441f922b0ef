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
from imagedata.models import Image, ImageProperty, utcnow
from imagedata.service import Services, locations, quotas
from imagedata.service.detected import record_detected_format
from imagedata.stores.base import Kept, Store

log = logging.getLogger(__name__)

DATA_STATUSES = ("active", "deactivated")
# The statuses in which an attempt holds an image: PUT /file, PUT /stage, an import, a copy.
HELD = ("saving", "uploading", "importing", "active")
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
    detected: str | None = None  # a disk format found in data declared raw (service.detected)


def owns(image_id: str, attempt: str):
    """The condition under which ``attempt`` still holds the image while it writes (an
    upload, a stage, an import, or a copy to another store of an active image)."""
    return ((Image.id == image_id) & (Image.attempt == attempt) & Image.status.in_(HELD)
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
            fields = {**_queued(), "status": status, "attempt": attempt, "attempt_host": svc.settings.host_id,
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
    values = {**values, **_released()}
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
    streaming = ("saving", "uploading")  # (an import holds its image too: see imports.takeover)
    query = Image.select().where(Image.status.in_(streaming) & Image.attempt.is_null(False)
                                 & (Image.deleted == False))  # noqa: E712
    for image in query:
        if not lease_is_dead(image, lease_seconds, host_id):
            continue
        rows = (Image.update(**_queued())
                .where((Image.id == image.id) & Image.status.in_(streaming) & (Image.attempt == image.attempt))
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


# Interoperable import: the image is held by its import task's attempt while data moves.
IMPORT_SOURCE_STATUS = {"glance-direct": "uploading", "web-download": "queued", "copy-image": "active"}
TASK_PROPERTY, TO_STORES_PROPERTY, FAILED_PROPERTY = (
    "os_glance_import_task", "os_glance_importing_to_stores", "os_glance_failed_import")


def _set_properties(image_id: str, values: dict[str, str | None]) -> None:
    """Write the reserved properties the import keeps on the image (None removes one)."""
    for name, value in values.items():
        ImageProperty.delete().where((ImageProperty.image == image_id) & (ImageProperty.name == name)).execute()
        if value is not None:
            ImageProperty.insert(image=image_id, name=name, value=value).execute()


def _property(image_id: str, name: str) -> str:
    row = ImageProperty.get_or_none((ImageProperty.image == image_id) & (ImageProperty.name == name))
    return row.value if row is not None else ""


def import_task_of(image_id: str) -> str | None:
    """The id of the import task that holds the image (``os_glance_import_task``), if any."""
    return _property(image_id, TASK_PROPERTY) or None


def _without(listed: str, store_id: str) -> str:
    return ",".join(item for item in listed.split(",") if item and item != store_id)


def _with(listed: str, store_id: str) -> str:
    return ",".join(dict.fromkeys([item for item in listed.split(",") if item] + [store_id]))


def begin_import(svc: Services, image: Image, method: str, task_id: str, stores: list[str]) -> Attempt:
    """Hold the image for an import: uploading (glance-direct) or queued (web-download) ->
    importing; an active image (copy-image) stays active. One import at a time: 409 while
    another attempt holds the image. web-download reserves quota as a chunked upload does."""
    source = IMPORT_SOURCE_STATUS[method]
    target = "active" if method == "copy-image" else "importing"
    attempt = uuid.uuid4().hex
    free = Image.attempt.is_null()
    if method == "web-download" and image.attempt is not None and image.kept_size is not None:
        free = Image.attempt == image.attempt  # the kept bytes of a cut PUT /file give way
    quota_limit = None
    try:
        with write_transaction():
            fields = dict(status=target, attempt=attempt, attempt_host=svc.settings.host_id, attempt_pid=os.getpid(),
                          attempt_heartbeat=utcnow(), attempt_store=None, attempt_state=None, updated_at=utcnow())
            if method == "web-download":
                fields.update(reserved_bytes=0, kept_size=None, kept_total=None, kept_expires=None)
            rows = (Image.update(**fields).where((Image.id == image.id) & (Image.status == source) & free
                                                 & (Image.deleted == False)).execute())  # noqa: E712
            if rows != 1:
                raise deleted_error(image.id) or Conflict(
                    f"Image {image.id} is being imported or changed meanwhile; try again when it is done.")
            if method == "web-download":
                reserved, quota_limit = quotas.reserve_upload(svc.settings, image.id, image.owner, None)
                if reserved:
                    Image.update(reserved_bytes=reserved).where(Image.id == image.id).execute()
            _set_properties(image.id, {TASK_PROPERTY: task_id, TO_STORES_PROPERTY: ",".join(stores),
                                       FAILED_PROPERTY: ""})
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable("starting the import of", image.id, exc) from None
    if method == "web-download" and image.kept_size is not None:
        locations.release(svc.stores, image.id, image.attempt_store, image.attempt, image.attempt_state)
    log.info("import %s (%s) of image %s started by task %s into %s", attempt, method, image.id, task_id,
             ",".join(stores))
    expected = image.size if method != "web-download" else None
    return Attempt(Image.get_by_id(image.id), None, attempt, expected, svc.settings.image_size_cap, quota_limit)


def take_over_import(svc: Services, image: Image) -> Attempt | None:
    """Hold an import whose attempt died for a new attempt on this host (None if someone else
    took it first); what the dead attempt was writing is removed."""
    attempt = uuid.uuid4().hex
    rows = (Image.update(attempt=attempt, attempt_host=svc.settings.host_id, attempt_pid=os.getpid(),
                         attempt_heartbeat=utcnow(), attempt_store=None, attempt_state=None)
            .where((Image.id == image.id) & (Image.attempt == image.attempt) & Image.status.in_(("importing", "active"))
                   & (Image.deleted == False)).execute())  # noqa: E712
    if rows != 1:
        return None
    locations.release(svc.stores, image.id, image.attempt_store, image.attempt, image.attempt_state)
    log.warning("image %s: import attempt %s (host %s pid %s) is gone; attempt %s takes it over", image.id,
                image.attempt, image.attempt_host, image.attempt_pid, attempt)
    held = Image.get_by_id(image.id)
    return Attempt(held, None, attempt, held.size, svc.settings.image_size_cap, None)


def dead_imports(svc: Services) -> list[Image]:
    """Images held by an import (or a copy) whose attempt is dead."""
    query = Image.select().where(Image.status.in_(("importing", "active")) & Image.attempt.is_null(False)
                                 & (Image.deleted == False))  # noqa: E712
    return [image for image in query
            if lease_is_dead(image, svc.settings.upload_lease_seconds, svc.settings.host_id)]


def import_copy_done(svc: Services, att: Attempt, store_id: str, size: int) -> None:
    """A verified copy of the import in ``store_id``: recorded, and the store leaves
    ``os_glance_importing_to_stores``. If the import lost the image, the copy is removed."""
    with database.atomic():
        rows = (Image.update(attempt_store=None, attempt_state=None, updated_at=utcnow())
                .where(owns(att.image.id, att.attempt)).execute())
        if rows == 1:
            locations.add_copy(att.image.id, store_id, att.attempt, size)
            _set_properties(att.image.id, {TO_STORES_PROPERTY: _without(
                _property(att.image.id, TO_STORES_PROPERTY), store_id)})
    if rows != 1:
        locations.release(svc.stores, att.image.id, store_id, att.attempt)
        raise lost_lease(att.image.id)


def import_copy_failed(svc: Services, att: Attempt, store_id: str) -> None:
    """The copy to ``store_id`` failed: it moves to ``os_glance_failed_import``; what the
    writer left is removed."""
    locations.release(svc.stores, att.image.id, store_id, att.attempt, att.state)
    with database.atomic():
        if Image.select().where(owns(att.image.id, att.attempt)).exists():
            _set_properties(att.image.id, {
                TO_STORES_PROPERTY: _without(_property(att.image.id, TO_STORES_PROPERTY), store_id),
                FAILED_PROPERTY: _with(_property(att.image.id, FAILED_PROPERTY), store_id)})


def import_active(svc: Services, att: Attempt, size: int, md5: str, digest: str, virtual_size: int | None,
                  disk_format: str | None = None, detected: str | None = None) -> None:
    """importing -> active once the data has a verified copy: the digests are recorded (and
    a disk format ``detected`` in data declared raw) and the reservation released; the
    import holds on for the stores still to go."""
    values = dict(status="active", size=size, checksum=md5, os_hash_algo=svc.settings.hash_algo,
                  os_hash_value=digest, virtual_size=virtual_size, reserved_bytes=0, updated_at=utcnow())
    if disk_format is not None:  # converted on import
        values["disk_format"] = disk_format
    with database.atomic():
        rows = (Image.update(**values).where(owns(att.image.id, att.attempt) & (Image.status == "importing"))
                .execute())
        if rows == 1:
            record_detected_format(att.image.id, detected)
    if rows != 1:
        raise lost_lease(att.image.id)
    log.info("import %s: image %s is active (%d bytes)", att.attempt, att.image.id, size)


def end_import(svc: Services, att: Attempt, reason: str | None = None, revert: tuple[str, ...] = ()) -> bool:
    """Let go of the image when the import is over: an image still `importing` (no copy
    made it, or every store had to) goes back to queued and loses the import's copies; the
    copies in the stores of ``revert`` (a copy-image that failed where every store had to
    succeed) go too; the staged data is removed either way. Returns whether the image is active."""
    try:
        def finish() -> tuple[int, list, Image | None]:
            with database.atomic():
                image = Image.get_or_none((Image.id == att.image.id) & (Image.attempt == att.attempt))
                if image is None:
                    return 0, [], None
                failed = image.status == "importing"
                fields = _queued() if failed else {**_released(), "updated_at": utcnow()}
                rows = Image.update(**fields).where((Image.id == image.id) & (Image.attempt == att.attempt)).execute()
                # An image still `importing` has no copy but this import's (its first copies
                # may be a dead attempt's, taken over): a failed import drops them all.
                dropped = [copy for copy in locations.copies_of(image.id)
                           if copy.status == "staged" or failed or copy.store in revert]
                locations.drop_copies_of(image.id, [copy.id for copy in dropped])
                # The import is over: a store it did not get to has failed too.
                failed_stores = _property(image.id, FAILED_PROPERTY)
                for store_id in _property(image.id, TO_STORES_PROPERTY).split(","):
                    failed_stores = _with(failed_stores, store_id) if store_id else failed_stores
                _set_properties(image.id, {TASK_PROPERTY: None, TO_STORES_PROPERTY: "", FAILED_PROPERTY: failed_stores})
                return rows, dropped, image
        rows, dropped, image = _with_fresh_connection(finish)
    except Exception as exc:  # the lease expires and another host ends it
        log.error("could not end the import %s of image %s: %s", att.attempt, att.image.id, exc)
        return False
    if image is not None:
        locations.release_copies(svc.stores, att.image.id, dropped)
        locations.release(svc.stores, att.image.id, image.attempt_store, att.attempt, image.attempt_state)
    active = image is not None and image.status != "importing"
    log.log(logging.INFO if active else logging.WARNING, "import %s of image %s ended%s%s", att.attempt,
            att.image.id, f" ({reason})" if reason else "", "" if active else "; image back to queued")
    return rows == 1 and active
