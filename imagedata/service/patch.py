"""JSON-patch for images: RFC 6902 (v2.1 media type) and the older v2.0 draft format."""
from __future__ import annotations

from imagedata.errors import BadRequest, Conflict, Forbidden, TooLarge
from imagedata.schemas import BASE_ATTRIBUTES, MAX_EXTRA_PROPERTIES, READ_ONLY, RESERVED, load_image_body

MEDIA_TYPES = ("application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch")
OPS = ("add", "remove", "replace")


def normalise_ops(media_type: str, body) -> list[tuple[str, str, object]]:
    """Turn either patch dialect into a list of (op, attribute, value)."""
    if not isinstance(body, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    draft = media_type.endswith("v2.0-json-patch")
    ops = []
    for item in body:
        if not isinstance(item, dict):
            raise BadRequest("Operations must be JSON objects.")
        if draft:
            names = [k for k in item if k in OPS]
            if len(names) != 1:
                raise BadRequest("Operation objects must contain exactly one of \"add\", \"remove\", \"replace\".")
            op, path = names[0], item[names[0]]
        else:
            op, path = item.get("op"), item.get("path")
            if op not in OPS:
                raise BadRequest(f"Invalid operation: {op!r}. Supported: add, remove, replace.")
        if op != "remove" and "value" not in item:
            raise BadRequest(f"Operation \"{op}\" requires a member named \"value\".")
        ops.append((op, _attribute(path), item.get("value")))
    return ops


def _attribute(path) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1 or len(path) < 2:
        raise BadRequest(f"Invalid JSON pointer for this resource: {str(path)[:80]!r}")
    return path[1:].replace("~1", "/").replace("~0", "~")


def apply_patch(image, ops) -> tuple[dict, set[str], list[str] | None]:
    """Validate ops against the image; return (validated changes, removed extras, new tags or None)."""
    extras = dict(image.extra_properties)
    changes: dict = {}
    removed: set[str] = set()
    tags, tags_given = None, False  # a null value is given too (and refused by the schema)
    for op, name, value in ops:
        if name in READ_ONLY or name == "id":
            raise Forbidden(f"Attribute '{name}' is read-only.")
        if name in RESERVED or name.startswith("os_glance"):
            raise Forbidden(f"Attribute '{name}' is reserved.")
        if name == "tags":
            if op == "remove":
                raise Forbidden("Attribute 'tags' may not be removed.")
            tags, tags_given = value, True
            continue
        if op == "remove":
            if name in BASE_ATTRIBUTES:
                raise Forbidden(f"Properties {name} may not be removed.")
            if name not in extras:
                raise Conflict(f"Property {name} does not exist.")
            del extras[name]
            changes.pop(name, None)
            removed.add(name)
            continue
        if op == "replace" and name not in BASE_ATTRIBUTES and name not in extras:
            raise Conflict(f"Property {name} does not exist.")
        changes[name] = value
        if name not in BASE_ATTRIBUTES:
            extras[name] = value
            removed.discard(name)
    body = dict(changes)
    if tags_given:
        body["tags"] = tags
    base, new_extras = load_image_body(body, partial=True)
    if len(extras) > MAX_EXTRA_PROPERTIES:
        raise TooLarge(f"Maximum number of extra properties ({MAX_EXTRA_PROPERTIES}) exceeded.")
    validated = {**base, **new_extras}
    new_tags = validated.pop("tags", None) if tags_given else None
    return validated, removed, new_tags
