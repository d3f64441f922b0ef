"""Objects of a namespace: named groups of property definitions."""
from __future__ import annotations

from imagedata.db import write_transaction
from imagedata.models import MetadefObject
from imagedata.policy import Caller
from imagedata.service import Services
from imagedata.service.metadefs.access import find_namespace
from imagedata.service.metadefs.paging import parse_limit, parse_sort_dir
from imagedata.service.metadefs.contents import (add_object, check_object, delete_item, find_item, object_fields,
                                                 update_item)


def check_list_query(args: dict) -> None:
    """Glance checks these parameters of the object list (400), then pages nothing."""
    parse_sort_dir(args)
    parse_limit(args, minimum=1)


def list_objects(svc: Services, caller: Caller, namespace_name: str) -> list[MetadefObject]:
    """GET .../objects: every object of the namespace, by name (Glance pages nothing here)."""
    namespace = find_namespace(svc, caller, namespace_name, "get_metadef_objects")
    return list(MetadefObject.select().where(MetadefObject.namespace == namespace.id).order_by(MetadefObject.name))


def create_object(svc: Services, caller: Caller, namespace_name: str, body) -> MetadefObject:
    """POST .../objects (409 when the name is taken)."""
    check_object(body)
    namespace = find_namespace(svc, caller, namespace_name, "add_metadef_object")
    with write_transaction():
        return add_object(namespace, body)


def show_object(svc: Services, caller: Caller, namespace_name: str, name: str) -> MetadefObject:
    """GET .../objects/{name}."""
    return find_item(MetadefObject, find_namespace(svc, caller, namespace_name, "get_metadef_object"), name)


def update_object(svc: Services, caller: Caller, namespace_name: str, name: str, body) -> MetadefObject:
    """PUT .../objects/{name}: replace it (what the body leaves out is cleared; 409 for a name taken)."""
    check_object(body)
    namespace = find_namespace(svc, caller, namespace_name, "modify_metadef_object")
    return update_item(MetadefObject, namespace, name, object_fields(body))


def delete_object(svc: Services, caller: Caller, namespace_name: str, name: str) -> None:
    """DELETE .../objects/{name} (403 when the namespace is protected)."""
    namespace = find_namespace(svc, caller, namespace_name, "delete_metadef_object")
    delete_item(MetadefObject, namespace, name)
