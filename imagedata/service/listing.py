"""GET /v2/images: visibility rules, filters, sorting and keyset pagination."""
from __future__ import annotations

import dataclasses

from peewee import fn

from imagedata.errors import BadRequest
from imagedata.models import Image, ImageMember, ImageProperty, ImageTag
from imagedata.policy import Caller, is_visible
from imagedata.schemas import MEMBER_STATUSES, STATUSES, VISIBILITIES
from imagedata.service import Services
from imagedata.service.images import attach_extras, find_image, member_status

MAX_INT64 = 2**63 - 1
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
SORT_KEYS = {"name": "", "status": "", "container_format": "", "disk_format": "", "size": -1,
             "virtual_size": -1, "id": "", "created_at": None, "updated_at": None, "visibility": "",
             "owner": "", "min_disk": -1, "min_ram": -1}
SIMPLE_FILTERS = ("name", "status", "disk_format", "container_format", "owner")
CONTROL_PARAMS = {"changes-since", "limit", "marker", "sort_key", "sort_dir", "sort", "visibility", "member_status", "tag",
                  "os_hidden", "protected", "size_min", "size_max"} | set(SIMPLE_FILTERS)


@dataclasses.dataclass
class ListQuery:
    """Parsed query parameters of an image list request."""

    limit: int = DEFAULT_LIMIT
    marker: str | None = None
    sort: list[tuple[str, str]] = dataclasses.field(default_factory=lambda: [("created_at", "desc")])
    filters: dict = dataclasses.field(default_factory=dict)
    tags: list[str] = dataclasses.field(default_factory=list)
    properties: dict = dataclasses.field(default_factory=dict)
    visibility: str | None = None
    member_status: str = "accepted"


def _bool_param(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise BadRequest(f"Invalid value for {name}: {value!r}; expected true or false.")
    return lowered == "true"


def _int_param(name: str, value: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} param must be an integer") from None
    if number < minimum:
        raise BadRequest(f"{name} param must be at least {minimum}")
    if number > MAX_INT64:
        raise BadRequest(f"{name} param must be at most {MAX_INT64}")
    return number


def parse_query(args) -> ListQuery:
    """Build a ListQuery from a multi-dict of query parameters; 400 for bad values."""
    q = ListQuery()
    if "limit" in args:
        q.limit = min(_int_param("limit", args["limit"]), MAX_LIMIT)
    if "changes-since" in args:
        raise BadRequest("The changes-since filter is not supported; use updated_at sorting instead.")
    q.marker = args.get("marker") or None
    q.sort = _parse_sort(args)
    for name in SIMPLE_FILTERS:
        if name in args:
            q.filters[name] = args[name]
    if "status" in q.filters and q.filters["status"] not in STATUSES:
        raise BadRequest(f"Invalid status value: {q.filters['status']}")
    for name in ("os_hidden", "protected"):
        if name in args:
            q.filters[name] = _bool_param(name, args[name])
    for name in ("size_min", "size_max"):
        if name in args:
            q.filters[name] = _int_param(name, args[name])
    q.tags = args.getlist("tag") if hasattr(args, "getlist") else ([args["tag"]] if "tag" in args else [])
    if "visibility" in args:
        if args["visibility"] not in VISIBILITIES + ("all",):
            raise BadRequest(f"Invalid visibility value: {args['visibility']}")
        q.visibility = args["visibility"]
    if "member_status" in args:
        if args["member_status"] not in MEMBER_STATUSES + ("all",):
            raise BadRequest(f"Invalid member_status value: {args['member_status']}")
        q.member_status = args["member_status"]
    q.properties = {k: v for k, v in args.items() if k not in CONTROL_PARAMS}
    return q


def _parse_sort(args) -> list[tuple[str, str]]:
    if "sort" in args:
        if "sort_key" in args or "sort_dir" in args:
            raise BadRequest("The 'sort' parameter cannot be combined with sort_key or sort_dir.")
        pairs = []
        for part in filter(None, (p.strip() for p in args["sort"].split(","))):
            key, _, direction = part.partition(":")
            pairs.append((key.strip(), (direction or "desc").strip()))
    else:
        keys = args.getlist("sort_key") if hasattr(args, "getlist") else [args.get("sort_key")]
        keys = [k for k in keys if k] or ["created_at"]
        dirs = args.getlist("sort_dir") if hasattr(args, "getlist") else [args.get("sort_dir")]
        dirs = [d for d in dirs if d] or ["desc"]
        if len(dirs) not in (1, len(keys)):
            raise BadRequest("The number of sort_dir values must be one or match the number of sort_key values.")
        pairs = list(zip(keys, dirs if len(dirs) == len(keys) else dirs * len(keys), strict=True))
    for key, direction in pairs:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {key}. It must be one of: {', '.join(sorted(SORT_KEYS))}.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}. It must be asc or desc.")
    return pairs or [("created_at", "desc")]


