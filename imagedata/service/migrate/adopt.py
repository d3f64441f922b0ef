"""Every write the migration makes to image rows, image data and members, and nothing else.

The public API keeps ``created_at``, ``size``, ``virtual_size``, ``checksum``, ``os_hash_*``,
``status`` and a member's status read-only; a migration sets them to Glance's values here,
through the models, never through the API. The functions are few and narrow so that a change
of the data model (several locations per image, renamed upload columns) is a change of this
module only:

``create_record``    a new image row, queued, with tags, properties and members
``update_metadata``  Glance's metadata over an existing row (``--update-metadata``)
``set_members``      the members and their status, as Glance has them
``write_data``       take the upload lease, stream bytes into a store through its writer while
                     md5 and the multihash are computed, then either activate the image with
                     Glance's record (``activate``) or drop the bytes and leave it queued with
                     the reason (``requeue``)

Columns written: images.{id, name, status, visibility, protected, os_hidden, disk_format,
container_format, min_disk, min_ram, owner, created_at, updated_at, size, virtual_size, checksum,
os_hash_algo, os_hash_value, store, data_key, data_error} and the lease columns through
``lease_fields``/``released_fields``/``queued_fields`` (upload_token, upload_host, upload_pid,
upload_heartbeat, upload_state, reserved_bytes, partial_*); image_tags; image_properties;
image_members.{member, status, created_at, updated_at}. Quotas are not reserved.
"""
from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Callable, Iterable

from peewee import IntegrityError

from imagedata.db import write_transaction
from imagedata.models import Image, ImageMember, ImageProperty, ImageTag, utcnow
from imagedata.service import Services
from imagedata.service.digest import ParallelDigest
from imagedata.service.heartbeat import Heartbeat, holds_lease
from imagedata.service.lease import lease_fields, queued_fields, released_fields
from imagedata.service.migrate.record import BASE_FIELDS, GlanceImage
from imagedata.stores.base import Store

log = logging.getLogger(__name__)


class AdoptConflict(Exception):
    """The row is not in the state the migration expected (someone else changed it)."""


@dataclasses.dataclass
class Written:
    """What ``write_data`` stored and computed; ``problem`` is set when the image was left queued."""

    size: int
    md5: str
    hexdigest: str
    problem: str | None = None


def create_record(glance: GlanceImage) -> None:
    """Insert the image as Glance describes it, queued and without data."""
    values = {**glance.base, "id": glance.id, "status": "queued", "updated_at": glance.updated_at or utcnow()}
    try:
        with write_transaction():
            Image.insert(**values).execute()
            _write_extras(glance)
            set_members(glance)
    except IntegrityError:
        raise AdoptConflict(f"image {glance.id} exists already") from None


def _write_extras(glance: GlanceImage) -> None:
    ImageTag.delete().where(ImageTag.image == glance.id).execute()
    for tag in dict.fromkeys(glance.tags):
        ImageTag.insert(image=glance.id, value=tag).execute()
    ImageProperty.delete().where(ImageProperty.image == glance.id).execute()
    for name, value in glance.properties.items():
        ImageProperty.insert(image=glance.id, name=name, value=value).execute()


def set_members(glance: GlanceImage) -> None:
    """Make the image's members exactly Glance's, with their status and times."""
    ImageMember.delete().where(ImageMember.image == glance.id).execute()
    for member, info in glance.members.items():
        now = utcnow()
        ImageMember.insert(image=glance.id, member=member, status=info["status"],
                           created_at=info["created_at"] or now, updated_at=info["updated_at"] or now).execute()


def update_metadata(glance: GlanceImage, status: str | None = None) -> None:
    """Glance's metadata over the image (and ``status``, active <-> deactivated, when given)."""
    values = {name: glance.base[name] for name in BASE_FIELDS}
    values["updated_at"] = glance.updated_at or utcnow()
    if status is not None:
        values["status"] = status
    with write_transaction():
        rows = (Image.update(**values)
                .where((Image.id == glance.id) & (Image.deleted == False)  # noqa: E712
                       & Image.status.in_(("queued", "active", "deactivated")))
                .execute())
        if rows != 1:
            raise AdoptConflict(f"image {glance.id} changed while it was migrated")
        _write_extras(glance)
        set_members(glance)


