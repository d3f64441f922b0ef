"""GET /v2/openapi.json: an OpenAPI 3 description of the service (used for fuzzing too)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from imagedata import __version__
from imagedata.api.schema_docs import image_properties
from imagedata.schemas import CONTAINER_FORMATS, DISK_FORMATS, MEMBER_STATUSES, VISIBILITIES

bp = Blueprint("openapi", __name__)

ERRORS = {code: {"description": text} for code, text in (
    ("400", "Bad request"), ("401", "No valid token"), ("403", "Forbidden"), ("404", "Not found"),
    ("409", "Conflict"), ("410", "Deleted during the upload"), ("413", "Too large (cap, quota or store full)"),
    ("415", "Unsupported media type"), ("416", "Range not satisfiable"), ("503", "Store or database unavailable"))}


def _param(name: str, where: str, schema: dict, required: bool = False, text: str = "") -> dict:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": text}


IMAGE_ID = _param("image_id", "path", {"type": "string"}, True, "Image id (a UUID)")
TOKEN = {"ApiToken": []}


def _responses(*codes: str, ok: dict | None = None) -> dict:
    out = dict(ok or {})
    out.update({code: ERRORS[code] for code in codes})
    return out


def _json(ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def document() -> dict:
    """The OpenAPI document."""
    image_write = {"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string", "maxLength": 255, "nullable": True},
        "visibility": {"type": "string", "enum": list(VISIBILITIES)}, "protected": {"type": "boolean"},
        "os_hidden": {"type": "boolean"},
        "disk_format": {"type": "string", "enum": list(DISK_FORMATS), "nullable": True},
        "container_format": {"type": "string", "enum": list(CONTAINER_FORMATS), "nullable": True},
        "min_disk": {"type": "integer", "minimum": 0}, "min_ram": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}}},
        "additionalProperties": {"type": "string"}}
    image = {"type": "object", "properties": {k: _openapi_prop(v) for k, v in image_properties().items()},
             "additionalProperties": {"type": "string"}}
    patch_op = {"type": "object", "required": ["op", "path"], "properties": {
        "op": {"type": "string", "enum": ["add", "remove", "replace"]}, "path": {"type": "string"},
        "value": {}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "imagedata", "version": __version__,
                 "description": "OpenStack Image API v2 compatible image-data service."},
        "components": {
            "securitySchemes": {"ApiToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "schemas": {"Image": image, "ImageWrite": image_write, "PatchOp": patch_op},
        },
        "security": [TOKEN],
        "paths": {
            "/versions": {"get": {"security": [], "responses": {"200": {"description": "Versions"}}}},
            "/v2/images": {
                "get": {"parameters": [
                    _param("limit", "query", {"type": "integer", "minimum": 0}),
                    _param("marker", "query", {"type": "string"}),
                    _param("name", "query", {"type": "string"}),
                    _param("status", "query", {"type": "string"}),
                    _param("visibility", "query", {"type": "string", "enum": [*VISIBILITIES, "all"]}),
                    _param("sort_key", "query", {"type": "string"}),
                    _param("sort_dir", "query", {"type": "string", "enum": ["asc", "desc"]}),
                    _param("os_hidden", "query", {"type": "string", "enum": ["true", "false", "True", "False"]})],
                    "responses": _responses("400", "401", ok={"200": {"description": "A page of images"}})},
                "post": {"requestBody": {"required": True, "content": _json("ImageWrite")},
                         "responses": _responses("400", "401", "403", "409", "413",
                                                 ok={"201": {"description": "Created", "content": _json("Image")}})},
            },
            "/v2/images/{image_id}": {
                "parameters": [IMAGE_ID],
                "get": {"responses": _responses("401", "404", ok={"200": {"description": "The image",
                                                                          "content": _json("Image")}})},
                "patch": {"requestBody": {"required": True, "content": {
                    "application/openstack-images-v2.1-json-patch": {
                        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/PatchOp"}}}}},
                    "responses": _responses("400", "401", "403", "404", "409", "415",
                                            ok={"200": {"description": "Updated", "content": _json("Image")}})},
                "delete": {"responses": _responses("401", "403", "404", ok={"204": {"description": "Deleted"}})},
            },
            "/v2/images/{image_id}/file": {
                "parameters": [IMAGE_ID],
                "put": {"parameters": [
                    _param("X-Image-Meta-Store", "header", {"type": "string"}, text="Store id"),
                    _param("x-openstack-image-size", "header", {"type": "string"}, text="Declared size")],
                    "requestBody": {"required": True, "content": {
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                    "responses": _responses("400", "401", "403", "404", "409", "410", "413", "415", "503",
                                            ok={"204": {"description": "Stored"}})},
                "get": {"parameters": [
                    _param("Range", "header", {"type": "string"}),
                    _param("Content-Range", "header", {"type": "string"}, text="Legacy request header"),
                    _param("If-Range", "header", {"type": "string"}),
                    _param("If-None-Match", "header", {"type": "string"})],
                    "responses": _responses("400", "401", "403", "404", "416", "503", ok={
                        "200": {"description": "The data"}, "204": {"description": "No data"},
                        "206": {"description": "A slice"}, "304": {"description": "Not modified"}})},
            },
            "/v2/images/{image_id}/actions/deactivate": {"parameters": [IMAGE_ID], "post": {
                "responses": _responses("401", "403", "404", ok={"204": {"description": "Deactivated"}})}},
            "/v2/images/{image_id}/actions/reactivate": {"parameters": [IMAGE_ID], "post": {
                "responses": _responses("401", "403", "404", ok={"204": {"description": "Reactivated"}})}},
            "/v2/images/{image_id}/tags/{tag}": {
                "parameters": [IMAGE_ID, _param("tag", "path", {"type": "string"}, True)],
                "put": {"responses": _responses("400", "401", "403", "404", "413", ok={"204": {"description": "ok"}})},
                "delete": {"responses": _responses("401", "403", "404", ok={"204": {"description": "ok"}})}},
            "/v2/images/{image_id}/members": {"parameters": [IMAGE_ID],
                "get": {"responses": _responses("401", "404", ok={"200": {"description": "Members"}})},
                "post": {"requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["member"], "properties": {"member": {"type": "string"}}}}}},
                    "responses": _responses("400", "401", "403", "404", "409", "413",
                                            ok={"200": {"description": "Member"}})}},
            "/v2/images/{image_id}/members/{member}": {
                "parameters": [IMAGE_ID, _param("member", "path", {"type": "string"}, True)],
                "get": {"responses": _responses("401", "404", ok={"200": {"description": "Member"}})},
                "put": {"requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": list(MEMBER_STATUSES)}}}}}},
                    "responses": _responses("400", "401", "403", "404", ok={"200": {"description": "Member"}})},
                "delete": {"responses": _responses("401", "403", "404", ok={"204": {"description": "ok"}})}},
            "/v2/info/stores": {"get": {"responses": _responses("401", ok={"200": {"description": "Stores"}})}},
            "/v2/info/stores/detail": {"get": {"responses": _responses("401", "403",
                                                                       ok={"200": {"description": "Stores"}})}},
            "/v2/info/import": {"get": {"responses": _responses("401", ok={"200": {"description": "Methods"}})}},
            "/v2/info/usage": {"get": {"responses": _responses("401", ok={"200": {"description": "Usage"}})}},
            "/v2/schemas/image": {"get": {"responses": _responses("401", ok={"200": {"description": "Schema"}})}},
            "/v2/schemas/images": {"get": {"responses": _responses("401", ok={"200": {"description": "Schema"}})}},
        },
    }


def _openapi_prop(prop: dict) -> dict:
    """Translate a JSON-schema property (with type lists) to OpenAPI 3.0 (nullable)."""
    out = {k: v for k, v in prop.items() if k not in ("type", "enum")}
    kind = prop.get("type")
    if isinstance(kind, list):
        out["nullable"] = "null" in kind
        kind = next(k for k in kind if k != "null")
    out["type"] = kind
    if "enum" in prop:
        out["enum"] = [v for v in prop["enum"] if v is not None]
    return out


@bp.get("/v2/openapi.json")
def openapi():
    """The OpenAPI document (no token needed)."""
    return jsonify(document())
