"""The one description of an image and a member, and the marshmallow schemas built from it.

``IMAGE`` and the member tables below are the only place an attribute's type, bounds,
enumeration and mutability are written down. The marshmallow schemas that validate request
bodies are generated here; the JSON-schema documents clients fetch (/v2/schemas/*) and the
OpenAPI document are generated from the same tables in ``api/schema_docs.py``.
"""
from __future__ import annotations

import dataclasses

from marshmallow import Schema, ValidationError, fields, post_dump, validate

from imagedata.errors import BadRequest, Forbidden, TooLarge, not_an_object

IMAGE_EXAMPLE = '{"name": "cirros", "disk_format": "qcow2", "container_format": "bare"}'  # a valid body
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
STATUSES = ("queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated")
MEMBER_STATUSES = ("pending", "accepted", "rejected")
UUID_PATTERN = r"^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
MAX_INT32 = 2**31 - 1  # min_ram and min_disk are 32-bit columns
MAX_NAME = 255  # names, owners, tags, member ids, property names
MAX_PROPERTY_VALUE = 65535  # Glance's property values are a MySQL TEXT column (64 KiB)
MAX_EXTRA_PROPERTIES = 128
MAX_TAGS = 128

WRITE, READ_ONLY_ACCESS, SHOWN = "write", "read-only", "shown"


@dataclasses.dataclass(frozen=True)
class Attribute:
    """One attribute: its JSON type, nullability, bounds, and who may set it.

    ``access`` is ``write`` (clients set it), ``read-only`` (the server owns it; Glance: a
    request naming it is 403) or ``shown`` (described, neither settable nor marked read-only).
    ``conditional`` attributes appear in an image only in some deployments or states.
    """

    name: str
    kind: str  # JSON type: string, integer, boolean or array
    description: str
    access: str = SHOWN
    nullable: bool = False
    enum: tuple = ()
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    items: Attribute | None = None
    items_schema: dict | None = None  # a literal JSON schema for array items (locations only)
    conditional: bool = False


def _text(name, description, max_length=MAX_NAME, **kw) -> Attribute:
    return Attribute(name, "string", description, access=WRITE, nullable=True, max_length=max_length, **kw)


def _server(name, kind, description, **kw) -> Attribute:
    return Attribute(name, kind, description, access=READ_ONLY_ACCESS, **kw)


def _count(name, description) -> Attribute:
    return Attribute(name, "integer", description, access=WRITE, minimum=0, maximum=MAX_INT32)


TAG = Attribute("tag", "string", "A tag", access=WRITE, min_length=1, max_length=MAX_NAME)
EXTRA_PROPERTY = Attribute("additional property", "string", "Any other attribute: a string",
                           access=WRITE, max_length=MAX_PROPERTY_VALUE)
LOCATION_ITEMS = {"type": "object", "properties": {"url": {"type": "string", "maxLength": 255},
                                                   "metadata": {"type": "object"}},
                  "required": ["url", "metadata"]}

IMAGE = (
    Attribute("id", "string", "Image identifier (a UUID)", access=WRITE, pattern=UUID_PATTERN),
    _text("name", "Image name"),
    _server("status", "string", "Image status", enum=STATUSES),
    Attribute("visibility", "string", "Who can see the image", access=WRITE, enum=VISIBILITIES),
    Attribute("protected", "boolean", "If true, the image cannot be deleted.", access=WRITE),
    Attribute("os_hidden", "boolean", "If true, default listings omit the image.", access=WRITE),
    _server("checksum", "string", "MD5 of the image data", nullable=True, max_length=32),
    _server("os_hash_algo", "string", "Algorithm of os_hash_value", nullable=True, max_length=64),
    _server("os_hash_value", "string", "Hex digest of the image data", nullable=True, max_length=128),
    _text("owner", "Project owning the image"),
    _server("size", "integer", "Size of the image data in bytes", nullable=True),
    _server("virtual_size", "integer", "Virtual size of the disk in bytes", nullable=True),
    Attribute("container_format", "string", "Container format", access=WRITE, nullable=True,
              enum=CONTAINER_FORMATS),
    Attribute("disk_format", "string", "Disk format", access=WRITE, nullable=True, enum=DISK_FORMATS),
    _server("created_at", "string", "When the image was created"),
    _server("updated_at", "string", "When the image was last changed"),
    Attribute("tags", "array", "Tags of the image", access=WRITE, items=TAG),
    _server("direct_url", "string", "Never shown by this service", conditional=True),
    _count("min_ram", "RAM needed to boot (MB)"),
    _count("min_disk", "Disk needed to boot (GB)"),
    _server("self", "string", "URL of the image record"),
    _server("file", "string", "URL of the image data"),
    _server("stores", "string", "Store holding the image data (comma-separated ids)", conditional=True),
    _server("schema", "string", "URL of this schema"),
    Attribute("locations", "array", "Not exposed by this service", items_schema=LOCATION_ITEMS, conditional=True),
)

