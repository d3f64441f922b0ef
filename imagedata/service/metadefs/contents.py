"""Writing what a namespace holds: resource type associations, objects, properties and tags.

Shared by the API (one item, or a whole namespace body) and the definition-file loader. Bodies
arrive checked by ``validate``; a name already taken is 409 with Glance's message.
"""
from __future__ import annotations

import json
from typing import Iterable

from peewee import IntegrityError

from imagedata.db import database, write_transaction
from imagedata.errors import Conflict, NotFound
from imagedata.models import (MetadefAssociation, MetadefNamespace, MetadefObject, MetadefProperty,
                              MetadefResourceType, MetadefTag, utcnow)
from imagedata.service.metadefs.access import refuse_if_protected
from imagedata.service.metadefs.validate import check_body, check_name, property_definition

# Glance's words for an item the namespace does not hold, and what it calls each kind.
NOT_FOUND = {MetadefObject: "Could not find metadata object {}", MetadefProperty: "Could not find property {}",
             MetadefTag: "Could not find metadata tag {}"}
KINDS = {MetadefObject: "object", MetadefProperty: "property", MetadefTag: "tag"}


def check_contents(body: dict) -> None:
    """Check the contents a namespace body carries (objects, properties, tags, associations)."""
    for name, definition in (body.get("properties") or {}).items():
        check_name("property", name)
        property_definition(definition)
    for item in body.get("objects") or ():
        check_object(item)
    for item in body.get("tags") or ():
        check_name("tag", check_body("tag", item)["name"])
    for item in body.get("resource_type_associations") or ():
        check_name("resource type", check_body("resource_type_association", item)["name"])


def check_object(body) -> dict:
    """An object body, checked with its property definitions."""
    check_name("object", check_body("object", body)["name"])
    for name, definition in (body.get("properties") or {}).items():
        check_name("property", name)
        property_definition(definition)
    return body


def write_contents(namespace: MetadefNamespace, body: dict) -> None:
    """Create everything a (checked) namespace body holds, in the caller's transaction."""
    for item in body.get("resource_type_associations") or ():
        add_association(namespace, item)
    for item in body.get("objects") or ():
        add_object(namespace, item)
    for name, definition in (body.get("properties") or {}).items():
        add_property(namespace, name, definition)
    add_tags(namespace, [item["name"] for item in body.get("tags") or ()])


def resource_type_named(name: str) -> MetadefResourceType:
    """The resource type called ``name``, created on first use (Glance makes them that way)."""
    found = MetadefResourceType.get_or_none(MetadefResourceType.name == name)
    if found is not None:
        return found
    try:
        with database.atomic():  # a savepoint: a concurrent creation must not abort the caller's transaction
            return MetadefResourceType.create(name=name)
    except IntegrityError:
        return MetadefResourceType.get(MetadefResourceType.name == name)


def add_association(namespace: MetadefNamespace, body: dict) -> MetadefAssociation:
    """Associate the namespace with a resource type (409 when it already is)."""
    resource_type = resource_type_named(body["name"])
    try:
        with database.atomic():
            row = MetadefAssociation.create(namespace=namespace, resource_type=resource_type,
                                            prefix=body.get("prefix"),
                                            properties_target=body.get("properties_target"))
    except IntegrityError:
        raise Conflict(f"The metadata definition resource-type association of resource-type={body['name']} to "
                       f"namespace={namespace.namespace} already exists.") from None
    row.resource_type = resource_type
    return row


def object_fields(body: dict) -> dict:
    """The stored columns of a (checked) object body."""
    definitions = {name: property_definition(value, nested=False)
                   for name, value in (body.get("properties") or {}).items()}
    return {"name": body["name"], "description": body.get("description"),
            "required": json.dumps(body.get("required") or []), "properties": json.dumps(definitions)}


def object_conflict(namespace: MetadefNamespace, name: str) -> Conflict:
    """409 for an object name already used in the namespace."""
    return Conflict(f"A metadata definition object with name={name} already exists in "
                    f"namespace={namespace.namespace}.")


def add_object(namespace: MetadefNamespace, body: dict) -> MetadefObject:
    """Create an object in the namespace (409 when the name is taken)."""
    try:
        with database.atomic():
            return MetadefObject.create(namespace=namespace, **object_fields(body))
    except IntegrityError:
        raise object_conflict(namespace, body["name"]) from None


def property_conflict(namespace: MetadefNamespace, name: str) -> Conflict:
    """409 for a property name already used in the namespace."""
    return Conflict(f"A metadata definition property with name={name} already exists in "
                    f"namespace={namespace.namespace}.")


def add_property(namespace: MetadefNamespace, name: str, definition: dict) -> MetadefProperty:
    """Create a property definition in the namespace (409 when the name is taken)."""
    try:
        with database.atomic():
            return MetadefProperty.create(namespace=namespace, name=name,
                                          definition=json.dumps(property_definition(definition, nested=False)))
    except IntegrityError:
        raise property_conflict(namespace, name) from None


def tag_conflict(namespace: MetadefNamespace, name: str) -> Conflict:
    """409 for a tag the namespace already has (Glance's words)."""
    return Conflict(f"A metadata tag with name={name} already exists in namespace={namespace.namespace}. "
                    "(Please note that metadata tag names are case insensitive).")


def add_tags(namespace: MetadefNamespace, names: Iterable[str]) -> list[MetadefTag]:
    """Create tags in the namespace, all with one timestamp (409 at the first name taken)."""
    now, made = utcnow(), []
    for name in names:
        try:
            with database.atomic():
                made.append(MetadefTag.create(namespace=namespace, name=name, created_at=now, updated_at=now))
        except IntegrityError:
            raise tag_conflict(namespace, name) from None
    return made


def find_item(model, namespace: MetadefNamespace, name: str):
    """The object, property or tag ``name`` of the namespace (404 when it holds none)."""
    row = model.get_or_none((model.namespace == namespace.id) & (model.name == name))
    if row is None:
        raise NotFound(NOT_FOUND[model].format(name))
    return row


def delete_item(model, namespace: MetadefNamespace, name: str) -> None:
    """Delete one object, property or tag: 404 when missing, then 403 when protected (Glance's order)."""
    row = find_item(model, namespace, name)
    refuse_if_protected(namespace, KINDS[model], name)
    model.delete().where(model.id == row.id).execute()


def update_item(model, namespace: MetadefNamespace, name: str, fields: dict):
    """Replace the columns of one object, property or tag (``fields`` names it; 409 when that name is taken)."""
    row = find_item(model, namespace, name)
    try:
        with write_transaction():
            model.update(**fields, updated_at=utcnow()).where(model.id == row.id).execute()
    except IntegrityError:  # Glance: 500 for objects and properties
        raise CONFLICTS[model](namespace, fields["name"]) from None
    return model.get_by_id(row.id)


CONFLICTS = {MetadefObject: object_conflict, MetadefProperty: property_conflict, MetadefTag: tag_conflict}
