"""GET /v2/openapi.json: an OpenAPI 3 description of the service (used for fuzzing too).

Request and response bodies come from the attribute tables in ``imagedata.schemas`` (through
``schema_docs.property_schema``), so this document, /v2/schemas/* and the validation agree.
Links chain create -> upload -> patch -> download -> delete for stateful testing.
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from imagedata import __version__
from imagedata.api.common import services
from imagedata.api.schema_docs import extra_properties_schema, object_schema, property_schema
from imagedata.schemas import (CONTAINER_FORMATS, DISK_FORMATS, IMAGE, MEMBER, MEMBER_CREATE, MEMBER_ID,
                               MEMBER_STATUSES, MEMBER_UPDATE, STATUSES, TAG, VISIBILITIES, WRITABLE)
from imagedata.service.detected import HEADER as DETECTED_HEADER
from imagedata.service.listing import MAX_INT64, SORT_KEYS
from imagedata.service.patch import MEDIA_TYPES, OPS

bp = Blueprint("openapi", __name__)

ERRORS = {code: {"description": text} for code, text in (
    ("400", "Bad request"), ("401", "No valid token"), ("403", "Forbidden"), ("404", "Not found"),
    ("409", "Conflict"), ("410", "Deleted during the upload"), ("413", "Too large (cap, quota or store full)"),
    ("415", "Unsupported media type"), ("416", "Range not satisfiable"), ("503", "Store or database unavailable"))}


def _param(name: str, where: str, schema: dict, required: bool = False, text: str = "") -> dict:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": text}


def _bare(attribute) -> dict:
    """An attribute's schema as a parameter schema (no description or read-only flag)."""
    return {k: v for k, v in property_schema(attribute, openapi=True).items() if k not in ("description", "readOnly")}


IMAGE_ID = _param("image_id", "path", {"type": "string"}, True, "Image id (a UUID)")
TAG_PARAM = _param("tag", "path", _bare(TAG), True, "A tag")
MEMBER_PARAM = _param("member", "path", _bare(MEMBER_ID), True, "Member project")
TOKEN = {"ApiToken": []}
COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_INT64}
FLAG = {"type": "string", "enum": ["true", "false", "True", "False"]}
POINTER = {"type": "string", "pattern": "^/[^/]+$", "description": "/<attribute> (~1 for /, ~0 for ~)"}


def _responses(*codes: str, ok: dict | None = None) -> dict:
    out = dict(ok or {})
    out.update({code: ERRORS[code] for code in codes})
    return out


