"""JSON-schema documents clients fetch and validate against (/v2/schemas/...).

Generated from the attribute tables in ``imagedata.schemas`` (which also build the request
validation), in two dialects: Glance's JSON schema (a nullable type is a list with "null",
and null is one of a nullable enum's values) and OpenAPI 3.0 (``nullable: true``).
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from imagedata.api.common import no_body
from imagedata.api.tasks import DETAIL_ONLY, TASK
from imagedata.auth.request import authenticate
from imagedata.schemas import EXTRA_PROPERTY, IMAGE, MEMBER, READ_ONLY_ACCESS, Attribute

bp = Blueprint("schemas", __name__, url_prefix="/v2/schemas")
bp.before_request(authenticate)

BOUNDS = (("pattern", "pattern"), ("min_length", "minLength"), ("max_length", "maxLength"),
          ("minimum", "minimum"), ("maximum", "maximum"))


def property_schema(attribute: Attribute, openapi: bool = False) -> dict:
    """The JSON schema of one attribute, in Glance's dialect or OpenAPI 3.0's."""
    out: dict = {}
    if attribute.nullable and not openapi:
        out["type"] = ["null", attribute.kind]
    else:
        out["type"] = attribute.kind
        if attribute.nullable:
            out["nullable"] = True
    if attribute.access == READ_ONLY_ACCESS:
        out["readOnly"] = True
    out["description"] = attribute.description
    if attribute.enum:
        # Glance: null is one of a nullable enum's values; OpenAPI 3.0 says nullable instead.
        out["enum"] = [None, *attribute.enum] if attribute.nullable and not openapi else list(attribute.enum)
    for name, keyword in BOUNDS:
        if getattr(attribute, name) is not None:
            out[keyword] = getattr(attribute, name)
    if attribute.items is not None:
        out["items"] = property_schema(attribute.items, openapi)
        del out["items"]["description"]
    elif attribute.items_schema is not None:
        out["items"] = attribute.items_schema
    return out


def object_schema(attributes, openapi: bool = False) -> dict:
    """The ``properties`` of an object made of ``attributes``."""
    return {a.name: property_schema(a, openapi) for a in attributes}


def extra_properties_schema(openapi: bool = False) -> dict:
    """What any attribute not in the table must be (a bounded string)."""
    out = property_schema(EXTRA_PROPERTY, openapi)
    del out["description"]
    return out


def image_properties() -> dict:
    """The property definitions of one image (shared by the image and images schemas)."""
    return object_schema(IMAGE)


def image_schema() -> dict:
    """The schema of one image."""
    return {"name": "image", "properties": image_properties(), "additionalProperties": extra_properties_schema(),
            "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def member_schema() -> dict:
    """The schema of one image member."""
    return {"name": "member", "properties": object_schema(MEMBER)}


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


def task_schema(detail: bool = True) -> dict:
    """The schema of one task (list items leave out input, result and message)."""
    properties = {}
    for attribute in TASK:
        if detail or attribute.name not in DETAIL_ONLY:
            properties[attribute.name] = property_schema(attribute)
            if not attribute.description:
                del properties[attribute.name]["description"]
    return {"name": "task", "properties": properties}


@bp.get("/task")
@no_body
def task():
    """GET /v2/schemas/task."""
    return jsonify(task_schema())


@bp.get("/tasks")
@no_body
def tasks():
    """GET /v2/schemas/tasks."""
    return jsonify({"name": "tasks", "properties": {
        "tasks": {"type": "array", "items": task_schema(detail=False)}, "schema": {"type": "string"}},
        "links": [{"rel": "describedby", "href": "{schema}"}]})
