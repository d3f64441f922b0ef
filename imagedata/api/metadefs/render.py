"""The JSON of metadata definitions, as Glance writes it: unset attributes are left out."""
from __future__ import annotations

import json

from imagedata.schemas import format_time
from imagedata.service.metadefs.namespaces import NamespaceDetail

NAMESPACES = "/v2/metadefs/namespaces"


def _present(**values) -> dict:
    """The values that are set (Glance leaves out what is None)."""
    return {key: value for key, value in values.items() if value is not None}


def _stamps(row) -> dict:
    return {"created_at": format_time(row.created_at), "updated_at": format_time(row.updated_at)}


def namespace_json(row, associations=(), detail: NamespaceDetail | None = None) -> dict:
    """A namespace; with ``detail``, what it holds (each kind only when there is some)."""
    out = _present(namespace=row.namespace, display_name=row.display_name, description=row.description,
                   visibility=row.visibility, protected=row.protected, owner=row.owner)
    out.update(_stamps(row))
    out.update(schema="/v2/schemas/metadefs/namespace", self=f"{NAMESPACES}/{row.namespace}")
    if detail is not None:
        associations = detail.associations
        if detail.objects:
            out["objects"] = [object_json(row.namespace, item, detail.prefix) for item in detail.objects]
        if detail.properties:
            out["properties"] = {(detail.prefix or "") + item.name: json.loads(item.definition)
                                 for item in detail.properties}
        if detail.tags:
            out["tags"] = [{"name": tag.name} for tag in detail.tags]
    if associations:
        out["resource_type_associations"] = [association_json(item) for item in associations]
    return out


def object_json(namespace_name: str, row, prefix: str | None = None) -> dict:
    """An object; with ``prefix``, its property names (and required list) carry it."""
    prefix = prefix or ""
    properties = {prefix + name: value for name, value in json.loads(row.properties).items()}
    out = _present(name=row.name, description=row.description)
    out.update(required=[prefix + name for name in json.loads(row.required)], properties=properties,
               **_stamps(row), schema="/v2/schemas/metadefs/object",
               self=f"{NAMESPACES}/{namespace_name}/objects/{row.name}")
    return out


def property_json(row) -> dict:
    """A property definition, with its name."""
    return {"name": row.name, **json.loads(row.definition)}


def association_json(row) -> dict:
    """A resource type association (``row.resource_type`` loaded)."""
    return {**_present(name=row.resource_type.name, prefix=row.prefix, properties_target=row.properties_target),
            **_stamps(row)}


def tag_json(row) -> dict:
    """A tag, with its timestamps."""
    return {"name": row.name, **_stamps(row)}


def resource_type_json(row) -> dict:
    """A resource type."""
    return {"name": row.name, **_stamps(row)}