def _json(ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _links(expression: str, *operations: str) -> dict:
    """OpenAPI links passing the image id found at ``expression`` to each operation."""
    return {op: {"operationId": op, "parameters": {"image_id": expression}} for op in operations}


def _op(op_id: str, responses: dict, **extra) -> dict:
    return {"operationId": op_id, **extra, "responses": responses}


def _ok(code: str, text: str, ref: str | None = None, links: dict | None = None) -> dict:
    out: dict = {"description": text}
    if ref:
        out["content"] = _json(ref)
    if links:
        out["links"] = links
    return {code: out}


def _stored(links: dict) -> dict:
    """The 204 of an upload, with the header that reports data declared raw that is another format."""
    ok = _ok("204", "Stored", links=links)
    ok["204"]["headers"] = {DETECTED_HEADER: {
        "description": "Sent when data declared raw is another disk format (it is stored as raw): that format",
        "schema": {"type": "string"}}}
    return ok


def _image_components() -> dict:
    image = {"type": "object", "properties": object_schema(IMAGE, openapi=True),
             "additionalProperties": extra_properties_schema(openapi=True)}
    image_write = {"type": "object", "properties": object_schema(WRITABLE, openapi=True),
                   "additionalProperties": extra_properties_schema(openapi=True)}
    patch_op = {"type": "object", "required": ["op", "path"], "properties": {
        "op": {"type": "string", "enum": list(OPS)}, "path": POINTER, "value": {}}}
    # The older v2.0 dialect: {"replace": "/name", "value": ...}.
    draft_op = {"type": "object", "minProperties": 1, "properties": {
        **{op: POINTER for op in OPS}, "value": {}}}
    member_body = {"type": "object", "required": [a.name for a in MEMBER_CREATE],
                   "properties": object_schema(MEMBER_CREATE, openapi=True), "additionalProperties": False}
    member_update = {"type": "object", "required": [a.name for a in MEMBER_UPDATE],
                     "properties": object_schema(MEMBER_UPDATE, openapi=True), "additionalProperties": False}
    member = {"type": "object", "properties": object_schema(MEMBER, openapi=True)}
    return {"Image": image, "ImageWrite": image_write, "PatchOp": patch_op, "DraftPatchOp": draft_op,
            "Member": member,
            "MemberCreate": member_body, "MemberUpdate": member_update}


def _list_parameters() -> list[dict]:
    strings = [_param(name, "query", {"type": "string"}) for name in ("marker", "name", "owner", "tag", "sort")]
    return [
        _param("limit", "query", COUNT), *strings,
        _param("status", "query", {"type": "string", "enum": list(STATUSES)}),
        _param("disk_format", "query", {"type": "string", "enum": list(DISK_FORMATS)}),
        _param("container_format", "query", {"type": "string", "enum": list(CONTAINER_FORMATS)}),
        _param("visibility", "query", {"type": "string", "enum": [*VISIBILITIES, "all"]}),
        _param("member_status", "query", {"type": "string", "enum": [*MEMBER_STATUSES, "all"]}),
        _param("sort_key", "query", {"type": "string", "enum": list(SORT_KEYS)}),
        _param("sort_dir", "query", {"type": "string", "enum": ["asc", "desc"]}),
        _param("os_hidden", "query", FLAG), _param("protected", "query", FLAG),
        _param("size_min", "query", COUNT), _param("size_max", "query", COUNT),
    ]


def _image_paths(store_ids: list[str]) -> dict:
    # The links lead along create -> upload -> patch -> download -> delete (and side roads).
    after_create = _links("$response.body#/id", "showImage", "updateImage", "uploadImageData", "addTag",
                          "addMember", "listMembers")
    after_upload = _links("$request.path.image_id", "downloadImageData", "showImage", "updateImage",
                          "deactivateImage")
    after_patch = _links("$response.body#/id", "uploadImageData", "downloadImageData", "deleteImage")
    after_download = _links("$request.path.image_id", "updateImage", "deleteImage")
    patch_body = {"required": True, "content": {
        media: {"schema": {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}}}
        for media, ref in zip(MEDIA_TYPES, ("PatchOp", "DraftPatchOp"), strict=True)}}
    octets = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                    "format": "binary"}}}}
    return {
        "/v2/images": {
            "get": _op("listImages", _responses("400", "401", ok=_ok("200", "A page of images")),
                       parameters=_list_parameters()),
            "post": _op("createImage", _responses("400", "401", "403", "409", "413",
                                                  ok=_ok("201", "Created", "Image", after_create)),
                        requestBody={"required": True, "content": _json("ImageWrite")}),
        },
        "/v2/images/{image_id}": {
            "parameters": [IMAGE_ID],
            "get": _op("showImage", _responses("401", "404", ok=_ok("200", "The image", "Image"))),
            "patch": _op("updateImage", _responses("400", "401", "403", "404", "409", "413", "415",
                                                   ok=_ok("200", "Updated", "Image", after_patch)),
                         requestBody=patch_body),
            "delete": _op("deleteImage", _responses("401", "403", "404", ok=_ok("204", "Deleted"))),
        },
        "/v2/images/{image_id}/file": {
            "parameters": [IMAGE_ID],
            "put": _op("uploadImageData", _responses("400", "401", "403", "404", "409", "410", "413", "415", "503",
                                                     ok=_stored(after_upload)),
                       parameters=[_param("X-Image-Meta-Store", "header", {"type": "string", "enum": store_ids},
                                          text="Store id"),
                                   _param("x-openstack-image-size", "header", {"type": "string"},
                                          text="Declared size")],
                       requestBody=octets),
            "get": _op("downloadImageData", _responses("400", "401", "403", "404", "416", "503", ok={
                **_ok("200", "The data", links=after_download), "204": {"description": "No data"},
                **_ok("206", "A slice", links=after_download), "304": {"description": "Not modified"}}),
                parameters=[_param("Range", "header", {"type": "string"}),
                            _param("Content-Range", "header", {"type": "string"}, text="Legacy request header"),
                            _param("If-Range", "header", {"type": "string"}),
                            _param("If-None-Match", "header", {"type": "string"}),
                            _param("prefer", "query", {"type": "string"}, text="Preferred store ids")]),
        },
        "/v2/images/{image_id}/actions/deactivate": {"parameters": [IMAGE_ID], "post": _op(
            "deactivateImage", _responses("401", "403", "404", ok=_ok(
                "204", "Deactivated", links=_links("$request.path.image_id", "reactivateImage",
                                                   "downloadImageData"))))},
        "/v2/images/{image_id}/actions/reactivate": {"parameters": [IMAGE_ID], "post": _op(
            "reactivateImage", _responses("401", "403", "404", ok=_ok("204", "Reactivated")))},
        "/v2/images/{image_id}/tags/{tag}": {
            "parameters": [IMAGE_ID, TAG_PARAM],
            "put": _op("addTag", _responses("400", "401", "403", "404", "413", ok=_ok("204", "Tagged", links={
                "deleteTag": {"operationId": "deleteTag", "parameters": {"image_id": "$request.path.image_id",
                                                                         "tag": "$request.path.tag"}}}))),
            "delete": _op("deleteTag", _responses("401", "403", "404", ok=_ok("204", "Untagged")))},
    }


