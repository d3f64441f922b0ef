"""Background upkeep in each server process: recover dead uploads, take over dead imports."""
from __future__ import annotations

import logging
import threading

from imagedata import metrics
from imagedata.db import database
from imagedata.service import lifecycle
from imagedata.service.imports.takeover import take_over_imports

log = logging.getLogger(__name__)


def start_maintenance(app) -> threading.Thread | None:
    """Every half lease (at least every second), in a daemon thread: recover dead uploads,
    expire kept bytes of interrupted uploads, and take over imports whose host stopped."""
    services = app.extensions["imagedata"]
    interval = max(1.0, services.settings.upload_lease_seconds / 2)

    def loop():
        stop = threading.Event()
        while not stop.wait(interval):
            try:
                with database.connection_context():
                    metrics.count_recoveries(len(lifecycle.recover(services)))
                    lifecycle.expire_kept(services)
                    take_over_imports(services, background=True)
            except Exception as exc:  # the next round retries
                log.warning("periodic upload recovery failed: %s", exc)

    thread = threading.Thread(target=loop, name="imagedata-maintenance", daemon=True)
    thread.start()
    return thread
