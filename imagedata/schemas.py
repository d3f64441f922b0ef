"""marshmallow schemas for request and response bodies."""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_dump, validate

from imagedata.errors import BadRequest, Forbidden, TooLarge

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
STATUSES = ("queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated")
MEMBER_STATUSES = ("pending", "accepted", "rejected")
UUID_PATTERN = r"^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"

# Attributes the server owns. Glance: any of these in a request body is 403 "read-only".
READ_ONLY = ("status", "checksum", "size", "virtual_size", "os_hash_algo", "os_hash_value",
             "created_at", "updated_at", "self", "file", "schema", "stores", "direct_url")
RESERVED = ("location", "locations", "deleted", "deleted_at")
BASE_ATTRIBUTES = ("id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
                   "os_hash_algo", "os_hash_value", "size", "virtual_size", "disk_format",
                   "container_format", "min_disk", "min_ram", "owner", "tags", "created_at",
                   "updated_at", "self", "file", "schema")
MAX_EXTRA_PROPERTIES = 128
MAX_TAGS = 128


class StrictBoolean(fields.Field):
    """A JSON boolean and nothing else (no "true" strings, no 0/1)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value is True or value is False:
            return value
        raise ValidationError("must be a boolean")


MAX_INT32 = 2**31 - 1


class StrictInteger(fields.Field):
    """A JSON integer (not a boolean, float or string) from 0 to 2**31-1 (the column's range)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("must be an integer")
        if value < 0:
            raise ValidationError("must be at least 0")
        if value > MAX_INT32:
            raise ValidationError(f"must be at most {MAX_INT32}")
        return value


class NullableEnum(fields.String):
    """A string from a fixed list, or null."""

    def __init__(self, choices, **kwargs):
        super().__init__(allow_none=True, validate=validate.OneOf(choices), **kwargs)


class ImageWriteSchema(Schema):
    """The attributes a client may give when creating or patching an image."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(validate=validate.Regexp(UUID_PATTERN))
    name = fields.String(allow_none=True, validate=validate.Length(max=255))
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))
    protected = StrictBoolean()
    os_hidden = StrictBoolean()
    disk_format = NullableEnum(DISK_FORMATS)
    container_format = NullableEnum(CONTAINER_FORMATS)
    min_disk = StrictInteger()
    min_ram = StrictInteger()
    owner = fields.String(allow_none=True, validate=validate.Length(max=255))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=255)))


IMAGE_WRITE = ImageWriteSchema()
KNOWN_WRITE_FIELDS = set(ImageWriteSchema._declared_fields)


def check_reserved(body: dict) -> None:
    """403 for attributes no client may set (Glance's order: read-only, then reserved)."""
    for key in body:
        if key in READ_ONLY:
            raise Forbidden(f"Attribute '{key}' is read-only.")
        if key in RESERVED or key.startswith("os_glance"):
            raise Forbidden(f"Attribute '{key}' is reserved.")


def load_image_body(body, partial: bool = False) -> tuple[dict, dict]:
    """Validate an image body; return (base attributes, extra properties)."""
    if not isinstance(body, dict):
        raise BadRequest("Unexpected body type. Expected list/dict.")
    check_reserved(body)
    try:
        base = IMAGE_WRITE.load({k: v for k, v in body.items() if k in KNOWN_WRITE_FIELDS}, partial=partial)
    except ValidationError as exc:
        raise BadRequest(f"Provided object does not match schema 'image': {_first_error(exc)}") from None
    extras = {k: v for k, v in body.items() if k not in KNOWN_WRITE_FIELDS}
    for key, value in extras.items():
        if len(key) > 255:
            raise BadRequest("Provided object does not match schema 'image': property name is longer than 255")
        if not isinstance(value, str):
            raise BadRequest(f"Provided object does not match schema 'image': {value!r} is not of type 'string'"
                             f" (property '{key}')")
    if len(extras) > MAX_EXTRA_PROPERTIES:
        raise TooLarge(f"Maximum number of extra properties ({MAX_EXTRA_PROPERTIES}) exceeded.")
    if "tags" in base:
        base["tags"] = list(dict.fromkeys(base["tags"]))
        if len(base["tags"]) > MAX_TAGS:
            raise TooLarge(f"Maximum number of tags ({MAX_TAGS}) exceeded.")
    return base, extras


def _first_error(exc: ValidationError) -> str:
    messages = exc.normalized_messages()
    key = next(iter(messages))
    detail = messages[key]
    while isinstance(detail, (list, dict)):
        detail = next(iter(detail.values())) if isinstance(detail, dict) else detail[0]
    return f"{key}: {detail}"


def format_time(value) -> str | None:
    """ISO 8601 UTC without fractions, as Glance writes timestamps."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


class ImageSchema(Schema):
    """The image JSON, with exactly Glance's field set."""

    id = fields.String()
    name = fields.String(allow_none=True)
    disk_format = fields.String(allow_none=True)
    container_format = fields.String(allow_none=True)
    visibility = fields.String()
    size = fields.Integer(allow_none=True)
    virtual_size = fields.Integer(allow_none=True)
    status = fields.String()
    checksum = fields.String(allow_none=True)
    protected = fields.Boolean()
    min_ram = fields.Integer()
    min_disk = fields.Integer()
    owner = fields.String(allow_none=True)
    os_hidden = fields.Boolean()
    os_hash_algo = fields.String(allow_none=True)
    os_hash_value = fields.String(allow_none=True)
    created_at = fields.Function(lambda image: format_time(image.created_at))
    updated_at = fields.Function(lambda image: format_time(image.updated_at))
    tags = fields.Function(lambda image: image.tag_list)
    self = fields.Function(lambda image: f"/v2/images/{image.id}")
    file = fields.Function(lambda image: f"/v2/images/{image.id}/file")
    schema = fields.Constant("/v2/schemas/image")

    @post_dump(pass_original=True)
    def add_extras(self, data, image, **kwargs):
        """Merge extra properties and the store id (only once data exists)."""
        out = dict(image.extra_properties)
        out.update(data)
        if image.store and image.status in ("active", "deactivated"):
            out["stores"] = image.store
        return out


IMAGE_OUT = ImageSchema()


class MemberSchema(Schema):
    """An image member record."""

    image_id = fields.Function(lambda m: m.image_id)
    member_id = fields.Function(lambda m: m.member)
    status = fields.String()
    created_at = fields.Function(lambda m: format_time(m.created_at))
    updated_at = fields.Function(lambda m: format_time(m.updated_at))
    schema = fields.Constant("/v2/schemas/member")


MEMBER_OUT = MemberSchema()


class MemberCreateSchema(Schema):
    """Body of POST /v2/images/{id}/members."""

    member = fields.String(required=True, validate=validate.Length(min=1, max=255))


class MemberUpdateSchema(Schema):
    """Body of PUT /v2/images/{id}/members/{member}."""

    status = fields.String(required=True, validate=validate.OneOf(MEMBER_STATUSES))


def load_with(schema: Schema, body) -> dict:
    """Validate ``body`` with ``schema``; 400 naming the first problem."""
    if not isinstance(body, dict):
        raise BadRequest("Unexpected body type. Expected dict.")
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise BadRequest(f"Invalid request body: {_first_error(exc)}") from None
