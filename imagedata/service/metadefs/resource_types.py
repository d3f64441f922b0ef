"""Resource types, and the associations that apply a namespace to one of them."""
from __future__ import annotations

from imagedata.db import write_transaction
from imagedata.errors import NotFound
from imagedata.models import MetadefAssociation, MetadefResourceType
from imagedata.policy import Caller
from imagedata.service import Services
from imagedata.service.metadefs.access import enforce, find_namespace, refuse_if_protected
from imagedata.service.metadefs.contents import add_association
from imagedata.service.metadefs.namespaces import associations_of
from imagedata.service.metadefs.validate import check_body, check_name


def list_resource_types(svc: Services, caller: Caller) -> list[MetadefResourceType]:
    """GET /v2/metadefs/resource_types: every known resource type, oldest first."""
    enforce(svc, caller, "list_metadef_resource_types")
    return list(MetadefResourceType.select().order_by(MetadefResourceType.id))


def list_associations(svc: Services, caller: Caller, namespace_name: str) -> list[MetadefAssociation]:
    """GET .../resource_types: the namespace's associations."""
    namespace = find_namespace(svc, caller, namespace_name, "list_metadef_resource_types",
                               "get_metadef_resource_type")
    return associations_of([namespace.id])


def create_association(svc: Services, caller: Caller, namespace_name: str, body) -> MetadefAssociation:
    """POST .../resource_types {"name", "prefix", "properties_target"} (409 when associated already)."""
    check_name("resource type", check_body("resource_type_association", body)["name"])
    namespace = find_namespace(svc, caller, namespace_name, "add_metadef_resource_type_association")
    with write_transaction():
        return add_association(namespace, body)


def delete_association(svc: Services, caller: Caller, namespace_name: str, name: str) -> None:
    """DELETE .../resource_types/{name} (403 when the namespace is protected)."""
    namespace = find_namespace(svc, caller, namespace_name, "remove_metadef_resource_type_association")
    found = [a for a in associations_of([namespace.id]) if a.resource_type.name == name]
    if not found:
        raise NotFound(f"Failed to find resource type {name} to delete")
    refuse_if_protected(namespace, "resource-type-association", name)
    MetadefAssociation.delete().where(MetadefAssociation.id == found[0].id).execute()
