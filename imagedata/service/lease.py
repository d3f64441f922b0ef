"""Upload leases and recovery: no image stays in `saving` after its uploader is gone."""
from __future__ import annotations

import datetime
import logging
import os
import socket

from imagedata.models import Image, utcnow

log = logging.getLogger(__name__)


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return "noboot"


# Identifies this host *and boot*: a pid recorded before a reboot is not "ours".
HOST_ID = f"{socket.gethostname()}:{_boot_id()}"


def lease_fields(attempt: str) -> dict:
    """Columns that record a new lease held by this process."""
    return dict(upload_token=attempt, upload_host=HOST_ID, upload_pid=os.getpid(),
                upload_heartbeat=utcnow(), reserved_bytes=0)


def released_fields() -> dict:
    """Columns that clear a lease and its quota reservation."""
    return dict(upload_token=None, upload_host=None, upload_pid=None, upload_heartbeat=None,
                reserved_bytes=0)


def queued_fields() -> dict:
    """Columns that return an image to `queued`: no data, no hashes, no lease, no reservation."""
    return dict(status="queued", store=None, data_key=None, size=None, virtual_size=None, checksum=None,
                os_hash_algo=None, os_hash_value=None, data_error=None, updated_at=utcnow(),
                **released_fields())


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


def lease_is_dead(image: Image, lease_seconds: int, now: datetime.datetime | None = None) -> bool:
    """A lease is dead when its process is gone from this host, or it expired anywhere."""
    now = now or utcnow()
    if image.upload_host == HOST_ID and not pid_alive(image.upload_pid):
        return True
    beat = image.upload_heartbeat
    return beat is None or (now - beat).total_seconds() > lease_seconds


def recover_uploads(stores, lease_seconds: int) -> list[str]:
    """Return every image whose upload lease is dead to `queued`; remove its temp file.

    Safe with many workers and hosts: the reset is a compare-and-set on the attempt
    id, so a live upload (which renews its heartbeat) is never reset.
    """
    recovered = []
    for image in Image.select().where((Image.status == "saving") & (Image.deleted == False)):  # noqa: E712
        if not lease_is_dead(image, lease_seconds):
            continue
        rows = (Image.update(**queued_fields())
                .where((Image.id == image.id) & (Image.status == "saving")
                       & (Image.upload_token == image.upload_token))
                .execute())
        if rows != 1:
            continue
        store = stores.get(image.store) if image.store else None
        if store is not None and image.upload_token:
            store.discard_attempt(image.id, image.upload_token)
            # A crash between rename and commit leaves the final object: drop it too.
            try:
                store.delete(image.id, image.upload_token)
            except Exception as exc:
                log.warning("could not remove stray object of image %s: %s", image.id, exc)
        log.warning("image %s: upload %s (host %s pid %s) is gone; image returned to queued",
                    image.id, image.upload_token, image.upload_host, image.upload_pid)
        recovered.append(image.id)
    return recovered
