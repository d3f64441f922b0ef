"""Background upkeep in each server process: recover dead uploads periodically."""
from __future__ import annotations

import logging
import threading

from imagedata import metrics
from imagedata.db import database
from imagedata.service.lease import recover_uploads
from imagedata.service.resume import expire_partials

log = logging.getLogger(__name__)


def start_maintenance(app) -> threading.Thread | None:
    """Every half lease (at least every second), in a daemon thread: recover dead uploads and
    expire kept partial uploads."""
    services = app.extensions["imagedata"]
    interval = max(1.0, services.settings.upload_lease_seconds / 2)

    def loop():
        stop = threading.Event()
        while not stop.wait(interval):
            try:
                with database.connection_context():
                    metrics.count_recoveries(len(recover_uploads(services)))
                    expire_partials(services.stores)
            except Exception as exc:  # the next round retries
                log.warning("periodic upload recovery failed: %s", exc)

    thread = threading.Thread(target=loop, name="imagedata-maintenance", daemon=True)
    thread.start()
    return thread
