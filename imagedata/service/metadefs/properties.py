"""Property definitions of a namespace, addressed by name."""
from __future__ import annotations

import json

from imagedata.db import write_transaction
from imagedata.errors import NotFound
from imagedata.models import MetadefAssociation, MetadefProperty, MetadefResourceType
from imagedata.policy import Caller
from imagedata.service import Services
from imagedata.service.metadefs.access import find_namespace
from imagedata.service.metadefs.contents import add_property, delete_item, find_item, update_item
from imagedata.service.metadefs.validate import check_body, check_name, property_definition


def _checked(body) -> dict:
    check_name("property", check_body("property", body)["name"])
    return property_definition(body, nested=False)


def list_properties(svc: Services, caller: Caller, namespace_name: str) -> list[MetadefProperty]:
    """GET .../properties: every property definition, by name."""
    namespace = find_namespace(svc, caller, namespace_name, "get_metadef_properties")
    return list(MetadefProperty.select().where(MetadefProperty.namespace == namespace.id)
                .order_by(MetadefProperty.name))


def create_property(svc: Services, caller: Caller, namespace_name: str, body) -> MetadefProperty:
    """POST .../properties (409 when the name is taken)."""
    definition = _checked(body)
    namespace = find_namespace(svc, caller, namespace_name, "add_metadef_property")
    with write_transaction():
        return add_property(namespace, body["name"], definition)


def show_property(svc: Services, caller: Caller, namespace_name: str, name: str,
                  resource_type: str | None = None) -> MetadefProperty:
    """GET .../properties/{name}; with ``resource_type``, ``name`` carries that type's prefix (Glance)."""
    rules = ("get_metadef_property", "get_metadef_resource_type") if resource_type else ("get_metadef_property",)
    namespace = find_namespace(svc, caller, namespace_name, *rules)
    if resource_type:
        name = _unprefixed(namespace, name, resource_type)
    return find_item(MetadefProperty, namespace, name)


def _unprefixed(namespace, name: str, resource_type: str) -> str:
    """``name`` without the prefix of ``resource_type``'s association with the namespace (404 otherwise)."""
    if MetadefResourceType.get_or_none(MetadefResourceType.name == resource_type) is None:
        raise NotFound(f"The metadata definition resource-type with name={resource_type}, was not found.")
    association = (MetadefAssociation.select().join(MetadefResourceType)
                   .where((MetadefAssociation.namespace == namespace.id)
                          & (MetadefResourceType.name == resource_type)).first())
    if association is None:
        raise NotFound(f"The metadata definition resource-type association of resource-type={resource_type} to "
                       f"namespace={namespace.namespace}, was not found.")
    prefix = association.prefix
    if not prefix or not name.startswith(prefix):
        raise NotFound(f"Property {name} does not start with the expected resource type association prefix of "
                       f"'{prefix}'.")
    return name[len(prefix):]


def update_property(svc: Services, caller: Caller, namespace_name: str, name: str, body) -> MetadefProperty:
    """PUT .../properties/{name}: replace the definition, renamed to the body's name (409 if taken)."""
    definition = _checked(body)
    namespace = find_namespace(svc, caller, namespace_name, "modify_metadef_property")
    return update_item(MetadefProperty, namespace, name, {"name": body["name"], "definition": json.dumps(definition)})


def delete_property(svc: Services, caller: Caller, namespace_name: str, name: str) -> None:
    """DELETE .../properties/{name} (403 when the namespace is protected)."""
    namespace = find_namespace(svc, caller, namespace_name, "remove_metadef_property")
    delete_item(MetadefProperty, namespace, name)
