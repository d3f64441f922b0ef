"""GET /v2/metadefs/namespaces: the visible namespaces, filtered, sorted and paged by a marker."""
from __future__ import annotations

import dataclasses

from peewee import fn

from imagedata.errors import BadRequest
from imagedata.models import MetadefAssociation, MetadefNamespace, MetadefResourceType
from imagedata.policy import Caller
from imagedata.service import Services
from imagedata.service.metadefs.access import NamespaceNotFound, enforce, is_shown, visible_condition
from imagedata.service.metadefs.namespaces import associations_of
from imagedata.service.metadefs.paging import after, ordering, parse_limit, parse_sort_dir, parse_sort_key

DEFAULT_LIMIT = 25  # Glance's limit_param_default
MAX_LIMIT = 1000  # Glance's api_limit_max
SORT_KEYS = ("created_at", "updated_at", "namespace", "display_name", "description", "visibility",
             "protected", "owner", "id")
NULLABLE = ("display_name", "description", "owner")


@dataclasses.dataclass
class NamespaceQuery:
    """What a namespace listing asks for."""

    limit: int = DEFAULT_LIMIT
    marker: str | None = None
    sort_key: str = "created_at"
    sort_dir: str = "desc"
    visibility: str | None = None
    resource_types: list[str] | None = None


def parse_query(args: dict) -> NamespaceQuery:
    """The listing's query parameters (others are ignored, as by Glance); 400 for a bad value."""
    limit = parse_limit(args)
    query = NamespaceQuery(limit=DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT),
                           sort_key=parse_sort_key(args, SORT_KEYS), sort_dir=parse_sort_dir(args))
    query.visibility = args.get("visibility") or None
    if query.visibility not in (None, "public", "private"):
        raise BadRequest(f"Invalid visibility value: {query.visibility}")
    query.marker = args.get("marker") or None
    if args.get("resource_types"):
        query.resource_types = args["resource_types"].split(",")
    return query


def _column(key: str):
    field = getattr(MetadefNamespace, key)
    return fn.COALESCE(field, "") if key in NULLABLE else field


def list_namespaces(svc: Services, caller: Caller, query: NamespaceQuery):
    """One page of the visible namespaces, their associations, and the marker of the next page (or None)."""
    enforce(svc, caller, "get_metadef_namespaces")
    enforce(svc, caller, "list_metadef_resource_types")
    keys = list(dict.fromkeys([query.sort_key, "created_at", "id"]))
    columns, descending = [_column(key) for key in keys], query.sort_dir == "desc"
    select = MetadefNamespace.select()
    shown = visible_condition(caller)
    if shown is not None:
        select = select.where(shown)
    if query.visibility:
        select = select.where(MetadefNamespace.visibility == query.visibility)
    if query.resource_types is not None:
        associated = (MetadefAssociation.select(MetadefAssociation.namespace).join(MetadefResourceType)
                      .where(MetadefResourceType.name.in_(query.resource_types)))
        select = select.where(MetadefNamespace.id.in_(associated))
    if query.marker is not None:
        marker = MetadefNamespace.get_or_none(MetadefNamespace.namespace == query.marker)
        if marker is None or not is_shown(svc, caller, marker):
            raise NamespaceNotFound(query.marker)
        values = [getattr(marker, key) or "" if key in NULLABLE else getattr(marker, key) for key in keys]
        select = select.where(after(columns, values, descending))
    rows = [row for row in select.order_by(*ordering(columns, descending)).limit(query.limit)
            if is_shown(svc, caller, row)]
    associations: dict[int, list] = {}
    for association in associations_of(row.id for row in rows):
        associations.setdefault(association.namespace_id, []).append(association)
    next_marker = rows[-1].namespace if rows and len(rows) == query.limit else None
    return rows, associations, next_marker