def _visible_condition(caller: Caller, q: ListQuery):
    """Which images the caller may list (Glance's rules for listing)."""
    live = Image.deleted == False  # noqa: E712
    if q.visibility and q.visibility != "all":
        live &= Image.visibility == q.visibility
    if caller.is_admin:
        if q.visibility in ("community", "all"):
            return live
        return live & ((Image.visibility != "community") | (Image.owner == caller.project_id))
    if caller.project_id is None:
        return live & (Image.visibility == "public")
    members = ImageMember.select(ImageMember.image).where(ImageMember.member == caller.project_id)
    if q.member_status != "all":
        members = members.where(ImageMember.status == q.member_status)
    seen = ((Image.owner == caller.project_id) | (Image.visibility == "public") | Image.owner.is_null()
            | ((Image.visibility == "shared") & Image.id.in_(members)))
    if q.visibility in ("community", "all"):  # Glance: `all` includes every community image
        seen |= Image.visibility == "community"
    return live & seen


def _filter_condition(q: ListQuery):
    cond = True
    for name in SIMPLE_FILTERS:
        if name in q.filters:
            cond &= getattr(Image, name) == q.filters[name]
    for name in ("os_hidden", "protected"):
        if name in q.filters:
            cond &= getattr(Image, name) == q.filters[name]
    if "os_hidden" not in q.filters:
        cond &= Image.os_hidden == False  # noqa: E712
    if "size_min" in q.filters:
        cond &= Image.size >= q.filters["size_min"]
    if "size_max" in q.filters:
        cond &= Image.size <= q.filters["size_max"]
    for tag in q.tags:
        cond &= Image.id.in_(ImageTag.select(ImageTag.image).where(ImageTag.value == tag))
    for name, value in q.properties.items():
        cond &= Image.id.in_(ImageProperty.select(ImageProperty.image)
                             .where((ImageProperty.name == name) & (ImageProperty.value == value)))
    return cond


def _sort_expr(key: str):
    field = getattr(Image, key)
    sentinel = SORT_KEYS[key]
    return field if sentinel is None else fn.COALESCE(field, sentinel)


def _order_keys(sort: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The sort keys, with the id as the final tie-breaker (so the order is total)."""
    return sort if any(k == "id" for k, _ in sort) else sort + [("id", sort[-1][1])]


def _after_marker(keys: list[tuple[str, str]], marker: Image):
    """Keyset condition: rows strictly after ``marker`` in the (total) order ``keys``."""
    values = []
    for key, _ in keys:
        value = getattr(marker, key)
        values.append(SORT_KEYS[key] if value is None and SORT_KEYS[key] is not None else value)
    condition = None
    for i, (key, direction) in enumerate(keys):
        expr = _sort_expr(key)
        step = expr > values[i] if direction == "asc" else expr < values[i]
        for j in range(i):
            step &= _sort_expr(keys[j][0]) == values[j]
        condition = step if condition is None else condition | step
    return condition


def list_images(svc: Services, caller: Caller, q: ListQuery) -> tuple[list[Image], str | None]:
    """A page of images and the marker for the next page (None on the last page)."""
    svc.policy.enforce("get_images", caller)
    cond = _visible_condition(caller, q) & _filter_condition(q)
    keys = _order_keys(q.sort)
    if q.marker:
        marker = find_image(q.marker)
        if marker is None or not is_visible(caller, marker, member_status(marker, caller)):
            raise BadRequest(f"Invalid marker. Image {q.marker} could not be found.")
        cond &= _after_marker(keys, marker)
    order = [_sort_expr(k).asc() if d == "asc" else _sort_expr(k).desc() for k, d in keys]
    images = list(Image.select().where(cond).order_by(*order).limit(q.limit))
    attach_extras(images)
    next_marker = images[-1].id if q.limit and len(images) == q.limit else None
    return images, next_marker
