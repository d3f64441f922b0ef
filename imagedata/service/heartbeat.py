"""The upload lease while bytes stream: renewed by time, and what losing it means."""
from __future__ import annotations

import logging
import threading

from imagedata.db import UNAVAILABLE_ERRORS, database
from imagedata.errors import Conflict, Gone, ImageDataError, ServiceUnavailable
from imagedata.models import Image, utcnow

log = logging.getLogger(__name__)


def holds_lease(image_id: str, attempt: str):
    """The condition under which upload ``attempt`` still owns the image."""
    return ((Image.id == image_id) & (Image.upload_token == attempt)
            & (Image.status == "saving") & (Image.deleted == False))  # noqa: E712


def unavailable(action: str, image_id: str, exc: Exception) -> ServiceUnavailable:
    """The 503 for a database that did not answer during an upload step."""
    log.warning("database unavailable while %s upload of %s: %s", action, image_id, exc)
    return ServiceUnavailable("The image database is busy or unavailable; try again.")


class Heartbeat:
    """Renews the lease every ``interval`` seconds from its own thread, whether or not
    bytes arrive, and notices when the lease is gone (the image deleted or reset)."""

    def __init__(self, image_id: str, attempt: str, interval: float):
        self.image_id = image_id
        self.attempt = attempt
        self.interval = interval
        self.lost = False
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                with database.connection_context():
                    self._renew()
            except UNAVAILABLE_ERRORS as exc:
                log.warning("heartbeat of upload %s skipped: %s", self.attempt, exc)
            if self.lost:
                return

    def _renew(self) -> None:
        rows = Image.update(upload_heartbeat=utcnow()).where(holds_lease(self.image_id, self.attempt)).execute()
        if rows != 1:
            self.lost = True

    def check(self) -> None:
        """Raise 410 or 409 if the heartbeat found the lease gone."""
        if self.lost:
            raise lost_lease(self.image_id)

    def beat_now(self) -> None:
        """Renew in the calling thread (before committing): raise if the lease is gone."""
        try:
            self._renew()
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable("renewing", self.image_id, exc) from None
        self.check()

    def stop(self) -> None:
        """Stop the thread (idempotent)."""
        self.stopped.set()
        self.thread.join()


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