MEMBER_ID = Attribute("member_id", "string", "Member project", min_length=1, max_length=MAX_NAME)
MEMBER_STATUS = Attribute("status", "string", "Membership status", enum=MEMBER_STATUSES)
MEMBER = (
    Attribute("image_id", "string", "Image id", pattern=UUID_PATTERN),
    MEMBER_ID,
    MEMBER_STATUS,
    Attribute("created_at", "string", "When the member was added"),
    Attribute("updated_at", "string", "When the member changed"),
    _server("schema", "string", "URL of this schema"),
)
MEMBER_CREATE = (dataclasses.replace(MEMBER_ID, name="member", access=WRITE),)  # body of POST .../members
MEMBER_UPDATE = (dataclasses.replace(MEMBER_STATUS, access=WRITE),)  # body of PUT .../members/{member}

WRITABLE = tuple(a for a in IMAGE if a.access == WRITE)
# Attributes the server owns. Glance: any of these in a request body is 403 "read-only".
READ_ONLY = tuple(a.name for a in IMAGE if a.access == READ_ONLY_ACCESS)
# Set by the service when data declared raw is another disk format (imagedata.service.detected).
DETECTED_FORMAT_PROPERTY = "imagedata_detected_format"
RESERVED = ("location", "locations", "deleted", "deleted_at", DETECTED_FORMAT_PROPERTY)
# The keys every image JSON has (Glance's 22 base keys).
BASE_ATTRIBUTES = tuple(a.name for a in IMAGE if not a.conditional)


class StrictBoolean(fields.Field):
    """A JSON boolean and nothing else (no "true" strings, no 0/1)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value is True or value is False:
            return value
        raise ValidationError("must be a boolean")


class StrictInteger(fields.Field):
    """A JSON integer (not a boolean, float or string) within [minimum, maximum]."""

    def __init__(self, minimum: int | None = None, maximum: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("must be an integer")
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(f"must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ValidationError(f"must be at most {self.maximum}")
        return value


def build_field(attribute: Attribute, required: bool = False) -> fields.Field:
    """The marshmallow field validating ``attribute`` as its table entry describes it."""
    if attribute.kind == "boolean":
        return StrictBoolean(required=required)
    if attribute.kind == "integer":
        return StrictInteger(attribute.minimum, attribute.maximum, required=required, allow_none=attribute.nullable)
    if attribute.kind == "array":
        return fields.List(build_field(attribute.items), required=required)
    checks = []
    if attribute.min_length is not None or attribute.max_length is not None:
        checks.append(validate.Length(min=attribute.min_length, max=attribute.max_length))
    if attribute.enum:
        checks.append(validate.OneOf(attribute.enum))
    if attribute.pattern:
        checks.append(validate.Regexp(attribute.pattern))
    return fields.String(required=required, allow_none=attribute.nullable, validate=checks)


def build_schema(name: str, attributes, required: bool = False) -> type[Schema]:
    """A marshmallow schema class for a body made of ``attributes``."""
    return Schema.from_dict({a.name: build_field(a, required) for a in attributes}, name=name)


ImageWriteSchema = build_schema("ImageWriteSchema", WRITABLE)
IMAGE_WRITE = ImageWriteSchema()
KNOWN_WRITE_FIELDS = {a.name for a in WRITABLE}
EXTRA_VALUE = build_field(EXTRA_PROPERTY)
MemberCreateSchema = build_schema("MemberCreateSchema", MEMBER_CREATE, required=True)
MemberUpdateSchema = build_schema("MemberUpdateSchema", MEMBER_UPDATE, required=True)


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
        raise not_an_object(body, "image attributes", IMAGE_EXAMPLE)
    check_reserved(body)
    try:
        base = IMAGE_WRITE.load({k: v for k, v in body.items() if k in KNOWN_WRITE_FIELDS}, partial=partial)
    except ValidationError as exc:
        raise BadRequest(f"Provided object does not match schema 'image': {_first_error(exc)}") from None
    extras = {k: v for k, v in body.items() if k not in KNOWN_WRITE_FIELDS}
    for key, value in extras.items():
        if len(key) > MAX_NAME:
            raise BadRequest(f"Provided object does not match schema 'image': property name is longer than "
                             f"{MAX_NAME}")
        if not isinstance(value, str):
            raise BadRequest(f"Provided object does not match schema 'image': {str(value)[:80]!r} is not of type"
                             f" 'string' (property '{key}')")
        try:
            EXTRA_VALUE.deserialize(value)
        except ValidationError as exc:
            raise BadRequest(f"Provided object does not match schema 'image': property '{key}': "
                             f"{exc.messages[0]}") from None
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
    """The image JSON, with exactly Glance's field set (``BASE_ATTRIBUTES``, checked by the tests)."""

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
        """Merge extra properties and the stores holding a copy (only once data exists)."""
        out = dict(image.extra_properties)
        out.update(data)
        if image.store_ids and image.status in ("active", "deactivated"):
            out["stores"] = ",".join(image.store_ids)  # Glance: a comma-separated string
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


def load_with(schema: Schema, body, example: str = "{}") -> dict:
    """Validate ``body`` with ``schema``; 400 naming the first problem (``example``: a valid body)."""
    if not isinstance(body, dict):
        raise not_an_object(body, "member fields", example)
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise BadRequest(f"Invalid request body: {_first_error(exc)}") from None
