"""The JSON-schema documents of metadata definitions: served at /v2/schemas/metadefs/* and used to
validate request bodies and definition files (``validate.py``), so what clients read is what the
server checks.

Glance: the shape (names, types, bounds, required lists, definitions) is Glance's, so that clients
which build forms from these documents (python-glanceclient, Horizon) see what they expect.
"""
from __future__ import annotations

import copy
import functools

NAME_LENGTH = 80
PROPERTY_TYPES = ["array", "boolean", "integer", "number", "object", "string", None]
LINKS = [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
         {"rel": "describedby", "href": "{schema}"}]


def _text(max_length: int | None = None, description: str | None = None) -> dict:
    out: dict = {"type": "string"}
    if description:
        out["description"] = description
    if max_length:
        out["maxLength"] = max_length
    return out


def _read_only(description: str | None = None, stamp: bool = False) -> dict:
    out: dict = {"type": "string", "readOnly": True}
    if description:
        out["description"] = description
    if stamp:
        out["format"] = "date-time"
    return out


def _stamps(what: str) -> dict:
    return {"created_at": _read_only(f"When the {what} was created", stamp=True),
            "updated_at": _read_only(f"When the {what} last changed", stamp=True)}


def _links() -> dict:
    return {"schema": _read_only(), "self": _read_only()}


def _definitions(min_items: bool) -> dict:
    """The definitions shared by the documents (the property document's string arrays are non-empty)."""
    string_array: dict = {"type": "array", "items": {"type": "string"}}
    if min_items:
        string_array["minItems"] = 1
    string_array["uniqueItems"] = True
    return {"positiveInteger": {"type": "integer", "minimum": 0},
            "positiveIntegerDefault0": {"allOf": [{"$ref": "#/definitions/positiveInteger"}, {"default": 0}]},
            "stringArray": string_array}


@functools.cache
def _property_fields() -> dict:
    """What a property definition may say (the keys of a JSON-schema fragment Glance stores)."""
    type_field = {"type": "string", "enum": PROPERTY_TYPES}
    return {
        "name": _text(NAME_LENGTH), "title": _text(), "description": _text(),
        "operators": {"type": "array", "items": {"type": "string"}}, "type": dict(type_field),
        "required": {"$ref": "#/definitions/stringArray"},
        "minimum": {"type": "number"}, "maximum": {"type": "number"},
        "maxLength": {"$ref": "#/definitions/positiveInteger"},
        "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "pattern": {"type": "string", "format": "regex"}, "enum": {"type": "array"},
        "readonly": {"type": "boolean"}, "default": {},
        "items": {"type": "object", "properties": {"type": dict(type_field), "enum": {"type": "array"}}},
        "maxItems": {"$ref": "#/definitions/positiveInteger"},
        "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "uniqueItems": {"type": "boolean", "default": False}, "additionalItems": {"type": "boolean"},
    }


def _embedded_definitions() -> dict:
    """Definitions of the namespace and object documents, which hold property definitions by name."""
    out = _definitions(min_items=False)
    out["property"] = {"type": "object", "additionalProperties": {
        "type": "object", "required": ["title", "type"], "properties": _property_fields()}}
    return out


def _document(name: str, properties: dict, required: list | None, definitions: dict | None = None) -> dict:
    out = {"name": name, "properties": properties, "additionalProperties": False}
    if definitions:
        out["definitions"] = definitions
    if required:
        out["required"] = required
    return out


def namespace_document() -> dict:
    """GET /v2/schemas/metadefs/namespace."""
    named = {"type": "object", "properties": {"name": {"type": "string"}}}
    return _document("namespace", {
        "namespace": _text(NAME_LENGTH, "The unique name of the namespace."),
        "display_name": _text(NAME_LENGTH, "A friendly name, shown by user interfaces."),
        "description": _text(500, "What the namespace is for."),
        "visibility": {"type": "string", "description": "Who sees the namespace.", "enum": ["public", "private"]},
        "protected": {"type": "boolean", "description": "If true, the namespace cannot be deleted."},
        "owner": _text(255, "The project owning the namespace."),
        **_stamps("namespace"), **_links(),
        "resource_type_associations": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "prefix": {"type": "string"}, "properties_target": {"type": "string"}}}},
        "properties": {"$ref": "#/definitions/property"},
        "objects": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "description": {"type": "string"},
            "required": {"$ref": "#/definitions/stringArray"}, "properties": {"$ref": "#/definitions/property"}}}},
        "tags": {"type": "array", "items": named},
    }, ["namespace"], _embedded_definitions())


def object_document() -> dict:
    """GET /v2/schemas/metadefs/object."""
    return _document("object", {
        "name": _text(NAME_LENGTH), "description": _text(), "required": {"$ref": "#/definitions/stringArray"},
        "properties": {"$ref": "#/definitions/property"}, **_links(), **_stamps("object"),
    }, ["name"], _embedded_definitions())


def property_document(require_name: bool = True) -> dict:
    """GET /v2/schemas/metadefs/property (a definition inside a namespace or object needs no name)."""
    return _document("property", copy.deepcopy(_property_fields()),
                     ["type", "title", "name"] if require_name else ["type", "title"], _definitions(min_items=True))


def tag_document() -> dict:
    """GET /v2/schemas/metadefs/tag."""
    return _document("tag", {"name": _text(NAME_LENGTH), **_stamps("tag")}, ["name"])


def association_document() -> dict:
    """GET /v2/schemas/metadefs/resource_type (an association of a namespace with a resource type)."""
    return _document("resource_type_association", {
        "name": _text(NAME_LENGTH, "The resource type, named as Heat names resource types where it can "
                                   "(OS::Glance::Image, OS::Nova::Flavor, ...)."),
        "prefix": _text(NAME_LENGTH, "What the names of the namespace's properties start with when applied "
                                     "to this resource type, separator included (hw_, hw:)."),
        "properties_target": _text(NAME_LENGTH, "Which of the resource's key/value sets the properties go to, "
                                                "when it has several (a Cinder volume: image)."),
        **_stamps("association"),
    }, ["name"])


def collection(name: str, item: dict) -> dict:
    """A list document (namespaces, objects, tags, resource_types): the item schema under ``name``."""
    item = dict(item)
    definitions = item.pop("definitions", None)
    out = {"name": name, "properties": {name: {"type": "array", "items": item}, "first": {"type": "string"},
                                        "next": {"type": "string"}, "schema": {"type": "string"}},
           "links": copy.deepcopy(LINKS)}
    if definitions:
        out["definitions"] = definitions
    return out


def properties_collection() -> dict:
    """GET /v2/schemas/metadefs/properties: property definitions keyed by name."""
    item = property_document(require_name=False)
    definitions = item.pop("definitions")
    return {"name": "properties", "properties": {
        "properties": {"type": "object", "additionalProperties": item}, "first": {"type": "string"},
        "next": {"type": "string"}, "schema": {"type": "string"}},
        "links": copy.deepcopy(LINKS), "definitions": definitions}


def schema_documents() -> dict[str, dict]:
    """Every document, by the last part of its path under /v2/schemas/metadefs/."""
    return {
        "namespace": namespace_document(), "namespaces": collection("namespaces", namespace_document()),
        "object": object_document(), "objects": collection("objects", object_document()),
        "property": property_document(), "properties": properties_collection(),
        "tag": tag_document(), "tags": collection("tags", tag_document()),
        "resource_type": association_document(),
        "resource_types": collection("resource_type_associations", association_document()),
    }
