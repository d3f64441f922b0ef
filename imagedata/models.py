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
    # Where the data lives: a configured store id (None while there is no data).
    store = CharField(max_length=64, null=True)
    # Which stored object holds the data: the id of the upload attempt that wrote it.
    data_key = CharField(max_length=32, null=True)
    # Set by `imagedata scrub` when an active image's file is missing or wrong.
    data_error = CharField(max_length=255, null=True)
    # The upload lease: who is writing data now, and when they last proved it.
    upload_token = CharField(max_length=36, null=True, index=True)
    upload_host = CharField(max_length=255, null=True)
    upload_pid = IntegerField(null=True)
    upload_heartbeat = DateTimeField(null=True)
    # What the upload in flight would leave in its store if it died (the store driver's
    # writer state: a temp file name, a multipart upload), so any host can clean it up.
    upload_state = TextField(null=True)
    # Bytes reserved against the owner's quota by the upload in flight (or by kept partial data).
    reserved_bytes = BigIntegerField(default=0)
    # An interrupted upload whose bytes are kept (the image stays `queued`): how many bytes,
    # of which declared total, until when. `upload_token` names the attempt that kept them and
    # `upload_state` the store's description of them.
    partial_size = BigIntegerField(null=True)
    partial_total = BigIntegerField(null=True)
    partial_expires = DateTimeField(null=True)


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
ALL_MODELS = (Image, ImageProperty, ImageTag, ImageMember, Token, ProjectQuota) + METADEF_MODELS
