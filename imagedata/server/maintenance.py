"""Background upkeep in each server process: recover dead uploads, take over dead imports,
keep the image cache true to the database."""
from __future__ import annotations

import logging
import threading

from imagedata import metrics
from imagedata.db import database
from imagedata.service import lifecycle
from imagedata.service.cache import upkeep
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
    if services.cache is not None:
        threading.Thread(target=_sweep_cache, args=(services,), name="imagedata-cache-upkeep", daemon=True).start()
    return thread


def _sweep_cache(services) -> None:
    """Soon after the worker starts (queued images are fetched again after a restart), then
    every ``upkeep.SWEEP_SECONDS``: drop the cached images that were deleted or deactivated,
    fetch the queued ones."""
    stop = threading.Event()
    delay = 1.0
    while not stop.wait(delay):
        delay = upkeep.SWEEP_SECONDS
        try:
            with database.connection_context():
                upkeep.sweep(services)
        except Exception as exc:  # the next round retries
            log.warning("image cache upkeep failed: %s", exc)
