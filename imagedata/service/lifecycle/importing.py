"""The transitions of an interoperable import (glance-direct, web-download, copy-image): the
image is held by its import task's attempt while data moves, and the reserved properties
``os_glance_*`` say where it goes and where it failed."""
from __future__ import annotations

import logging
import os
import uuid

from imagedata.db import UNAVAILABLE_ERRORS, database, write_transaction
from imagedata.errors import Conflict
from imagedata.models import Image, ImageProperty, utcnow
from imagedata.service import Services, locations, quotas
from imagedata.service.detected import record_detected_format
from imagedata.service.lifecycle.recovery import lease_is_dead
from imagedata.service.lifecycle.rows import (DATA_STATUSES, Attempt, deleted_error, lost_lease, owns, queued_columns,
                                              released_columns, unavailable, with_fresh_connection)

log = logging.getLogger(__package__)  # one logger for the whole state machine

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
    succeed) go too; the staged data is removed either way. Returns whether the image has data
    (active, or deactivated meanwhile) and was not deleted."""
    try:
        def finish() -> tuple[int, list, Image | None]:
            with database.atomic():
                image = Image.get_or_none((Image.id == att.image.id) & (Image.attempt == att.attempt))
                if image is None:
                    return 0, [], None
                failed = image.status == "importing"
                fields = queued_columns() if failed else {**released_columns(), "updated_at": utcnow()}
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
        rows, dropped, image = with_fresh_connection(finish)
    except Exception as exc:  # the lease expires and another host ends it
        log.error("could not end the import %s of image %s: %s", att.attempt, att.image.id, exc)
        return False
    if image is not None:
        locations.release_copies(svc.stores, att.image.id, dropped)
        locations.release(svc.stores, att.image.id, image.attempt_store, att.attempt, image.attempt_state)
    # (read before the update: a delete meanwhile shows as `deleted`, which is no success)
    active = image is not None and image.status in DATA_STATUSES and not image.deleted
    after = ("" if active else "; another attempt holds the image" if image is None
             else "; image deleted" if image.deleted else "; image back to queued")
    log.log(logging.INFO if active else logging.WARNING, "import %s of image %s ended%s%s", att.attempt,
            att.image.id, f" ({reason})" if reason else "", after)
    return rows == 1 and active
