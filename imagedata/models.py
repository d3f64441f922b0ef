"""Peewee models of the metadata store. Portable SQL only (SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from imagedata.db import database


def utcnow() -> datetime.datetime:
    """Now, as a naive UTC datetime truncated to whole seconds (Glance's precision)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)


class BaseModel(Model):
    """Common base binding every model to the shared database proxy."""

    class Meta:
        database = database


class Image(BaseModel):
    """One image record. Status changes only by compare-and-set updates."""

    id = CharField(primary_key=True, max_length=36)
    name = CharField(max_length=255, null=True)
    status = CharField(max_length=20, default="queued", index=True)
    visibility = CharField(max_length=16, default="shared")
    protected = BooleanField(default=False)
    os_hidden = BooleanField(default=False)
    checksum = CharField(max_length=32, null=True)
    os_hash_algo = CharField(max_length=64, null=True)
    os_hash_value = CharField(max_length=128, null=True)
    size = BigIntegerField(null=True)
    virtual_size = BigIntegerField(null=True)
    disk_format = CharField(max_length=32, null=True)
    container_format = CharField(max_length=32, null=True)
    min_disk = IntegerField(default=0)
    min_ram = IntegerField(default=0)
    owner = CharField(max_length=255, null=True, index=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    deleted = BooleanField(default=False, index=True)
    deleted_at = DateTimeField(null=True)
    # The upload attempt that holds the image now (writing, or keeping the bytes of an
    # interrupted upload), which host and process run it, and when it last proved it is alive.
    # Written only by imagedata.service.lifecycle.
    attempt = CharField(max_length=36, null=True, index=True)
    attempt_host = CharField(max_length=255, null=True)
    attempt_pid = IntegerField(null=True)
    attempt_heartbeat = DateTimeField(null=True)
    # The store the attempt writes into, and what it would leave there if it died (the store
    # driver's writer state: a temp file name, a multipart upload), so any host can clean up.
    attempt_store = CharField(max_length=64, null=True)
    attempt_state = TextField(null=True)
    # Bytes reserved against the owner's quota by the attempt (writing, or keeping bytes).
    reserved_bytes = BigIntegerField(default=0)
    # An interrupted upload whose bytes are kept for a resume (the image stays `queued`): how
    # many bytes, of which declared total, until when.
    kept_size = BigIntegerField(null=True)
    kept_total = BigIntegerField(null=True)
    kept_expires = DateTimeField(null=True)


class ImageLocation(BaseModel):
    """One verified copy of an image's data: which store holds it, written by which attempt.

    An image with data has one or more copies, at most one per store; downloads read from a
    copy in a healthy store. Written only by imagedata.service.locations.
    """

    image = ForeignKeyField(Image, backref="locations", on_delete="CASCADE")
    store = CharField(max_length=64)
    attempt = CharField(max_length=32)
    size = BigIntegerField()
    # "active" (serves downloads) or "broken" (scrub found it missing or wrong: never served).
    status = CharField(max_length=16, default="active")
    error = CharField(max_length=255, null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("image", "store"), True),)


class ImageProperty(BaseModel):
    """A string-valued extra property of an image."""

    image = ForeignKeyField(Image, backref="properties", on_delete="CASCADE")
    name = CharField(max_length=255)
    value = TextField()

    class Meta:
        indexes = ((("image", "name"), True),)


class ImageTag(BaseModel):
    """A tag of an image (a set: unique per image)."""

    image = ForeignKeyField(Image, backref="tags", on_delete="CASCADE")
    value = CharField(max_length=255)

    class Meta:
        indexes = ((("image", "value"), True),)


class ImageMember(BaseModel):
    """A project an image is shared with, and whether it accepted."""

    image = ForeignKeyField(Image, backref="members", on_delete="CASCADE")
    member = CharField(max_length=255)
    status = CharField(max_length=20, default="pending")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        primary_key = CompositeKey("image", "member")


class Token(BaseModel):
    """An API token; only the SHA-256 of the secret is stored."""

    token_hash = CharField(max_length=64, unique=True)
    token_id = CharField(max_length=16, unique=True)
    user_id = CharField(max_length=255)
    project_id = CharField(max_length=255)
    roles = CharField(max_length=1024, default="")
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(null=True)
    revoked = BooleanField(default=False)


class ProjectQuota(BaseModel):
    """Per-project quota overrides; a null limit means "use the default"."""

    project = CharField(primary_key=True, max_length=255)
    image_size_total = BigIntegerField(null=True)
    image_count_total = IntegerField(null=True)
    image_count_uploading = IntegerField(null=True)
    # Bumped inside every reservation transaction so concurrent reservations
    # for one project serialise on this row (on every database engine).
    serial = BigIntegerField(default=0)


class Task(BaseModel):
    """An asynchronous task (Glance's tasks): an import, its progress and its outcome.

    ``input`` and ``result`` hold JSON text; ``expires_at`` is set when the task ends
    (success or failure), after which it is no longer shown. Status changes only through
    ``imagedata.service.tasks``.
    """

    id = CharField(primary_key=True, max_length=36)
    type = CharField(max_length=30)
    status = CharField(max_length=30, index=True)
    owner = CharField(max_length=255, null=True, index=True)
    image_id = CharField(max_length=36, null=True, index=True)
    user_id = CharField(max_length=255, null=True)
    request_id = CharField(max_length=255, null=True)
    input = TextField(null=True)
    result = TextField(null=True)
    message = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(null=True, index=True)


class MetadefNamespace(BaseModel):
    """A metadata definition namespace: a named catalogue of properties, objects and tags."""

    namespace = CharField(max_length=80, unique=True)
    display_name = CharField(max_length=80, null=True)
    description = TextField(null=True)
    visibility = CharField(max_length=16, default="private")
    protected = BooleanField(default=False)
    owner = CharField(max_length=255, null=True, index=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class MetadefResourceType(BaseModel):
    """A kind of resource namespaces apply to (``OS::Glance::Image``); made by its first association."""

    name = CharField(max_length=80, unique=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class MetadefAssociation(BaseModel):
    """A namespace applies to a resource type, its property names prefixed with ``prefix``."""

    namespace = ForeignKeyField(MetadefNamespace, backref="associations", on_delete="CASCADE")
    resource_type = ForeignKeyField(MetadefResourceType, backref="associations", index=True)
    prefix = CharField(max_length=80, null=True)
    properties_target = CharField(max_length=80, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("namespace", "resource_type"), True),)


class MetadefObject(BaseModel):
    """A named group of property definitions in a namespace (JSON text: ``properties``, ``required``)."""

    namespace = ForeignKeyField(MetadefNamespace, backref="objects", on_delete="CASCADE")
    name = CharField(max_length=80)
    description = TextField(null=True)
    required = TextField(default="[]")
    properties = TextField(default="{}")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("namespace", "name"), True),)


class MetadefProperty(BaseModel):
    """One property definition of a namespace: a JSON-schema fragment (``definition``, JSON text)."""

    namespace = ForeignKeyField(MetadefNamespace, backref="properties", on_delete="CASCADE")
    name = CharField(max_length=80)
    definition = TextField()
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("namespace", "name"), True),)


class MetadefTag(BaseModel):
    """A tag a namespace suggests for its resources."""

    namespace = ForeignKeyField(MetadefNamespace, backref="tags", on_delete="CASCADE")
    name = CharField(max_length=80)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("namespace", "name"), True),)


METADEF_MODELS = (MetadefNamespace, MetadefResourceType, MetadefAssociation, MetadefObject, MetadefProperty,
                  MetadefTag)
ALL_MODELS = (Image, ImageLocation, ImageProperty, ImageTag, ImageMember, Token, ProjectQuota, Task) + METADEF_MODELS
