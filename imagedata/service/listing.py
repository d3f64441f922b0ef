"""GET /v2/images: visibility rules, filters, sorting and keyset pagination."""
from __future__ import annotations

import dataclasses

from peewee import Expression, fn

from imagedata.errors import BadRequest
from imagedata.models import Image, ImageMember
from imagedata.policy import Caller, is_visible
from imagedata.schemas import MEMBER_STATUSES, VISIBILITIES
from imagedata.service import Services, filters
from imagedata.service.images import attach_extras, find_image, member_status

MAX_INT64 = filters.MAX_INT64
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
SORT_KEYS = {"name": "", "status": "", "container_format": "", "disk_format": "", "size": -1,
             "virtual_size": -1, "id": "", "created_at": None, "updated_at": None, "visibility": "",
             "owner": "", "min_disk": -1, "min_ram": -1}


@dataclasses.dataclass
class ListQuery:
    """Parsed query parameters of an image list request."""

    limit: int = DEFAULT_LIMIT
    marker: str | None = None
    sort: list[tuple[str, str]] = dataclasses.field(default_factory=lambda: [("created_at", "desc")])
    condition: Expression = dataclasses.field(default_factory=lambda: filters.EVERYTHING)
    visibility: str | None = None
    member_status: str = "accepted"


def _limit_param(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if number < 0:
        raise BadRequest("limit param must be positive")
    return min(number, MAX_LIMIT)


def parse_query(args) -> ListQuery:
    """Build a ListQuery from a multi-dict of query parameters; 400 for bad values, in Glance's words."""
    q = ListQuery()
    if "changes-since" in args:
        raise BadRequest('The "changes-since" filter is no longer available on v2.')
    visibilities = args.getlist("visibility")
    for visibility in visibilities:
        if visibility and visibility not in VISIBILITIES + ("all",):
            raise BadRequest(f"Invalid visibility value: {visibility}")
    if "member_status" in args:
        q.member_status = args.getlist("member_status")[-1]
        if q.member_status not in MEMBER_STATUSES + ("all",):
            raise BadRequest(f"Invalid status: {q.member_status}")
    if "limit" in args:
        q.limit = _limit_param(args.getlist("limit")[-1])
    if "marker" in args:
        q.marker = args.getlist("marker")[-1]
    q.sort = _parse_sort(args)
    q.condition = filters.filter_condition(args)
    if visibilities:
        q.visibility = visibilities[-1]
        # Glance: an empty visibility, or two different ones, match nothing.
        if not q.visibility or len(set(visibilities)) > 1:
            q.condition &= filters.NOTHING
    return q


def _parse_sort(args) -> list[tuple[str, str]]:
    if "sort" in args:
        if "sort_key" in args or "sort_dir" in args:
            raise BadRequest("Old and new sorting syntax cannot be combined")
        pairs = []
        for part in args.getlist("sort")[-1].strip().split(","):
            key, _, direction = part.partition(":")
            pairs.append(_check_sort(key.strip(), (direction or "desc").strip()))
        return pairs
    keys = [_check_sort(key.strip(), "asc")[0] for key in args.getlist("sort_key")] or ["created_at"]
    dirs = [_check_sort("id", direction.strip())[1] for direction in args.getlist("sort_dir")] or ["desc"]
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise BadRequest("Number of sort dirs does not match the number of sort keys")
    # Glance: one direction applies to every key; with fewer keys than directions the extra go unused.
    return [(key, dirs[i] if len(dirs) > 1 else dirs[0]) for i, key in enumerate(keys)]


def _check_sort(key: str, direction: str) -> tuple[str, str]:
    if key not in SORT_KEYS:
        raise BadRequest(f"Invalid sort key: {key}. It must be one of the following: {', '.join(SORT_KEYS)}.")
    if direction not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {direction}")
    return key, direction


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
    cond = _visible_condition(caller, q) & q.condition
    keys = _order_keys(q.sort)
    if q.marker is not None:
        marker = find_image(q.marker)
        if marker is None or not is_visible(caller, marker, member_status(marker, caller)):
            raise BadRequest(f"No image found with ID {q.marker}")
        cond &= _after_marker(keys, marker)
    order = [_sort_expr(k).asc() if d == "asc" else _sort_expr(k).desc() for k, d in keys]
    images = list(Image.select().where(cond).order_by(*order).limit(q.limit))
    attach_extras(images)
    next_marker = images[-1].id if q.limit and len(images) == q.limit else None
    return images, next_marker
