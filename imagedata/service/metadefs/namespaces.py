"""Metadata definition namespaces: create, show (with what they hold), update, delete."""
from __future__ import annotations

import dataclasses

from peewee import IntegrityError

from imagedata.db import database, write_transaction
from imagedata.errors import Conflict
from imagedata.models import (MetadefAssociation, MetadefNamespace, MetadefObject, MetadefProperty,
                              MetadefResourceType, MetadefTag, utcnow)
from imagedata.policy import Caller
from imagedata.service import Services
from imagedata.service.metadefs.access import enforce, find_namespace, refuse_if_protected
from imagedata.service.metadefs.contents import check_contents, write_contents
from imagedata.service.metadefs.validate import check_body, check_name

# What a namespace body may set besides its contents.
ATTRIBUTES = ("namespace", "display_name", "description", "visibility", "protected", "owner")
# Glance: the rules a caller must also pass to write each kind of content with the namespace.
CONTENT_RULES = (("resource_type_associations", "add_metadef_resource_type_association"),
                 ("objects", "add_metadef_object"), ("properties", "add_metadef_property"),
                 ("tags", "add_metadef_tag"))
# Glance: the rules a caller must pass to read a namespace with its contents.
READ_RULES = ("list_metadef_resource_types", "get_metadef_objects", "get_metadef_properties", "get_metadef_tags")


@dataclasses.dataclass
class NamespaceDetail:
    """A namespace with everything it holds, as GET shows it."""

    namespace: MetadefNamespace
    associations: list[MetadefAssociation]
    objects: list[MetadefObject]
    properties: list[MetadefProperty]
    tags: list[MetadefTag]
    # Glance: GET ?resource_type=T shows property names with T's prefix (in objects too).
    prefix: str | None = None


def associations_of(namespace_ids) -> list[MetadefAssociation]:
    """The associations of these namespaces, oldest first, with their resource type loaded."""
    return list(MetadefAssociation.select(MetadefAssociation, MetadefResourceType)
                .join(MetadefResourceType).where(MetadefAssociation.namespace.in_(list(namespace_ids)))
                .order_by(MetadefAssociation.id))


def load_detail(namespace: MetadefNamespace) -> NamespaceDetail:
    """Everything ``namespace`` holds: objects and properties by name, tags newest first (as Glance)."""
    def rows(model):
        return list(model.select().where(model.namespace == namespace.id).order_by(model.name))

    tags = list(MetadefTag.select().where(MetadefTag.namespace == namespace.id)
                .order_by(MetadefTag.created_at.desc(), MetadefTag.id.desc()))
    return NamespaceDetail(namespace, associations_of([namespace.id]), rows(MetadefObject), rows(MetadefProperty),
                           tags)


def create_namespace(svc: Services, caller: Caller, body) -> NamespaceDetail:
    """POST: a namespace and any contents it carries, all or nothing (409 for a name taken)."""
    check_body("namespace", body)
    check_name("namespace", body["namespace"])
    check_contents(body)
    enforce(svc, caller, "add_metadef_namespace")
    for key, rule in CONTENT_RULES:
        if body.get(key):
            enforce(svc, caller, rule)
    values = {key: body[key] for key in ATTRIBUTES if key in body}
    values.setdefault("owner", caller.project_id)
    with write_transaction():
        try:
            with database.atomic():
                namespace = MetadefNamespace.create(**values)
        except IntegrityError:
            raise Conflict(f"The metadata definition namespace={body['namespace']} already exists.") from None
        write_contents(namespace, body)
    return load_detail(namespace)


def show_namespace(svc: Services, caller: Caller, name: str, resource_type: str | None = None) -> NamespaceDetail:
    """GET: the namespace with its contents; with ``resource_type``, property names carry its prefix."""
    detail = load_detail(find_namespace(svc, caller, name, "get_metadef_namespace", *READ_RULES))
    detail.prefix = next((a.prefix for a in detail.associations if a.resource_type.name == resource_type), None)
    return detail


def update_namespace(svc: Services, caller: Caller, name: str, body) -> MetadefNamespace:
    """PUT: replace the namespace's attributes (contents in the body are ignored, as by Glance).

    Glance: what the body leaves out goes back to its default: no display name or description,
    private, unprotected, owned by the caller's project.
    """
    check_body("namespace", body)
    check_name("namespace", body["namespace"])
    namespace = find_namespace(svc, caller, name, "modify_metadef_namespace")
    values = {"namespace": body["namespace"], "display_name": body.get("display_name"),
              "description": body.get("description"), "visibility": body.get("visibility") or "private",
              "protected": bool(body.get("protected")), "owner": body.get("owner") or caller.project_id,
              "updated_at": utcnow()}
    try:
        with write_transaction():
            MetadefNamespace.update(**values).where(MetadefNamespace.id == namespace.id).execute()
    except IntegrityError:
        raise Conflict("Invalid update. It would result in a duplicate metadata definition namespace with the "
                       f"same name of {body['namespace']}") from None
    return MetadefNamespace.get_by_id(namespace.id)


def delete_namespace(svc: Services, caller: Caller, name: str) -> None:
    """DELETE: the namespace and everything it holds (403 when protected)."""
    namespace = find_namespace(svc, caller, name, "delete_metadef_namespace")
    refuse_if_protected(namespace)
    with write_transaction():
        MetadefNamespace.delete().where(MetadefNamespace.id == namespace.id).execute()


# The model and the extra rule of each kind of content DELETE .../{kind} removes.
CONTENT_KINDS = {"objects": (MetadefObject, None), "properties": (MetadefProperty, None),
                 "tags": (MetadefTag, "delete_metadef_tags")}


def delete_contents(svc: Services, caller: Caller, name: str, kind: str) -> None:
    """DELETE .../objects, .../properties or .../tags: all of them (403 when the namespace is protected)."""
    model, rule = CONTENT_KINDS[kind]
    rules = (rule,) if rule else ()
    namespace = find_namespace(svc, caller, name, "delete_metadef_namespace", *rules)
    refuse_if_protected(namespace)
    with write_transaction():
        model.delete().where(model.namespace == namespace.id).execute()
