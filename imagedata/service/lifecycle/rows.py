"""What every transition shares: the attempt that holds an image, the condition that it
still does, the columns of a released or queued image, and the errors of a lost hold."""
from __future__ import annotations

import dataclasses
import logging
import time

from imagedata.db import UNAVAILABLE_ERRORS, database
from imagedata.errors import Conflict, Gone, ImageDataError, ServiceUnavailable
from imagedata.models import Image, utcnow
from imagedata.stores.base import Kept, Store

log = logging.getLogger(__package__)  # one logger for the whole state machine

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


def released_columns() -> dict:
    """Columns of an image that no attempt holds: no lease, no reservation, no kept bytes."""
    return dict(attempt=None, attempt_host=None, attempt_pid=None, attempt_heartbeat=None, attempt_store=None,
                attempt_state=None, reserved_bytes=0, kept_size=None, kept_total=None, kept_expires=None)


def queued_columns() -> dict:
    """Columns of an image back in `queued`: no data, no digests, no attempt."""
    return dict(status="queued", size=None, virtual_size=None, checksum=None, os_hash_algo=None,
                os_hash_value=None, updated_at=utcnow(), **released_columns())


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


def with_fresh_connection(work):
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
