"""Tags a namespace suggests: one at a time, or a whole list (replacing or appending)."""
from __future__ import annotations

import dataclasses

from imagedata.db import write_transaction
from imagedata.models import MetadefTag
from imagedata.policy import Caller
from imagedata.service import Services
from imagedata.service.metadefs.access import enforce, find_namespace
from imagedata.service.metadefs.contents import add_tags, delete_item, find_item, update_item
from imagedata.service.metadefs.paging import after, ordering, parse_limit, parse_sort_dir, parse_sort_key
from imagedata.service.metadefs.validate import check_body, check_name

SORT_KEYS = ("created_at", "updated_at", "name", "id")


@dataclasses.dataclass
class TagQuery:
    """What a tag listing asks for: Glance sorts newest first and pages by a tag name."""

    limit: int | None = None
    marker: str | None = None
    sort_key: str = "created_at"
    sort_dir: str = "desc"


def parse_query(args: dict) -> TagQuery:
    """The tag listing's parameters; 400 for a bad value."""
    return TagQuery(limit=parse_limit(args), marker=args.get("marker") or None,
                    sort_key=parse_sort_key(args, SORT_KEYS), sort_dir=parse_sort_dir(args))


def list_tags(svc: Services, caller: Caller, namespace_name: str, query: TagQuery) -> list[MetadefTag]:
    """GET .../tags: one page, in the asked order (ties broken by creation)."""
    namespace = find_namespace(svc, caller, namespace_name, "get_metadef_tags")
    keys = list(dict.fromkeys([query.sort_key, "created_at", "id"]))
    columns, descending = [getattr(MetadefTag, key) for key in keys], query.sort_dir == "desc"
    select = MetadefTag.select().where(MetadefTag.namespace == namespace.id)
    if query.marker is not None:
        marker = find_item(MetadefTag, namespace, query.marker)
        select = select.where(after(columns, [getattr(marker, key) for key in keys], descending))
    select = select.order_by(*ordering(columns, descending))
    return list(select.limit(query.limit) if query.limit is not None else select)


def create_tag(svc: Services, caller: Caller, namespace_name: str, name: str) -> MetadefTag:
    """POST .../tags/{name} (409 when the namespace has it)."""
    namespace = find_namespace(svc, caller, namespace_name)
    check_name("tag", check_body("tag", {"name": name})["name"])
    enforce(svc, caller, "add_metadef_tag", namespace)
    with write_transaction():
        return add_tags(namespace, [name])[0]


def create_tags(svc: Services, caller: Caller, namespace_name: str, body, append: bool) -> list[MetadefTag]:
    """POST .../tags {"tags": [...]}: replace the namespace's tags, or add to them with ``append``.

    All or nothing: a name given twice, or (appending) one the namespace has, is 409.
    Glance: an empty list replaces nothing.
    """
    names = [item["name"] for item in check_body("tags", body).get("tags") or ()]
    for name in names:
        check_name("tag", name)
    namespace = find_namespace(svc, caller, namespace_name, "add_metadef_tags")
    with write_transaction():
        if names and not append:
            MetadefTag.delete().where(MetadefTag.namespace == namespace.id).execute()
        return add_tags(namespace, names)


def show_tag(svc: Services, caller: Caller, namespace_name: str, name: str) -> MetadefTag:
    """GET .../tags/{name}."""
    return find_item(MetadefTag, find_namespace(svc, caller, namespace_name, "get_metadef_tag"), name)


def update_tag(svc: Services, caller: Caller, namespace_name: str, name: str, body) -> MetadefTag:
    """PUT .../tags/{name} {"name": new}: rename it (409 when the new name is taken)."""
    new_name = check_name("tag", check_body("tag", body)["name"])
    namespace = find_namespace(svc, caller, namespace_name, "modify_metadef_tag")
    return update_item(MetadefTag, namespace, name, {"name": new_name})


def delete_tag(svc: Services, caller: Caller, namespace_name: str, name: str) -> None:
    """DELETE .../tags/{name} (403 when the namespace is protected)."""
    namespace = find_namespace(svc, caller, namespace_name, "delete_metadef_tag")
    delete_item(MetadefTag, namespace, name)
