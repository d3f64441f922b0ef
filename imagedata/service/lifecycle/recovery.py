"""Attempts that died: kept bytes past their time, and leases whose process or heartbeat is
gone, return their image to queued and remove what they left."""
from __future__ import annotations

import datetime
import logging
import os

from imagedata.models import Image, utcnow
from imagedata.service import Services, locations
from imagedata.service.lifecycle.rows import queued_columns

log = logging.getLogger(__package__)  # one logger for the whole state machine


def expire_kept(svc: Services) -> list[str]:
    """Drop kept bytes whose time is up: the image stays queued, its quota is released."""
    expired = []
    now = utcnow()
    query = Image.select().where((Image.status == "queued") & Image.kept_expires.is_null(False)
                                 & (Image.kept_expires <= now))
    for image in query:
        rows = (Image.update(**queued_columns())
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
        rows = (Image.update(**queued_columns())
                .where((Image.id == image.id) & Image.status.in_(streaming) & (Image.attempt == image.attempt))
                .execute())
        if rows != 1:
            continue
        locations.release(svc.stores, image.id, image.attempt_store, image.attempt, image.attempt_state)
        log.warning("image %s: upload %s (host %s pid %s) is gone; image returned to queued",
                    image.id, image.attempt, image.attempt_host, image.attempt_pid)
        recovered.append(image.id)
    return recovered