def write_data(svc: Services, glance: GlanceImage, store: Store, chunks: Iterable[bytes],
               check: Callable[[Written], str | None]) -> Written:
    """Stream ``chunks`` into ``store`` as the image's data; active (or deactivated) if ``check``
    finds nothing wrong, else queued with the reason in ``data_error``.

    The image holds an upload lease while the bytes stream, so a migration killed midway leaves
    what any upload leaves: ``imagedata recover`` (or the next run) removes it.
    """
    attempt = uuid.uuid4().hex
    _take_lease(svc, glance.id, attempt, store)
    writer = None
    heartbeat = Heartbeat(glance.id, attempt, max(1.0, svc.settings.upload_lease_seconds / 6))
    # The command's own priority: a migration serves no requests that its hashing would slow.
    digest = ParallelDigest(glance.data.get("os_hash_algo") or svc.settings.hash_algo, nice=0)
    try:
        writer = store.open_writer(glance.id, attempt, glance.data.get("size"))
        if Image.update(upload_state=writer.state).where(holds_lease(glance.id, attempt)).execute() != 1:
            raise AdoptConflict(f"image {glance.id} lost its lease")
        size = 0
        for piece in chunks:
            heartbeat.check()
            size += len(piece)
            digest.update(piece)
            writer.write(memoryview(piece))
        md5, hexdigest = digest.finish()
        written = Written(size, md5, hexdigest)
        written.problem = check(written)
        if written.problem is None:
            heartbeat.beat_now()
            writer.commit()
            _activate(glance, attempt, store, written, digest.algorithm)
        else:
            writer.abort()
            _requeue(glance.id, attempt, written.problem)
        return written
    except BaseException as exc:
        digest.close()
        if writer is not None:
            writer.abort()
        _requeue(glance.id, attempt, None)
        log.warning("migration of the data of image %s failed: %s", glance.id, exc)
        raise
    finally:
        heartbeat.stop()


def _take_lease(svc: Services, image_id: str, attempt: str, store: Store) -> None:
    """queued -> saving, by compare-and-set, with no quota reservation (quotas are not enforced)."""
    fields = {**queued_fields(), **lease_fields(attempt, svc.settings.host_id), "status": "saving",
              "store": store.store_id}
    rows = (Image.update(**fields)
            .where((Image.id == image_id) & (Image.status == "queued") & Image.upload_token.is_null()
                   & (Image.deleted == False))  # noqa: E712
            .execute())
    if rows != 1:
        raise AdoptConflict(f"image {image_id} is not queued without an upload in progress")


def _activate(glance: GlanceImage, attempt: str, store: Store, written: Written, algorithm: str) -> None:
    """saving -> Glance's status, with Glance's recorded size and checksums (what was computed
    fills in what Glance never recorded: images older than its multihash have no os_hash_value)."""
    computed = dict(size=written.size, checksum=written.md5, os_hash_algo=algorithm, os_hash_value=written.hexdigest)
    recorded = {name: value for name, value in glance.data.items() if value is not None}
    if "os_hash_value" not in recorded:
        recorded.pop("os_hash_algo", None)
    values = dict(status=glance.status, store=store.store_id, data_key=attempt, data_error=None,
                  updated_at=glance.updated_at or utcnow(), **{**computed, **recorded}, **released_fields())
    if Image.update(**values).where(holds_lease(glance.id, attempt)).execute() != 1:
        store.delete(glance.id, attempt)
        raise AdoptConflict(f"image {glance.id} lost its lease before it was activated")


def _requeue(image_id: str, attempt: str, reason: str | None) -> None:
    """Back to queued without data, keeping why (``data_error``) when the bytes were refused."""
    fields = {**queued_fields(), "data_error": reason[:255] if reason else None}
    try:
        Image.update(**fields).where(holds_lease(image_id, attempt)).execute()
    except Exception as exc:  # recovery resets the image once the lease is seen dead
        log.error("could not return image %s to queued: %s", image_id, exc)