def _member_paths() -> dict:
    member_links = {op: {"operationId": op, "parameters": {"image_id": "$response.body#/image_id",
                                                           "member": "$response.body#/member_id"}}
                    for op in ("showMember", "updateMember", "deleteMember")}
    return {
        "/v2/images/{image_id}/members": {
            "parameters": [IMAGE_ID],
            "get": _op("listMembers", _responses("401", "403", "404", ok=_ok("200", "Members"))),
            "post": _op("addMember", _responses("400", "401", "403", "404", "409", "413",
                                                ok=_ok("200", "Member", "Member", member_links)),
                        requestBody={"required": True, "content": _json("MemberCreate")})},
        "/v2/images/{image_id}/members/{member}": {
            "parameters": [IMAGE_ID, MEMBER_PARAM],
            "get": _op("showMember", _responses("401", "404", ok=_ok("200", "Member", "Member"))),
            "put": _op("updateMember", _responses("400", "401", "403", "404", ok=_ok("200", "Member", "Member")),
                       requestBody={"required": True, "content": _json("MemberUpdate")}),
            "delete": _op("deleteMember", _responses("401", "403", "404", ok=_ok("204", "Removed")))},
    }


def _discovery_paths() -> dict:
    public = {"security": []}
    paths = {
        "/": {"get": _op("versionsRoot", {"300": {"description": "Versions"}}, **public)},
        "/versions": {"get": _op("listVersions", {"200": {"description": "Versions"}}, **public)},
        "/healthcheck": {"get": _op("healthcheck", {"200": {"description": "Healthy"},
                                                    "503": ERRORS["503"]}, **public)},
        "/v2/info/stores/detail": {"get": _op("storesDetail", _responses("401", "403", ok=_ok("200", "Stores")))},
    }
    for path, op_id in (("/v2/info/stores", "listStores"), ("/v2/info/import", "importMethods"),
                        ("/v2/info/usage", "usage"), ("/v2/schemas/image", "imageSchema"),
                        ("/v2/schemas/images", "imagesSchema"), ("/v2/schemas/member", "memberSchema"),
                        ("/v2/schemas/members", "membersSchema")):
        paths[path] = {"get": _op(op_id, _responses("401", ok=_ok("200", "Document")))}
    return paths


def document(store_ids: list[str]) -> dict:
    """The OpenAPI document of a service with these stores."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "imagedata", "version": __version__,
                 "description": "OpenStack Image API v2 compatible image-data service."},
        "components": {
            "securitySchemes": {"ApiToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "schemas": _image_components(),
        },
        "security": [TOKEN],
        "paths": {**_discovery_paths(), **_image_paths(store_ids), **_member_paths()},
    }


@bp.get("/v2/openapi.json")
def openapi():
    """The OpenAPI document (no token needed)."""
    return jsonify(document([store.store_id for store in services().stores]))
