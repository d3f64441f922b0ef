"""The lease while bytes stream: renewed by time from a thread, and noticing when it is lost."""
from __future__ import annotations

import logging
import threading

from imagedata.db import UNAVAILABLE_ERRORS, database
from imagedata.service import lifecycle

log = logging.getLogger(__name__)


class Heartbeat:
    """Renews the lease every ``interval`` seconds from its own thread, whether or not
    bytes arrive, and notices when the lease is gone (the image deleted or reset)."""

    def __init__(self, image_id: str, attempt: str, interval: float):
        self.image_id = image_id
        self.attempt = attempt
        self.interval = interval
        self.lost = False
        self.on_lost: list = []  # called from the heartbeat's thread when the lease is found gone
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
        if not lifecycle.renew(self.image_id, self.attempt) and not self.lost:
            self.lost = True
            for stop in self.on_lost:  # e.g. a web source waiting for its server: cut it now
                stop()

    def check(self) -> None:
        """Raise 410 or 409 if the heartbeat found the lease gone."""
        if self.lost:
            raise lifecycle.lost_lease(self.image_id)

    def beat_now(self) -> None:
        """Renew in the calling thread (before committing): raise if the lease is gone."""
        try:
            self._renew()
        except UNAVAILABLE_ERRORS as exc:
            raise lifecycle.unavailable("renewing", self.image_id, exc) from None
        self.check()

    def stop(self) -> None:
        """Stop the thread (idempotent)."""
        self.stopped.set()
        self.thread.join()
