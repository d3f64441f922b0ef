"""Every write the migration makes to image rows, image data and members, and nothing else.

The public API keeps ``created_at``, ``size``, ``virtual_size``, ``checksum``, ``os_hash_*``,
``status`` and a member's status read-only; a migration sets them to Glance's values through
the service layer, never through the API. Status, the attempt and the data columns change
only through ``lifecycle`` (which records the copy through ``locations``); this module writes
the rest:

``create_record``    a new image row (queued, the default), with tags, properties and members
``update_metadata``  Glance's metadata over an existing row (``--update-metadata``), and
                     active <-> deactivated through ``lifecycle.set_data_status``
``set_members``      the members and their status, as Glance has them
``write_data``       ``lifecycle.take`` (no quota reserved), stream bytes into a store through its
                     writer while md5 and the multihash are computed, then either
                     ``lifecycle.activate_migrated`` with Glance's record or drop the bytes and
                     ``lifecycle.requeue`` (the reason goes to the run's report)

Columns written here: images.{id, name, visibility, protected, os_hidden, disk_format,
container_format, min_disk, min_ram, owner, created_at, updated_at}; image_tags;
image_properties; image_members.{member, status, created_at, updated_at}.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterable

from peewee import IntegrityError

from imagedata.db import write_transaction
from imagedata.errors import InvalidImageState
from imagedata.models import Image, ImageMember, ImageProperty, ImageTag, utcnow
from imagedata.service import Services, lifecycle
from imagedata.service.digest import ParallelDigest
from imagedata.service.heartbeat import Heartbeat
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
    values = {**glance.base, "id": glance.id, "updated_at": glance.updated_at or utcnow()}
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
    settled = (Image.id == glance.id) & (Image.deleted == False) & Image.status.in_(  # noqa: E712
        ("queued", *lifecycle.DATA_STATUSES))
    with write_transaction():
        row = Image.get_or_none(settled)
        if row is None or (status is not None and status != row.status
                           and not lifecycle.set_data_status(glance.id, row.status, status)):
            raise AdoptConflict(f"image {glance.id} changed while it was migrated")
        if Image.update(**values).where(settled).execute() != 1:
            raise AdoptConflict(f"image {glance.id} changed while it was migrated")
        _write_extras(glance)
        set_members(glance)


def write_data(svc: Services, glance: GlanceImage, store: Store, chunks: Iterable[bytes],
               check: Callable[[Written], str | None]) -> Written:
    """Stream ``chunks`` into ``store`` as the image's data; active (or deactivated) with Glance's
    record if ``check`` finds nothing wrong, else queued again (``Written.problem`` says why).

    The image is held by an upload attempt while the bytes stream, so a migration killed midway
    leaves what any upload leaves: ``imagedata recover`` (or the next run) removes it.
    """
    image = Image.get_by_id(glance.id)
    try:
        # Quotas are not enforced against a migration: Glance accepted these bytes already.
        att = lifecycle.take(svc, image, store, glance.data.get("size"), resume=False, reserve_quota=False)
    except InvalidImageState:
        raise AdoptConflict(f"image {glance.id} is not queued without an upload in progress") from None
    writer = None
    heartbeat = Heartbeat(glance.id, att.attempt, max(1.0, svc.settings.upload_lease_seconds / 6))
    # The command's own priority: a migration serves no requests that its hashing would slow.
    digest = ParallelDigest(glance.data.get("os_hash_algo") or svc.settings.hash_algo, nice=0)
    try:
        writer = store.open_writer(glance.id, att.attempt, glance.data.get("size"))
        lifecycle.record_writer(att, writer.state)
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
            lifecycle.activate_migrated(svc, att, glance.status, _record(glance, written, digest.algorithm),
                                        glance.updated_at or utcnow())
        else:
            writer.abort()
            lifecycle.requeue(svc, att, written.problem)
        return written
    except BaseException as exc:
        digest.close()
        if writer is not None:
            writer.abort()
        lifecycle.requeue(svc, att, f"the migration of its data failed: {exc}")
        raise
    finally:
        heartbeat.stop()


def _record(glance: GlanceImage, written: Written, algorithm: str) -> dict:
    """Glance's recorded size and checksums; what was computed fills in what Glance never
    recorded (images older than its multihash have no os_hash_value)."""
    computed = dict(size=written.size, checksum=written.md5, os_hash_algo=algorithm, os_hash_value=written.hexdigest)
    recorded = {name: value for name, value in glance.data.items() if value is not None}
    if "os_hash_value" not in recorded:
        recorded.pop("os_hash_algo", None)
    return {**computed, **recorded}
