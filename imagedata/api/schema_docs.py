"""JSON-schema documents clients fetch and validate against (/v2/schemas/...)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from imagedata.api.common import no_body
from imagedata.auth import authenticate
from imagedata.schemas import CONTAINER_FORMATS, DISK_FORMATS, MEMBER_STATUSES, STATUSES, UUID_PATTERN, VISIBILITIES

bp = Blueprint("schemas", __name__, url_prefix="/v2/schemas")
bp.before_request(authenticate)


def _nullable(kind: str, text: str, **extra) -> dict:
    return {"type": ["null", kind], "description": text, **extra}


def _read_only(kind, text: str, **extra) -> dict:
    return {"type": kind, "readOnly": True, "description": text, **extra}


def image_properties() -> dict:
    """The property definitions of one image (shared by the image and images schemas)."""
    return {
        "id": {"type": "string", "description": "Image identifier (a UUID)", "pattern": UUID_PATTERN},
        "name": _nullable("string", "Image name", maxLength=255),
        "status": _read_only("string", "Image status", enum=list(STATUSES)),
        "visibility": {"type": "string", "description": "Who can see the image", "enum": list(VISIBILITIES)},
        "protected": {"type": "boolean", "description": "If true, the image cannot be deleted."},
        "os_hidden": {"type": "boolean", "description": "If true, default listings omit the image."},
        "checksum": _read_only(["null", "string"], "MD5 of the image data", maxLength=32),
        "os_hash_algo": _read_only(["null", "string"], "Algorithm of os_hash_value", maxLength=64),
        "os_hash_value": _read_only(["null", "string"], "Hex digest of the image data", maxLength=128),
        "owner": _nullable("string", "Project owning the image", maxLength=255),
        "size": _read_only(["null", "integer"], "Size of the image data in bytes"),
        "virtual_size": _read_only(["null", "integer"], "Virtual size of the disk in bytes"),
        "container_format": {"type": ["null", "string"], "description": "Container format",
                             "enum": [None, *CONTAINER_FORMATS]},
        "disk_format": {"type": ["null", "string"], "description": "Disk format", "enum": [None, *DISK_FORMATS]},
        "created_at": _read_only("string", "When the image was created"),
        "updated_at": _read_only("string", "When the image was last changed"),
        "tags": {"type": "array", "description": "Tags of the image",
                 "items": {"type": "string", "maxLength": 255}},
        "direct_url": _read_only("string", "Never shown by this service"),
        "min_ram": {"type": "integer", "description": "RAM needed to boot (MB)"},
        "min_disk": {"type": "integer", "description": "Disk needed to boot (GB)"},
        "self": _read_only("string", "URL of the image record"),
        "file": _read_only("string", "URL of the image data"),
        "stores": _read_only("string", "Store holding the image data (comma-separated ids)"),
        "schema": _read_only("string", "URL of this schema"),
        "locations": {"type": "array", "description": "Not exposed by this service",
                      "items": {"type": "object", "properties": {"url": {"type": "string", "maxLength": 255},
                                                                 "metadata": {"type": "object"}},
                                "required": ["url", "metadata"]}},
    }


def image_schema() -> dict:
    """The schema of one image."""
    return {"name": "image", "properties": image_properties(), "additionalProperties": {"type": "string"},
            "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def member_schema() -> dict:
    """The schema of one image member."""
    return {"name": "member", "properties": {
        "image_id": {"type": "string", "description": "Image id", "pattern": UUID_PATTERN},
        "member_id": {"type": "string", "description": "Member project"},
        "status": {"type": "string", "description": "Membership status", "enum": list(MEMBER_STATUSES)},
        "created_at": {"type": "string", "description": "When the member was added"},
        "updated_at": {"type": "string", "description": "When the member changed"},
        "schema": {"type": "string", "readOnly": True, "description": "URL of this schema"}}}


@bp.get("/image")
@no_body
def image():
    """GET /v2/schemas/image."""
    return jsonify(image_schema())


@bp.get("/images")
@no_body
def images():
    """GET /v2/schemas/images."""
    return jsonify({"name": "images", "properties": {
        "images": {"type": "array", "items": image_schema()}, "first": {"type": "string"},
        "next": {"type": "string"}, "schema": {"type": "string"}},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}]})


@bp.get("/member")
@no_body
def member():
    """GET /v2/schemas/member."""
    return jsonify(member_schema())


@bp.get("/members")
@no_body
def members():
    """GET /v2/schemas/members."""
    return jsonify({"name": "members", "properties": {
        "members": {"type": "array", "items": member_schema()}, "schema": {"type": "string"}},
        "links": [{"rel": "describedby", "href": "{schema}"}]})
