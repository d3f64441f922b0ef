"""Upload leases and recovery: no image stays in `saving` after its uploader is gone.

A lease names the upload attempt, the host (``IMAGEDATA_HOST_ID``, by default hostname
and boot id) and process holding it, and a heartbeat the uploader renews by time. On its
own host a lease dies with its process; across hosts only the heartbeat counts.
"""
from __future__ import annotations

import datetime
import logging
import os

from imagedata.models import Image, utcnow
from imagedata.stores import StoreRegistry

log = logging.getLogger(__name__)


def lease_fields(attempt: str, host_id: str) -> dict:
    """Columns that record a new lease held by this process."""
    return dict(upload_token=attempt, upload_host=host_id, upload_pid=os.getpid(),
                upload_heartbeat=utcnow(), upload_state=None, reserved_bytes=0, partial_size=None,
                partial_total=None, partial_expires=None)


def released_fields() -> dict:
    """Columns that clear a lease and its quota reservation."""
    return dict(upload_token=None, upload_host=None, upload_pid=None, upload_heartbeat=None,
                upload_state=None, reserved_bytes=0, partial_size=None, partial_total=None,
                partial_expires=None)


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


def lease_is_dead(image: Image, lease_seconds: int, host_id: str,
                  now: datetime.datetime | None = None) -> bool:
    """Dead when its process is gone from this very host, or its heartbeat expired (anywhere)."""
    now = now or utcnow()
    if image.upload_host == host_id and not pid_alive(image.upload_pid):
        return True
    beat = image.upload_heartbeat
    return beat is None or (now - beat).total_seconds() > lease_seconds


def clean_up_attempt(stores: StoreRegistry, image: Image) -> None:
    """Remove what an attempt left in its store: the unfinished object, and a final object
    that a crash between the store's commit and the database's left behind."""
    store = stores.get(image.store)
    if store is None or not image.upload_token:
        return
    try:
        if image.upload_state:
            store.discard(image.upload_state)
        else:  # it died between opening its writer and recording it
            store.discard_attempt(image.id, image.upload_token)
        store.delete(image.id, image.upload_token)
    except Exception as exc:  # the scrubber finds what is left
        log.warning("could not clean up upload %s of image %s: %s", image.upload_token, image.id, exc)


def recover_uploads(svc) -> list[str]:
    """Return every image whose upload lease is dead to `queued`; remove what it left behind.

    Safe with many workers and hosts: the reset is a compare-and-set on the attempt
    id, so a live upload (which renews its heartbeat) is never reset.
    """
    lease_seconds, host_id = svc.settings.upload_lease_seconds, svc.settings.host_id
    recovered = []
    for image in Image.select().where((Image.status == "saving") & (Image.deleted == False)):  # noqa: E712
        if not lease_is_dead(image, lease_seconds, host_id):
            continue
        rows = (Image.update(**queued_fields())
                .where((Image.id == image.id) & (Image.status == "saving")
                       & (Image.upload_token == image.upload_token))
                .execute())
        if rows != 1:
            continue
        clean_up_attempt(svc.stores, image)
        log.warning("image %s: upload %s (host %s pid %s) is gone; image returned to queued",
                    image.id, image.upload_token, image.upload_host, image.upload_pid)
        recovered.append(image.id)
    return recovered
