"""Checking metadata-definition bodies against the served documents, and what Glance checks besides."""
from __future__ import annotations

import functools

from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from imagedata.errors import BadRequest, Forbidden
from imagedata.service.metadefs import documents

# Glance: attributes the server owns; a body naming one is 403, before any other check.
READ_ONLY = {"namespace": ("self", "schema", "created_at", "updated_at"),
             "object": ("self", "schema", "created_at", "updated_at")}
STAMPS_ONLY = ("created_at", "updated_at")
# Glance stores a property definition through a fixed set of fields; "items" holds only these.
ITEM_FIELDS = {"type", "enum"}


@functools.cache
def _validator(name: str):
    """A compiled validator for one document (built once per process)."""
    document = _DOCUMENTS[name]()
    return validator_for(document)(document)


_DOCUMENTS = {
    "namespace": documents.namespace_document,
    "object": documents.object_document,
    "property": documents.property_document,
    "property-in-namespace": lambda: documents.property_document(require_name=False),
    "tag": documents.tag_document,
    "resource_type_association": documents.association_document,
    # Glance: the bulk tag body; the tag names' bound (the column's) is checked here too.
    "tags": lambda: {"name": "tags", "properties": {"tags": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": documents.NAME_LENGTH}},
        "required": ["name"], "additionalProperties": False}}}},
}


def check_body(kind: str, body, shown_as: str | None = None) -> dict:
    """``body`` if it matches the ``kind`` document: 403 for a read-only attribute, else 400."""
    if not isinstance(body, dict):
        raise BadRequest(f"Provided object does not match schema '{shown_as or kind}': the body must be a JSON "
                         "object.")
    for key in READ_ONLY.get(kind, STAMPS_ONLY):
        if key in body:
            raise Forbidden(f"Attribute '{key}' is read-only.")
    error = best_match(_validator(kind).iter_errors(body))
    if error is not None:
        where = "".join(f"[{part!r}]" for part in error.absolute_path)
        raise BadRequest(f"Provided object does not match schema '{shown_as or kind}': {error.message}"
                         + (f" (at {where})" if where else ""))
    return body


def check_name(what: str, name: str) -> str:
    """A name that fits its column and can be used in a URL: 1 to 80 characters, no '/'.

    Glance accepts an empty name or one with '/' (then cannot find it), and property names of any
    length as keys of a namespace or object body.
    """
    if not name or "/" in name:
        raise BadRequest(f"Invalid {what} name {name!r}: it must not be empty or contain '/'.")
    if len(name) > documents.NAME_LENGTH:
        raise BadRequest(f"Invalid {what} name '{name[:20]}...': it is longer than {documents.NAME_LENGTH} "
                         "characters.")
    return name


def property_definition(body: dict, nested: bool = True) -> dict:
    """A property definition as stored and served: checked, without its name, default as text.

    Glance: a ``default`` is served as a string ("5", "True") and a list or object default as null;
    ``items`` holds only ``type`` and ``enum``, and enumerated values are strings.
    """
    if nested:
        check_body("property-in-namespace", body, shown_as="property")
    definition = {key: value for key, value in body.items() if key != "name"}
    if "required" in definition:
        raise BadRequest("Provided object does not match schema 'property': 'required' is not supported in a "
                         "property definition.")
    items = definition.get("items")
    if items is not None and set(items) - ITEM_FIELDS:
        raise BadRequest(f"Provided object does not match schema 'property': items may only hold "
                         f"{sorted(ITEM_FIELDS)}.")
    for values in (definition.get("enum"), (items or {}).get("enum")):
        if values is not None and not all(isinstance(value, str) for value in values):
            raise BadRequest("Provided object does not match schema 'property': enum values must be strings.")
    if "default" in definition:
        definition["default"] = default_text(definition["default"])
    return definition


def default_text(value):
    """Glance: a default value as text, the way Python writes it; null for a list, an object or null."""
    if value is None or isinstance(value, (list, dict)):
        return None
    return value if isinstance(value, str) else str(value)
